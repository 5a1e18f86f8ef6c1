"""Our default MP4 renditions against Elastic Transcoder's Generic presets, reproduced with FFmpeg.

For each generated 1920x1080 29.97 fps clip (lavfi sources, never downloaded; ``--seconds`` each, with a tone)
and each of 720p and 1080p, two encodes of the same source with the same thread setting:

- **ET**: Generic 720p / 1080p as /work/shared/REFERENCE.md lists them: H.264 Baseline (level 3.1 / 4.0),
  2400 / 5400 kb/s, 29.97 fps, GOP 90, shrink to fit 1280x720 / 1920x1080, AAC-LC 160 kb/s 44.1 kHz stereo.
  libx264 at FFmpeg's default preset (medium) in average-bitrate mode with maxrate = bitrate; the VBV buffer
  is 2 s of the bitrate (4800 / 10800 kbit), within the levels' CPB limits (14000 / 25000 kbit) and more
  generous than our 1 s, so the baseline is not handicapped by a tight buffer.
- **ours**: ``convert_file(source, workdir, default_rendition(N, per_title=False))``, i.e. exactly what a
  worker runs with a fixed CRF, with the rendition's CRF, preset and cap optionally replaced (``--crf``,
  ``--preset``, ``--cap-ratio``; every combination is run) to tune the defaults.

With ``--per-title`` each clip and size gets three encodes instead: ET, today's **fixed** CRF (the rendition
above, unchanged) and **per-title** (``default_rendition(N)``: the default VMAF target and its cap, or each of
``--target SIZE=VMAF,...`` and ``--per-title-cap SHARE``), the last timed with its search. The targets then:
per-title VMAF at least ET's on every row (strictly), at most 80 % of ET's bytes over all rows, and per-title
at most 1.5x the time of the fixed encode.

Each encode is timed with ``time.perf_counter`` (ours includes the probe, a few tens of ms), its FFmpeg's CPU
time is recorded too (the ``cpu`` column: ours / ET; steadier than wall time when other work shares the
machine), and both outputs are measured with :func:`videoconverter.transcode.quality.measure_quality` against
the source. The target, per clip and size: VMAF at least equal (``equal`` = within 0.5 points, well under the
~6 points of a just-noticeable difference), at most 80 % of ET's bytes (whole files, audio included) and at
most 1.5 x ET's wall-clock encode time.

Usage: ``.venv/bin/python bench/quality.py [--seconds 5] [--clips easy,pattern,motion,noise] [--sizes 720,1080]
[--crf 23 21] [--cap-ratio 1.0 0.8] [--preset medium] [--keyframe-seconds 2 4] [--threads 0] [--json]``;
``.venv/bin/python bench/quality.py --per-title [--target 720=97,97.5 1080=96] [--per-title-cap 1.0] ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from videoconverter.renditions import GENERIC_PRESET_VIDEO_KBPS, Limits, Rendition, default_rendition
from videoconverter.transcode.pertitle import QualitySearch
from videoconverter.transcode.produce import convert_file
from videoconverter.transcode.quality import QualityReport, measure_quality
from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg

R = TypeVar("R")
FRAME_RATE = "30000/1001"
#: lavfi video sources, 1920x1080 at 29.97 fps: from easy to what encoders find hardest.
CLIPS = {
    # Colour bars panning slowly: flat areas, sharp edges, little change between frames.
    "easy": f"smptehdbars=size=1920x1080:rate={FRAME_RATE},scroll=horizontal=0.002",
    # FFmpeg's test pattern: fine text and gradients, several elements moving at once.
    "pattern": f"testsrc2=size=1920x1080:rate={FRAME_RATE}",
    # A zoom into the Mandelbrot set: every pixel moves, and new detail keeps appearing (for 10 s).
    "motion": f"mandelbrot=size=1920x1080:rate={FRAME_RATE}:start_scale=3:end_scale=0.006:end_pts=300",
    # Film-grain-like noise, different on every frame (allf=t), over the moving test pattern.
    "noise": f"testsrc2=size=1920x1080:rate={FRAME_RATE},noise=alls=20:allf=t+u",
    # The test pattern again, 3 s long whatever --seconds says: a short, easy upload.
    "short": f"testsrc2=size=1920x1080:rate={FRAME_RATE}",
}
#: Clips whose length is their own, not --seconds (at most --seconds).
CLIP_SECONDS = {"short": 3.0}
ET_PRESETS = {720: ("3.1", 1280, 720), 1080: ("4.0", 1920, 1080)}  # level, box to shrink into
VMAF_TOLERANCE = 0.5
MAX_BYTES_RATIO = 0.80
MAX_TIME_RATIO = 1.5


@dataclasses.dataclass(frozen=True)
class Encode:
    seconds: float  # wall clock: what the target is about
    cpu_seconds: float  # FFmpeg's user + system time: steadier than wall time on a shared, noisy machine
    quality: QualityReport
    search: QualitySearch | None = None  # per-title: what the VMAF search chose


class Stopwatch:
    """Wall time and the CPU time of the child processes reaped meanwhile (FFmpeg; one encode at a time)."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), _children_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = _children_cpu_seconds() - self._cpu


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass(frozen=True)
class Row:
    clip: str
    size: int
    variant: str  # our rendition's settings, e.g. "crf=21 cap=80% medium gop=2s" (cap: of ET's bitrate)
    et: Encode
    ours: Encode

    @property
    def bytes_ratio(self) -> float:
        return self.ours.quality.output_bytes / self.et.quality.output_bytes

    @property
    def time_ratio(self) -> float:
        return self.ours.seconds / self.et.seconds

    @property
    def cpu_ratio(self) -> float:
        return self.ours.cpu_seconds / self.et.cpu_seconds

    @property
    def vmaf_delta(self) -> float:
        return self.ours.quality.vmaf_mean - self.et.quality.vmaf_mean

    @property
    def target_met(self) -> bool:
        return (
            self.vmaf_delta >= -VMAF_TOLERANCE
            and self.bytes_ratio <= MAX_BYTES_RATIO
            and self.time_ratio <= MAX_TIME_RATIO
        )


