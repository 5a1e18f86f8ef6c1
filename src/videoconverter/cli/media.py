"""The CLI's commands on local media files: `convert` (one file, one rendition) and `quality` (VMAF, PSNR).

``quality --json`` prints one object with the keys of :class:`~videoconverter.transcode.quality.QualityReport`
plus ``source`` and ``output`` (the paths as given)::

    vmaf_mean, vmaf_harmonic_mean, vmaf_min   VMAF 0-100 (model vmaf_v0.6.1), mean / harmonic mean / worst frame
    psnr_y, psnr_avg                          dB over all compared frames (identical pictures: 100.0)
    video_kbps, total_kbps                    the output's video stream and whole file, in kbit/s
    output_bytes, duration_seconds            the output's size and duration
    width, height, frame_rate                 the compared picture (the output's; the source is scaled to it)
    frames_compared                           how many frame pairs were scored

``convert --json`` prints ``{"source", "rendition", "files": [{"path", "bytes", "content_type"}], "note"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videoconverter.config import Config
from videoconverter.errors import VideoConverterError
from videoconverter.progress import human_bytes
from videoconverter.transcode.products import OutputFile

Command = Callable[[str, Any, str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    p = command("convert", cmd_convert, "convert a local video file with a configured rendition into a directory")
    p.add_argument("source", type=Path, help="the video file to convert")
    p.add_argument("outdir", type=Path, help="directory to write into (created if missing)")
    p.add_argument("--rendition", help="rendition name, e.g. 720p (default: the first configured)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p = command("quality", cmd_quality, "measure an output against its source: VMAF, PSNR, bitrate")
    p.add_argument("source", type=Path, help="the original video")
    p.add_argument("output", type=Path, help="the converted video (the source is scaled to its size)")
    p.add_argument("--json", action="store_true", help="print one JSON object (keys: see `videoconverter.cli.media`)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="threads for VMAF (default: every core)")


def cmd_quality(args: argparse.Namespace, config: Config) -> int:
    from videoconverter.transcode.quality import measure_quality

    if args.threads < 0:
        raise VideoConverterError(f"--threads {args.threads}: expected 0 (every core) or more")
    report = measure_quality(args.source, args.output, limits=config.limits, threads=args.threads)
    if args.json:
        print(json.dumps({"source": str(args.source), "output": str(args.output), **report.as_dict()}))
        return 0
    rows = [
        ("VMAF", f"{report.vmaf_mean:.2f} mean, {report.vmaf_harmonic_mean:.2f} harmonic mean, "
                 f"{report.vmaf_min:.2f} worst frame"),
        ("PSNR", f"{report.psnr_y:.2f} dB luma, {report.psnr_avg:.2f} dB average"),
        ("bitrate", f"{report.video_kbps:.0f} kb/s video, {report.total_kbps:.0f} kb/s in all"),
        ("size", f"{human_bytes(report.output_bytes)} ({report.output_bytes} bytes), "
                 f"{report.duration_seconds:.2f} s"),
        ("compared", f"{report.frames_compared} frames at {report.width}x{report.height}, "
                     f"{report.frame_rate:.3f} fps"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"{name:9} {value}")
    return 0


def cmd_convert(args: argparse.Namespace, config: Config) -> int:
    from videoconverter.transcode.produce import convert_file

    source: Path = args.source
    if not source.is_file():
        raise VideoConverterError(f"{source} is not a file")
    rendition = config.rendition(args.rendition) if args.rendition else config.renditions[0]
    outdir: Path = args.outdir
    if (outdir / source.name).resolve() == source.resolve():
        raise VideoConverterError(f"{outdir / source.name} would overwrite the source: choose another OUTDIR")
    if rendition.kind != "mp4" and (outdir / source.name).is_file():
        raise VideoConverterError(
            f"{outdir / source.name} is a file, and a {rendition.kind} rendition writes a directory of that name: "
            "choose another OUTDIR"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    # Converted next to where it ends up, so each move is a rename on one file system: no half-written file
    # ever appears under its final name.
    with tempfile.TemporaryDirectory(prefix=".videoconverter-", dir=outdir) as tmp:
        # Absolute paths: FFmpeg runs in the work directory.
        produced = convert_file(
            source.absolute(), Path(tmp).absolute(), rendition, limits=config.limits, threads=config.ffmpeg_threads
        )
        written: list[dict[str, Any]] = []
        for file in produced.files:
            target = destination(outdir, source, file)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file.path, target)
            written.append({"path": str(target), "bytes": target.stat().st_size, "content_type": file.content_type})
    if args.json:
        quality = produced.quality.as_dict() if produced.quality is not None else None
        fields = {"source": str(source), "rendition": rendition.name, "files": written, "note": produced.note}
        print(json.dumps({**fields, "quality": quality}))
        return 0
    for item in written:
        print(f"wrote {item['path']} ({human_bytes(int(item['bytes']))})")
    if produced.note:
        print(f"note: {produced.note}")
    return 0


def destination(outdir: Path, source: Path, file: OutputFile) -> Path:
    """Where one produced file goes: the output itself ("") takes the source's file name; the files of a
    multi-file rendition go under a directory of that name, as they do under the upload's key in a bucket."""
    if not file.name:
        return outdir / source.name
    relative = Path(file.name.lstrip("/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise VideoConverterError(f"refusing to write the produced file {file.name!r} outside {outdir}")
    return outdir / source.name / relative
