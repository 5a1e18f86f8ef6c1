"""The FFmpeg command lines a worker runs for an MP4 rendition, built by the package's own functions, for the
benchmarks that run them by hand (bench/overhead.py's bare run, bench/peer.py's Celery worker), and their
comparison with the lines a worker really ran.

A rendition with a VMAF target (quality per title) runs a search first whose FFmpeg lines depend on what it
measures, so they cannot be built ahead: these are the lines of a fixed-CRF rendition (``target_vmaf = 0``),
or the final encode of a searching one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from videoconverter.config import Config
from videoconverter.transcode.command import build_command
from videoconverter.transcode.geometry import output_size
from videoconverter.transcode.probe import probe

BLANK_PATH = "file:<path>"


def rendition_lines(
    ffmpeg: str, source: Path, config: Config, destination: Callable[[str], Path]
) -> dict[str, list[str]]:
    """Each configured rendition's FFmpeg argument list converting ``source`` into ``destination(name)``, as
    the worker builds it: the same probe, output size, limits and thread count."""
    info = probe(source, config.limits)
    lines = {}
    for rendition in config.renditions:
        size = output_size(*info.display_size, rendition)
        lines[rendition.name] = build_command(
            ffmpeg, source, destination(rendition.name), info, size, rendition, config.limits, config.ffmpeg_threads
        )
    return lines


def normalised(args: list[str] | tuple[str, ...]) -> list[str]:
    """An FFmpeg argument list with its (temporary) input and output paths blanked, for comparison; the
    runner's `setpriv --pdeathsig KILL --` prefix (it execs FFmpeg in place) is left out."""
    args = list(args)
    if args and args[0].endswith("setpriv") and "--" in args:
        args = args[args.index("--") + 1 :]
    return [BLANK_PATH if a.startswith("file:") else a for a in args]


def video_filter(args: list[str] | tuple[str, ...]) -> str:
    """The ``-vf`` of an argument list ("" without one): it tells the renditions' encodes apart."""
    args = list(args)
    return args[args.index("-vf") + 1] if "-vf" in args[:-1] else ""