def make_source(ffmpeg: str, clip: str, seconds: float, destination: Path) -> Path:
    """A near-lossless H.264 (CRF 10) + AAC source of ``clip``, so the source's own artefacts barely count."""
    args = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"{CLIPS[clip]},format=yuv420p",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-crf", "10",
        "-c:a", "aac", "-b:a", "192k", "-f", "mp4", str(destination),
    ]  # fmt: skip
    subprocess.run(args, check=True)
    return destination


def elastic_transcoder_args(ffmpeg: str, source: Path, destination: Path, size: int, threads: int) -> list[str]:
    """Elastic Transcoder's Generic 720p / 1080p preset as FFmpeg arguments (see the module's docstring)."""
    level, box_width, box_height = ET_PRESETS[size]
    kbps = GENERIC_PRESET_VIDEO_KBPS[size]
    shrink = (
        f"scale=w='min({box_width},iw)':h='min({box_height},ih)':force_original_aspect_ratio=decrease"
        ":force_divisible_by=2:flags=bicubic"
    )
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", f"file:{source}",
        "-map", "0:v:0", "-map", "0:a:0", "-vf", f"{shrink},format=yuv420p", "-r", FRAME_RATE,
        "-c:v", "libx264", "-profile:v", "baseline", "-level", level,
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k", "-g", "90",
        "-c:a", "aac", "-b:a", "160k", "-ar", "44100", "-ac", "2",
        *(["-threads", str(threads)] if threads > 0 else []),
        "-movflags", "+faststart", "-f", "mp4", f"file:{destination}",
    ]  # fmt: skip


def encode_et(ffmpeg: str, source: Path, workdir: Path, size: int, threads: int) -> Encode:
    destination = workdir / f"et-{size}.mp4"
    args = elastic_transcoder_args(ffmpeg, source, destination, size, threads)
    with Stopwatch() as watch:
        run_ffmpeg(args, workdir=workdir, timeout_seconds=3600)
    quality = measure_quality(source, destination, ffmpeg=ffmpeg, threads=threads)
    return Encode(watch.seconds, watch.cpu_seconds, quality)


