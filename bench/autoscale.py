"""Time to drain a burst of uploads: `up --workers auto` against fixed worker counts, side by side.

Usage: .venv/bin/python bench/autoscale.py [--uploads 20] [--fixed 1,2,4] [--seconds 2] [--size 640x360]

For each set-up, a fresh embedded pipeline (SQLite, filesystem) with the default 720p and 1080p renditions
(x264 "veryfast", so that a run takes seconds) is started with `videoconverter up`; ``--uploads`` generated clips
are uploaded at once and the time until every job is done is printed, with the ratio to the best fixed count.
`auto` starts from no worker at all (--min 0), so its figure includes starting the workers.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from videoconverter.config import load_config
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
x264_preset = "veryfast"

[[renditions]]
short_side = 1080
x264_preset = "veryfast"
"""


def drain_seconds(workers: list[str], clip: Path, uploads: int, root: Path) -> float:
    root.mkdir()
    config_path = root / "videoconverter.toml"
    config_path.write_text(CONFIG.format(data=root / "data"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    env["VIDEOCONVERTER_CONFIG"] = str(config_path)
    command = [sys.executable, "-m", "videoconverter", "up", "--no-web", "--no-reconcile", *workers]
    up = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    svc = open_services(load_config(environ={}, path=config_path))
    try:
        deadline = time.monotonic() + 60
        while not svc.store.bucket_exists(svc.config.input_bucket):  # `up` provisions first
            if time.monotonic() > deadline:
                raise SystemExit("`up` did not provision within 60 s")
            time.sleep(0.1)
        started = time.monotonic()
        for i in range(uploads):
            svc.store.put_file(svc.config.input_bucket, f"burst-{i:02d}.mp4", clip)
        while not settled(svc)[1]:
            time.sleep(0.1)
        return time.monotonic() - started
    finally:
        svc.close()
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--fixed", default="1,2", help="fixed worker counts per rendition to compare")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT of each clip")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="vc-autoscale-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", width=width, height=height, seconds=args.seconds)
        results: dict[str, float] = {}
        for count in [c.strip() for c in args.fixed.split(",") if c.strip()]:
            results[f"fixed {count}"] = drain_seconds(["--workers", count], clip, args.uploads, Path(tmp) / f"f{count}")
        results["auto"] = drain_seconds(["--workers", "auto", "--min", "0"], clip, args.uploads, Path(tmp) / "auto")
    best = min(v for k, v in results.items() if k != "auto")
    print(f"{args.uploads} uploads of {args.seconds:g} s {width}x{height}, 720p + 1080p, {cores} cores")
    print(f"{'workers per rendition':24} {'drain (s)':>10} {'vs best fixed':>14}")
    for name, seconds in results.items():
        print(f"{name:24} {seconds:10.2f} {seconds / best:14.2f}")


if __name__ == "__main__":
    main()
