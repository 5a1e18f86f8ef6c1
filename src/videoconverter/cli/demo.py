"""`videoconverter demo`: the embedded pipeline on generated clips, start to finish, in one command."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from videoconverter.config import Config, load_config
from videoconverter.jobs.base import JobRecord, JobState
from videoconverter.logs import configure_logging
from videoconverter.pipeline import Services, provision, services, settled
from videoconverter.transcode.probe import probe
from videoconverter.transcode.samples import make_clip
from videoconverter.worker import Worker

SAMPLES = (
    # name, width, height, rotation: a landscape camera clip and a portrait phone clip (stored rotated)
    ("landscape-1080p.mp4", 1920, 1080, 0),
    ("phone-portrait.mp4", 1920, 1080, 90),
)


def run_demo(data_dir: Path | None) -> int:
    data_dir = data_dir or Path(os.environ.get("VIDEOCONVERTER_DATA_DIR", "vc-demo"))
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIDEOCONVERTER_STORAGE", "VIDEOCONVERTER_BROKER", "VIDEOCONVERTER_JOBS")
    }
    environ["VIDEOCONVERTER_DATA_DIR"] = str(data_dir)
    config = load_config(environ)
    if "VIDEOCONVERTER_LOG_LEVEL" not in os.environ:
        configure_logging("WARNING")  # the demo prints its own story; job logs stay in `videoconverter logs`
    _say(f"demo: data directory {data_dir.absolute()}")
    started = time.monotonic()
    with services(config) as svc:
        provision(svc)
        stop = threading.Event()
        workers = [
            threading.Thread(target=Worker(svc, r, stop).run, name=f"worker-{r.name}", daemon=True)
            for r in config.renditions
        ]
        for thread in workers:
            thread.start()
        with tempfile.TemporaryDirectory() as tmp:
            for name, width, height, rotation in SAMPLES:
                clip = make_clip(Path(tmp) / name, width=width, height=height, seconds=4, rotation_degrees=rotation)
                svc.store.put_file(config.input_bucket, name, clip)
                _say(f"uploaded s3://{config.input_bucket}/{name} ({width}x{height}, rotation {rotation})")
        keys = {name for name, *_ in SAMPLES}
        deadline, said = time.monotonic() + 600, ""
        while time.monotonic() < deadline:
            _, done = settled(svc)
            records = [r for key in sorted(keys) for r in svc.jobs.find(key)]
            line = progress_line(records, keys, len(keys) * len(config.renditions))
            if line != said:  # each change once, not a line every poll
                _say(line)
                said = line
            if done:
                break
            time.sleep(1)
        stop.set()
        for thread in workers:
            thread.join()
        return _show(svc, config, keys, time.monotonic() - started)


def progress_line(records: Iterable[JobRecord], keys: set[str], expected: int) -> str:
    """How far the demo's ``expected`` jobs (those of ``keys``) are: finished, and running with their mean
    progress to the ten (so that a line is printed when it changes, about every tenth of the way)."""
    mine = [r for r in records if r.id.key in keys]
    finished = sum(r.state.terminal for r in mine)
    running = [r.progress_percent for r in mine if r.state is JobState.RUNNING]
    line = f"  {finished}/{expected} jobs finished"
    if running:
        line += f", {len(running)} running ({sum(running) / len(running) // 10 * 10:.0f} %)"
    return line


def _show(svc: Services, config: Config, keys: set[str], elapsed: float) -> int:
    print(f"\n{'KEY':22} {'RENDITION':9} {'STATE':6} {'SIZE':>10} {'PICTURE':>10} {'SECONDS':>7} {'KB/S':>6}")
    failures = 0
    for record in sorted(svc.jobs.find(), key=lambda r: (r.id.key, r.id.rendition)):
        if record.id.key not in keys:
            continue
        if record.state is not JobState.DONE:
            failures += 1
            print(f"{record.id.key:22} {record.id.rendition:9} {record.state.value:6} {record.error}")
            continue
        rendition = config.rendition(record.id.rendition)
        if rendition.kind != "mp4":  # a ladder or thumbnails: many files under KEY/
            files = list(svc.store.list(rendition.output_bucket, record.id.key + "/"))
            size = sum(f.size for f in files)
            print(f"{record.id.key:22} {record.id.rendition:9} {record.state.value:6} {size:>10} {len(files)} files")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "out.mp4"
            info = svc.store.get_file(rendition.output_bucket, record.id.key, local)
            media = probe(local, config.limits)
        width, height = media.display_size
        seconds = media.duration_seconds or 0
        kbps = info.size * 8 / 1000 / seconds if seconds else 0
        print(
            f"{record.id.key:22} {record.id.rendition:9} {record.state.value:6} {info.size:>10} "
            f"{width:>4}x{height:<5} {seconds:>7.1f} {kbps:>6.0f}"
        )
    print(
        f"\noutputs are in {Path(config.data_dir).absolute() / 'buckets'}/videoconverter-output-*/ "
        f"({elapsed:.1f} s). Try: videoconverter jobs; videoconverter logs phone-portrait.mp4"
    )
    if failures:
        print(f"demo: {failures} job(s) did not finish", file=sys.stderr)
        return 1
    return 0


def _say(text: str) -> None:
    print(text, flush=True)
