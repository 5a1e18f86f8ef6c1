"""The batch tail: dedicated workers (one per rendition) against a pool (each worker serving both queues).

    .venv/bin/python bench/batch_tail.py [--clips 8] [--seconds 2] [--size 1920x1080] [--pool 2] [--repeats 1]
        [--setups dedicated,pool,pool-1-thread] [--preset PRESET] [--json]

For each set-up, a fresh embedded pipeline (SQLite, filesystem) with the default 720p and 1080p renditions runs
under `videoconverter up --no-web --no-reconcile`; ``--clips`` uploads of one generated clip (distinct keys, so no
output is reused) are made at once, and the bench prints the time until every job is done (the drain), the
seconds of it during which only one job was running (the tail: the other cores idle; from the jobs' start and
finish times), when each rendition's last job finished, the CPU seconds `up` and everything under it used (FFmpeg
included), the load average when the run began, and the workers' peak RSS (VmHWM) at the end.

Set-ups: ``dedicated`` is `up --workers 1` (one worker per rendition, as `up` ran before the pool); ``pool`` is
`up --pool N` (the default, with N the cores) with FFmpeg choosing its threads; ``pool-1-thread`` is the same pool
with ``VIDEOCONVERTER_FFMPEG_THREADS=1`` (threads x workers = cores). Set-ups alternate, in reverse order every
other repeat (A B C, C B A, ...). On a machine shared with other work the figures are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from videoconverter.config import load_config
from videoconverter.jobs.base import JobRecord
from videoconverter.pipeline import open_services, settled
from videoconverter.transcode.samples import make_clip

CONFIG = """
data_dir = "{data}"
log_level = "WARNING"

[queues]
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
short_side = 720
{preset}
[[renditions]]
short_side = 1080
{preset}
"""
SETUPS = ("dedicated", "pool", "pool-1-thread")


def up_command(setup: str, pool: int) -> tuple[list[str], dict[str, str]]:
    """`up`'s arguments and extra environment for ``setup``."""
    if setup == "dedicated":
        return ["--workers", "1"], {}
    if setup == "pool":
        return ["--pool", str(pool)], {}
    if setup == "pool-1-thread":
        return ["--pool", str(pool)], {"VIDEOCONVERTER_FFMPEG_THREADS": "1"}
    raise SystemExit(f"unknown set-up {setup!r}: expected one of {', '.join(SETUPS)}")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def peak_rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            found = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    except FileNotFoundError:
        return None
    return int(found.group(1)) / 1024 if found else None


def one_job_seconds(records: list[JobRecord]) -> float:
    """Seconds between the first start and the last finish during which exactly one job was running."""
    edges = sorted(
        [(r.started_at, 1) for r in records if r.started_at is not None]
        + [(r.finished_at, -1) for r in records if r.finished_at is not None]
    )
    alone, running, since = 0.0, 0, 0.0
    for at, step in edges:
        if running == 1:
            alone += at - since
        running += step
        since = at
    return alone


def drain(setup: str, pool: int, clip: Path, clips: int, root: Path, preset: str) -> dict[str, Any]:
    root.mkdir()
    config_path = root / "videoconverter.toml"
    config_path.write_text(CONFIG.format(data=root / "data", preset=f'x264_preset = "{preset}"\n' if preset else ""))
    load = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args, extra = up_command(setup, pool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    env.update(extra, VIDEOCONVERTER_CONFIG=str(config_path))
    command = [sys.executable, "-m", "videoconverter", "up", "--no-web", "--no-reconcile", *args]
    up = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    svc = open_services(load_config(environ={}, path=config_path))
    try:
        expected = 2 if setup == "dedicated" else pool
        deadline = time.monotonic() + 60
        while not svc.store.bucket_exists(svc.config.input_bucket) or len(children(up.pid)) < expected:
            if time.monotonic() > deadline:
                raise SystemExit("`up` did not provision and start its workers within 60 s")
            time.sleep(0.1)
        time.sleep(2.0)  # the workers' own start-up (imports), so that the clock times the drain alone
        started, wall_started = time.monotonic(), time.time()
        for i in range(clips):
            svc.store.put_file(svc.config.input_bucket, f"clip-{i:02d}.mp4", clip)
        while not settled(svc)[1]:
            time.sleep(0.1)
        drained = time.monotonic() - started
        peaks = [peak for pid in children(up.pid) if (peak := peak_rss_mib(pid)) is not None]
        records = [r for i in range(clips) for r in svc.jobs.find(f"clip-{i:02d}.mp4")]
    finally:
        svc.close()
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # `up` waited for its workers, they for their FFmpeg runs
    cpu_seconds = cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    last = {
        name: max((r.finished_at or wall_started) - wall_started for r in records if r.id.rendition == name)
        for name in sorted({r.id.rendition for r in records})
    }
    return {
        "setup": setup,
        "drain_seconds": round(drained, 2),
        "one_job_seconds": round(one_job_seconds(records), 2),
        "last_done_seconds": {name: round(seconds, 2) for name, seconds in last.items()},
        "cpu_seconds": round(cpu_seconds, 1),
        "load_avg_at_start": round(load, 2),
        "worker_peak_rss_mib": [round(p, 1) for p in sorted(peaks)],
        "jobs": len(records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT of each clip")
    parser.add_argument("--pool", type=int, default=2, help="pool worker processes (default 2)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated: " + ", ".join(SETUPS))
    parser.add_argument("--preset", default="", help="x264 preset of both renditions (default: theirs)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    runs: list[dict[str, Any]] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vc-batch-tail-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width=width, height=height, seconds=args.seconds)
        for repeat in range(args.repeats):
            for setup in setups if repeat % 2 == 0 else reversed(setups):
                run = drain(setup, args.pool, clip, args.clips, Path(tmp) / f"{setup}-{repeat}", args.preset)
                runs.append(run)
                if not args.json:
                    print(
                        f"{setup:14} drain {run['drain_seconds']:6.2f} s, one job alone {run['one_job_seconds']:5.2f}"
                        f" s, last done {run['last_done_seconds']}, CPU {run['cpu_seconds']} s, load "
                        f"{run['load_avg_at_start']}, worker peak RSS {run['worker_peak_rss_mib']} MiB",
                        flush=True,
                    )
    medians = {s: statistics.median(r["drain_seconds"] for r in runs if r["setup"] == s) for s in setups}
    summary = {"clips": args.clips, "size": args.size, "seconds": args.seconds, "pool": args.pool,
               "cores": len(os.sched_getaffinity(0)), "load_avg_at_start": round(load, 2),
               "median_drain_seconds": medians, "runs": runs}  # fmt: skip
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"{args.clips} clips of {args.seconds:g} s {args.size}, 720p + 1080p, {summary['cores']} cores, "
        f"load average {load:.1f} at start (figures indicative on a shared machine)"
    )
    for setup, seconds in medians.items():
        print(f"{setup:14} median drain {seconds:6.2f} s ({seconds / medians[setups[0]]:.2f}x {setups[0]})")


if __name__ == "__main__":
    main()