def encode_ours(ffmpeg: str, source: Path, workdir: Path, rendition: Rendition, threads: int) -> Encode:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        with Stopwatch() as watch:
            produced = convert_file(source, Path(tmp), rendition, limits=Limits(), threads=threads, ffmpeg=ffmpeg)
        quality = measure_quality(source, produced.files[0].path, ffmpeg=ffmpeg, threads=threads)
        return Encode(watch.seconds, watch.cpu_seconds, quality, produced.quality)


def variants(args: argparse.Namespace, size: int) -> list[tuple[str, Rendition]]:
    """Our rendition for ``size`` with each combination of the requested CRF, cap, preset and keyframe interval."""
    base = default_rendition(size, per_title=False)
    result = []
    choices = itertools.product(
        args.crf or [base.crf], args.cap_ratio or [None], args.preset or [base.preset], args.keyframe_seconds or [None]
    )
    for crf, ratio, preset, keyframe_seconds in choices:
        cap = round(ratio * GENERIC_PRESET_VIDEO_KBPS[size]) if ratio else base.max_video_bitrate_kbps
        rendition = dataclasses.replace(
            base,
            crf=crf,
            max_video_bitrate_kbps=cap,
            preset=preset,
            keyframe_interval_seconds=keyframe_seconds or base.keyframe_interval_seconds,
        )
        # The cap as a share of ET's bitrate, so that one label names the same variant at every size.
        label = (
            f"crf={rendition.effective_crf} cap={cap / GENERIC_PRESET_VIDEO_KBPS[size]:.0%} "
            f"{rendition.effective_preset} gop={rendition.keyframe_interval_seconds:g}s"
        )
        result.append((label, rendition))
    return result


def sources(args: argparse.Namespace, ffmpeg: str, workdir: Path) -> Iterator[tuple[str, Path, int, Encode]]:
    """Each clip's source (``--seconds`` long, or the clip's own length), then for each size its ET encode."""
    for clip in args.clips:
        seconds = min(args.seconds, CLIP_SECONDS.get(clip, args.seconds))
        source = make_source(ffmpeg, clip, seconds, workdir / f"{clip}.mp4")
        for size in args.sizes:
            yield clip, source, size, encode_et(ffmpeg, source, workdir, size, args.threads)


def collect(
    args: argparse.Namespace, ffmpeg: str, rows_for: Callable[[str, Path, int, Encode, Path], Iterable[R]],
    show: Callable[[R], str],
) -> list[R]:  # fmt: skip
    """The rows ``rows_for(clip, source, size, et, workdir)`` makes for every clip and size, each printed with
    ``show`` as it comes (unless ``--json``)."""
    rows: list[R] = []
    with tempfile.TemporaryDirectory(prefix="vc-quality-bench-") as tmp:
        for clip, source, size, et in sources(args, ffmpeg, Path(tmp)):
            for row in rows_for(clip, source, size, et, Path(tmp)):
                rows.append(row)
                if not args.json:
                    print(show(row), flush=True)
    return rows


def run_bench(args: argparse.Namespace, ffmpeg: str) -> list[Row]:
    def rows_for(clip: str, source: Path, size: int, et: Encode, workdir: Path) -> Iterator[Row]:
        for label, rendition in variants(args, size):
            yield Row(clip, size, label, et, encode_ours(ffmpeg, source, workdir, rendition, args.threads))

    return collect(args, ffmpeg, rows_for, format_row)


HEADER = (
    f"{'clip':7} {'size':5} {'ours':30} {'VMAF ET':>7} {'ours':>6} {'ΔVMAF':>6} {'MB ET':>6} {'ours':>6} "
    f"{'ratio':>5} {'s ET':>5} {'ours':>5} {'ratio':>5} {'cpu':>5}  target"
)


