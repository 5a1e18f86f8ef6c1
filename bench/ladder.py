"""HLS ladders: one FFmpeg decoding once for every rung against one FFmpeg per rung; and (``--per-title``) the
fixed ladder against the ladder that fits the content.

Usage: .venv/bin/python bench/ladder.py [--seconds 10] [--size 1920x1080] [--preset medium] [--repeat 2]
       .venv/bin/python bench/ladder.py --per-title [--seconds 8] [--clips easy,pattern,noise] [--target 96]

Both modes make the same files (tests/integration/test_ladder.py checks it); only the process layout differs.
The source is a generated clip with motion and grain (hard for the encoder, like camera footage). Runs alternate
between modes to spread any drift of the machine evenly, and the median of each is compared.
The faster one is the default `ladder_mode` (src/videoconverter/renditions.py).

``--per-title`` encodes each of bench/quality.py's clips (1920x1080, ``--seconds`` long) twice with the default
360p-1080p ladder: **fixed** (today's CRF 23 on every rung, ``per_title=False``) and **per-title** (every rung's
CRF from the VMAF search, redundant rungs dropped; the default target, or ``--target``). Each rung is measured
whole (its init section and segments joined) against the source with ``videoconverter quality``'s code: its
bytes and VMAF at its own size. The target: per-title at least 15 % fewer bytes in all at an equal or better
mean VMAF over its rungs, on the easy and pattern clips.
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

from quality import CLIP_SECONDS, CLIPS
from quality import make_source as make_clip
from videoconverter.renditions import Rendition, default_rendition
from videoconverter.transcode.playlists import parse_media_playlist
from videoconverter.transcode.produce import convert_file
from videoconverter.transcode.quality import measure_quality
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


@dataclasses.dataclass(frozen=True)
class RungResult:
    name: str
    bytes: int
    vmaf: float


@dataclasses.dataclass(frozen=True)
class LadderResult:
    clip: str
    ladder: str  # "fixed" or "per-title"
    seconds: float  # wall time of the conversion (per-title: with its search)
    rungs: tuple[RungResult, ...]

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.rungs)

    @property
    def mean_vmaf(self) -> float:
        return statistics.fmean(r.vmaf for r in self.rungs)


def measure_ladder(source: Path, workdir: Path, clip: str, label: str, ladder: Rendition) -> LadderResult:
    """Convert ``source`` with ``ladder`` and measure each rung whole: bytes and VMAF against the source."""
    started = time.perf_counter()
    convert_file(source, workdir, ladder)
    seconds = time.perf_counter() - started
    rungs = []
    for directory in sorted((workdir / "hls").iterdir(), key=lambda d: int(d.name.rstrip("p")) if d.is_dir() else 0):
        if not directory.is_dir():
            continue
        playlist = parse_media_playlist((directory / "index.m3u8").read_text(encoding="utf-8"))
        whole = workdir / f"{directory.name}-whole.mp4"
        with whole.open("wb") as out:
            for name in (playlist.init_uri, *(s.uri for s in playlist.segments)):
                out.write((directory / name).read_bytes())
        rungs.append(RungResult(directory.name, whole.stat().st_size, measure_quality(source, whole).vmaf_mean))
    return LadderResult(clip, label, seconds, tuple(rungs))


def format_ladder(result: LadderResult) -> str:
    rungs = "  ".join(f"{r.name} {r.bytes * 8 / 1e6:5.2f} Mbit {r.vmaf:5.2f}" for r in result.rungs)
    return (
        f"{result.clip:7} {result.ladder:9} {result.total_bytes / 1e6:6.2f} MB  mean VMAF {result.mean_vmaf:5.2f}  "
        f"{result.seconds:5.1f} s  | {rungs}"
    )


def per_title(args: argparse.Namespace) -> None:
    ffmpeg = ffmpeg_executable()
    fixed = default_rendition(1080, kind="hls", per_title=False)
    fitted = default_rendition(1080, kind="hls")
    fitted = dataclasses.replace(fitted, target_vmaf=args.target) if args.target else fitted
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"ladder {', '.join(f'{s}p' for s in fixed.ladder)}; fixed CRF {fixed.effective_crf}, per-title target "
          f"{fitted.target_vmaf:g}")  # fmt: skip
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="vc-bench-ladder-") as tmp:
        for clip in args.clips:
            seconds = min(args.seconds, CLIP_SECONDS.get(clip, args.seconds))
            source = make_clip(ffmpeg, clip, seconds, Path(tmp) / f"{clip}.mp4")
            results = []
            for label, ladder in (("fixed", fixed), ("per-title", fitted)):
                workdir = Path(tmp) / f"{clip}-{label}"
                workdir.mkdir()
                results.append(measure_ladder(source, workdir, clip, label, ladder))
                print(format_ladder(results[-1]), flush=True)
            before, after = results
            saved = 1 - after.total_bytes / before.total_bytes
            delta = after.mean_vmaf - before.mean_vmaf
            ratio = after.seconds / before.seconds
            verdicts.append(f"  {clip}: {saved:+.0%} fewer bytes, mean VMAF {delta:+.2f}, time {ratio:.2f}x")
    print("per-title against fixed (target on easy and pattern: >= 15 % fewer bytes, mean VMAF >= fixed):")
    print("\n".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--preset", default="medium", help="x264 preset of every rung (default: ours)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--per-title", action="store_true", help="the fixed ladder against the one fitted")
    parser.add_argument("--clips", type=lambda s: s.split(","), default=["easy", "pattern", "noise"])
    parser.add_argument("--target", type=float, help="the per-title ladder's VMAF target (default: its default)")
    args = parser.parse_args()
    if args.per_title:
        unknown = sorted(set(args.clips) - set(CLIPS))
        if unknown:
            parser.error(f"clips are {', '.join(CLIPS)}")
        per_title(args)
        return
    cores = os.cpu_count() or 1
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{cores} cores; FFmpeg {ffmpeg_executable()}")
    ladder = dataclasses.replace(default_rendition(1080, kind="hls", per_title=False), preset=args.preset)
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
