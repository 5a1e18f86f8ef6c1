"""Recovery after a worker dies: how long until a job whose worker was SIGKILLed mid-FFmpeg is done again.

    .venv/bin/python bench/recovery.py [--repeats 3] [--seconds 10] [--kill-after 5] [--broker-url URL] [--json]

Runs `videoconverter up` (one worker per default rendition, 720p and 1080p; the default 30 s visibility timeout)
in a scratch data directory, uploads one generated 1920x1080 clip, kills the 1080p worker with SIGKILL
``--kill-after`` seconds into its FFmpeg run, and times from the kill until the 1080p job is done again (the
restarted worker converts it from the start) and until it started again. Each run also checks that the killed
worker's state folder (its temp dir with the source copy and partial output) is gone. Prints each run and the
median. Without the supervisor handing the dead worker's leases back, the job would first wait out the 30 s
lease (run it with PYTHONPATH pointing at an older checkout for that baseline). Figures on a shared machine are
indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from chaos import children  # bench/ is on the path of a script run from it
from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import all_topologies, open_services
from videoconverter.transcode.samples import make_clip

try:
    from videoconverter.recovery.identity import identity_of
    from videoconverter.recovery.workspace import default_root
except ImportError:  # a checkout from before the recovery package: a baseline (temp_dir_left then reads None)
    identity_of = None  # type: ignore[assignment]

CONFIG = """
data_dir = "{data}"
log_level = "WARNING"
{broker}
[input]
topic = "{prefix}videoconverter-topic"

[notifications]
topic = "{prefix}videoconverter-notifications"
events_queue = "{prefix}videoconverter-events"

[[renditions]]
name = "720p"
queue = "{prefix}videoconverter_720p"
short_side = 720

[[renditions]]
name = "1080p"
queue = "{prefix}videoconverter_1080p"
short_side = 1080
"""
KILLED = "1080p"
TIMEOUT_SECONDS = 600.0


def argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except FileNotFoundError:
        return []


def transcoding_worker(up_pid: int, rendition: str) -> int | None:
    """The pid of ``rendition``'s worker while it runs an FFmpeg that reads an input."""
    for worker in children(up_pid):
        if argv(worker)[3:5] != ["worker", rendition]:  # python -m videoconverter worker NAME
            continue
        for child in children(worker):
            args = argv(child)
            if args and Path(args[0]).name.startswith("ffmpeg") and "-i" in args:
                return worker
    return None


def poll(condition, timeout: float, interval: float = 0.02):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f} s")


def one_run(clip: Path, kill_after: float, broker_url: str) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="vc-recovery-", dir="/tmp"))
    prefix = f"rec-{uuid.uuid4().hex[:8]}-" if broker_url else ""  # a shared server outlives the run
    config_path = root / "videoconverter.toml"
    broker_line = f'broker = "{broker_url}"' if broker_url else ""
    config_path.write_text(CONFIG.format(data=root / "data", broker=broker_line, prefix=prefix))
    (root / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    env.update(VIDEOCONVERTER_CONFIG=str(config_path), TMPDIR=str(root / "tmp"))
    config = load_config(environ=env)
    up = subprocess.Popen(
        [sys.executable, "-m", "videoconverter", "up", "--no-web", "--no-reconcile"], env=env, stderr=subprocess.DEVNULL
    )
    svc = None
    try:
        poll(lambda: len(children(up.pid)) >= len(config.renditions), 120)
        svc = open_services(config)
        svc.store.put_file(config.input_bucket, "clip.mp4", clip)
        worker = poll(lambda: transcoding_worker(up.pid, KILLED), 120)
        victim = identity_of(worker) if identity_of is not None else None
        time.sleep(kill_after)  # the benchmark's point: a kill that far into the encode
        os.kill(worker, signal.SIGKILL)
        killed_at, killed_at_epoch = time.monotonic(), time.time()

        def done() -> bool:
            return any(r.id.rendition == KILLED and r.state is JobState.DONE for r in svc.jobs.find("clip.mp4"))

        poll(done, TIMEOUT_SECONDS, 0.05)
        recovery = time.monotonic() - killed_at
        (record,) = [r for r in svc.jobs.find("clip.mp4") if r.id.rendition == KILLED]
        folder_left = (default_root(root / "tmp") / victim.name).exists() if victim is not None else None
        lines = [line for line in svc.jobs.logs("clip.mp4") if line.rendition == KILLED]
        restarted = [line.at for line in lines if line.message.startswith(f"attempt {record.attempts} started")]
        return {
            "recovery_seconds": round(recovery, 2),
            # from the kill until the job started again: what handing the lease back saves
            "restarted_after_seconds": round(restarted[0] - killed_at_epoch, 2) if restarted else None,
            "ffmpeg_again": next((line.message for line in reversed(lines) if line.message.startswith("FFmpeg")), ""),
            "attempts": record.attempts,
            "temp_dir_left": folder_left,
        }
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        delete = getattr(svc.broker, "delete", None) if svc is not None else None  # the RabbitMQ broker's clean-up
        if svc is not None:
            if broker_url and delete is not None:
                for declared in all_topologies(config):
                    delete(declared)
            svc.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated 1080p clip")
    parser.add_argument("--kill-after", type=float, default=5.0, help="seconds into the 1080p FFmpeg run")
    parser.add_argument(
        "--broker-url", default="", help="e.g. amqp://guest:guest@127.0.0.1:5672/%%2F (default: embedded SQLite)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vc-recovery-clip-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width=1920, height=1080, seconds=args.seconds)
        runs = []
        for i in range(args.repeats):
            runs.append(one_run(clip, args.kill_after, args.broker_url))
            if not args.json:
                print(f"run {i + 1}: done again {runs[-1]['recovery_seconds']} s after the kill ({runs[-1]})")
    broker = args.broker_url.split("://")[0] if args.broker_url else "sqlite"
    median = statistics.median(float(r["recovery_seconds"]) for r in runs)  # type: ignore[arg-type]
    result = {"broker": broker, "runs": runs, "median_recovery_seconds": round(median, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{broker}: median {median:.1f} s from SIGKILL to done again (indicative: a shared, loaded machine)")
    return 0 if not any(r["temp_dir_left"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