def format_row(row: Row) -> str:
    et, ours = row.et, row.ours
    return (
        f"{row.clip:7} {row.size:<5} {row.variant:30} {et.quality.vmaf_mean:7.2f} {ours.quality.vmaf_mean:6.2f} "
        f"{row.vmaf_delta:+6.2f} {et.quality.output_bytes / 1e6:6.2f} {ours.quality.output_bytes / 1e6:6.2f} "
        f"{row.bytes_ratio:5.2f} {et.seconds:5.1f} {ours.seconds:5.1f} {row.time_ratio:5.2f} {row.cpu_ratio:5.2f}  "
        f"{'yes' if row.target_met else 'NO'}"
    )


def row_json(row: Row) -> dict[str, Any]:
    return {
        "clip": row.clip,
        "size": row.size,
        "variant": row.variant,
        "et": {"encode_seconds": row.et.seconds, "encode_cpu_seconds": row.et.cpu_seconds, **row.et.quality.as_dict()},
        "ours": {
            "encode_seconds": row.ours.seconds,
            "encode_cpu_seconds": row.ours.cpu_seconds,
            **row.ours.quality.as_dict(),
        },
        "vmaf_delta": row.vmaf_delta,
        "bytes_ratio": row.bytes_ratio,
        "time_ratio": row.time_ratio,
        "cpu_ratio": row.cpu_ratio,
        "target_met": row.target_met,
    }


def targets(text: str) -> tuple[int, list[float]]:
    """``720=97,97.5``: a size and the per-title targets to try at it."""
    size, _, values = text.partition("=")
    return int(size), [float(v) for v in values.split(",")]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each generated clip")
    parser.add_argument("--clips", type=lambda s: s.split(","), default=list(CLIPS))
    parser.add_argument("--sizes", type=lambda s: [int(n) for n in s.split(",")], default=[720, 1080])
    parser.add_argument("--crf", type=int, nargs="*", help="our CRF values to try (default: the rendition's)")
    parser.add_argument("--cap-ratio", type=float, nargs="*", help="our cap as a fraction of ET's bitrate")
    parser.add_argument("--preset", nargs="*", help="our x264 presets to try (default: the rendition's)")
    parser.add_argument("--keyframe-seconds", type=float, nargs="*", help="our keyframe intervals to try")
    parser.add_argument("--threads", type=int, default=0, help="FFmpeg threads for every run (0: FFmpeg's choice)")
    parser.add_argument("--per-title", action="store_true", help="ET, fixed CRF and per-title for each clip and size")
    parser.add_argument("--target", type=targets, nargs="*", default=[], help="per-title targets, e.g. 720=97,97.5")
    parser.add_argument("--per-title-cap", type=float, help="per-title cap as a share of ET's bitrate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.target = dict(args.target)
    unknown = sorted(set(args.clips) - set(CLIPS))
    if unknown or set(args.sizes) - set(ET_PRESETS):
        parser.error(f"clips are {', '.join(CLIPS)}; sizes are 720 and 1080")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ffmpeg = ffmpeg_executable()
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    command = shlex.join([".venv/bin/python", "bench/quality.py", *(sys.argv[1:] if argv is None else argv)])
    if args.per_title:
        from quality_per_title import run_per_title_mode

        return run_per_title_mode(args, ffmpeg, command, version)
    if not args.json:
        print(f"$ {command}\n{version}\n{HEADER}", flush=True)
    rows = run_bench(args, ffmpeg)
    verdicts = {
        variant: all(r.target_met for r in rows if r.variant == variant)
        for variant in dict.fromkeys(r.variant for r in rows)
    }
    if args.json:
        print(json.dumps({"command": command, "ffmpeg": version, "rows": [row_json(r) for r in rows], "met": verdicts}))
        return 0
    print(
        f"target: ΔVMAF >= -{VMAF_TOLERANCE} (equal: within {VMAF_TOLERANCE} points), "
        f"bytes <= {MAX_BYTES_RATIO:.0%}, time <= {MAX_TIME_RATIO}x"
    )
    for variant, met in verdicts.items():
        print(f"  {variant}: {'met on every clip and size' if met else 'NOT met on every clip and size'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
