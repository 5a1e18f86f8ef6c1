"""An HLS ladder made by one FFmpeg decoding once for every rung, against one FFmpeg per rung side by side.

Usage: .venv/bin/python bench/ladder.py [--seconds 10] [--size 1920x1080] [--preset medium] [--repeat 2]

Both modes make the same files (tests/integration/test_ladder.py checks it); only the process layout differs.
The source is a generated clip with motion and grain (hard for the encoder, like camera footage). Runs alternate
between modes to spread any drift of the machine evenly, and the median of each is compared. The ladder's
The faster one is the default `ladder_mode` (src/videoconverter/renditions.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from videoconverter.renditions import default_rendition
from videoconverter.transcode.produce import convert_file
from videoconverter.transcode.runner import ffmpeg_executable

MODES = ("one-decode", "per-rung")


def make_source(path: Path, seconds: float, size: str) -> None:
    subprocess.run(
        [
            ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--preset", default="medium", help="x264 preset of every rung (default: ours)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{cores} cores; FFmpeg {ffmpeg_executable()}")
    ladder = dataclasses.replace(default_rendition(1080, kind="hls"), preset=args.preset)
    print(f"ladder {', '.join(f'{s}p' for s in ladder.ladder)}, x264 {args.preset}, {args.seconds:g} s of {args.size}")
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="vc-bench-ladder-") as tmp:
        source = Path(tmp) / "source.mp4"
        make_source(source, args.seconds, args.size)
        for run in range(args.repeat):
            for mode in MODES if run % 2 == 0 else reversed(MODES):
                workdir = Path(tmp) / f"{mode}-{run}"
                workdir.mkdir()
                started = time.perf_counter()
                produced = convert_file(source, workdir, dataclasses.replace(ladder, ladder_mode=mode))
                times[mode].append(time.perf_counter() - started)
                print(f"  run {run + 1} {mode:<10} {times[mode][-1]:7.2f} s  ({len(produced.files)} files)", flush=True)
    one, per = (statistics.median(times[mode]) for mode in MODES)
    print(f"median: one-decode {one:.2f} s, per-rung {per:.2f} s; one-decode / per-rung = {one / per:.3f}")
    faster = "one-decode" if one < per else "per-rung"
    print(f"faster here: {faster}; the default ladder_mode is {default_rendition(1080, kind='hls').ladder_mode}")


if __name__ == "__main__":
    main()
