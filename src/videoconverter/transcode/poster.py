"""Poster frames, of both kinds: the ``thumbnails`` rendition's and the dashboard's.

The rendition's poster is a first picture worth showing, past the black frames and fade-in a video often starts
with. One cheap FFmpeg run measures the mean luma of the first :data:`SCAN_SECONDS` (4 frames a second, at 160
pixels wide); :func:`choose_poster_time` picks from those measures; a second run extracts that one frame at full
size (:func:`extract_args`). The dashboard's poster of an MP4 output is its first frame, small
(:func:`preview_args`). Every argument list starts with the hardened input of :func:`.command.input_args`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from videoconverter.renditions import Limits
from videoconverter.transcode.color import tonemap_filters
from videoconverter.transcode.command import input_args
from videoconverter.transcode.probe import MediaInfo

SCAN_SECONDS = 10.0
SCAN_FRAMES_PER_SECOND = 4
SCAN_WIDTH = 160
#: Mean luma (8-bit) at or below which a frame counts as black. Limited-range black is 16 and full-range
#: black 0; a fade-in's first frames and a noisy black sit a little above 16, a dark scene well above 24.
BLACK_LUMA_MAX = 24.0
#: After black, the first non-black frame is often the start of a fade-in: take the poster a little later.
FADE_IN_SKIP_SECONDS = 0.5
#: Never seek closer than this to the end: a seek past the last frame decodes nothing.
END_MARGIN_SECONDS = 0.25
POSTER_JPEG_QUALITY = 2  # FFmpeg's -q:v for MJPEG: 2 is the best it usefully does
PREVIEW_JPEG_QUALITY = 4  # the dashboard's small poster: smaller files, as it is shown small
YAVG_KEY = "lavfi.signalstats.YAVG"

_FRAME_LINE = re.compile(r"^frame:\d+\s+pts:\S+\s+pts_time:(\S+)")
_YAVG_LINE = re.compile(rf"^{re.escape(YAVG_KEY)}=(\S+)")


@dataclass(frozen=True)
class LumaSample:
    time_seconds: float
    mean_luma: float  # 8-bit scale, whatever the source's bit depth


@dataclass(frozen=True)
class PosterChoice:
    time_seconds: float
    note: str  # why the poster is not simply the first non-black frame, or ""


def escape_filter_value(value: str) -> str:
    """``value`` as one option value inside a ``-vf`` filter graph: escaped for the option parser, then for the
    graph parser, so a path's ``:``, ``,``, ``'`` or brackets are never read as syntax."""
    for special in "\\':":
        value = value.replace(special, "\\" + special)
    for special in "\\'[],;":
        value = value.replace(special, "\\" + special)
    return value


def scan_args(ffmpeg: str, source: Path, info: MediaInfo, limits: Limits, log: Path) -> list[str]:
    """Arguments of the luma scan: the start of the video, small, one line pair a frame written to ``log``."""
    graph = (
        # 8-bit before measuring: signalstats reports in the picture's own bit depth (10-bit black is 64).
        f"fps={SCAN_FRAMES_PER_SECOND},scale={SCAN_WIDTH}:-2,format=yuv420p,signalstats,"
        f"metadata=print:key={YAVG_KEY}:file={escape_filter_value(f'file:{log}')}"
    )
    return [
        *input_args(ffmpeg, source, info, limits),
        "-map", "0:v:0",
        "-t", f"{SCAN_SECONDS:g}",
        "-vf", graph,
        "-f", "null",
        "-",
    ]  # fmt: skip


def parse_luma_log(text: str) -> tuple[LumaSample, ...]:
    """The (time, mean luma) pairs in the log of ``metadata=print`` (a ``frame:N pts:P pts_time:T`` line, then
    ``lavfi.signalstats.YAVG=V``). Unreadable or incomplete records are skipped: the log is only advice."""
    samples = []
    time: float | None = None
    for line in text.splitlines():
        if frame := _FRAME_LINE.match(line):
            time = _finite(frame.group(1))
        elif (value := _YAVG_LINE.match(line)) and time is not None:
            luma = _finite(value.group(1))
            if luma is not None:
                samples.append(LumaSample(time, luma))
            time = None
    return tuple(samples)


def scan_end_seconds(samples: tuple[LumaSample, ...]) -> float | None:
    """Where the scan's last frame ends (it stops at :data:`SCAN_SECONDS`, or earlier at the end of the video
    stream); None without samples."""
    return max(sample.time_seconds for sample in samples) + 1 / SCAN_FRAMES_PER_SECOND if samples else None


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def choose_poster_time(samples: tuple[LumaSample, ...], duration_seconds: float | None) -> PosterChoice:
    """The first frame that is not black; :data:`FADE_IN_SKIP_SECONDS` later when black came before it (a fade
    in); the middle of the video when the whole scan is black."""
    first = next((i for i, sample in enumerate(samples) if sample.mean_luma > BLACK_LUMA_MAX), None)
    if first is None:
        middle = duration_seconds / 2 if duration_seconds else 0.0
        scanned = min(SCAN_SECONDS, duration_seconds) if duration_seconds else SCAN_SECONDS
        return PosterChoice(
            _clamp(middle, duration_seconds),
            f"the first {scanned:g} s are black: poster taken from the middle ({middle:.1f} s)",
        )
    time = samples[first].time_seconds
    if first > 0:
        time += FADE_IN_SKIP_SECONDS
    return PosterChoice(_clamp(time, duration_seconds), "")


def _clamp(time_seconds: float, duration_seconds: float | None) -> float:
    if duration_seconds is None:
        return max(0.0, time_seconds)
    return max(0.0, min(time_seconds, duration_seconds - END_MARGIN_SECONDS))


def picture_filters(info: MediaInfo, width: int, height: int) -> str:
    """Scale to ``width`` x ``height`` with square pixels; JPEG is SDR, so an HDR source is tone-mapped (after
    the scaling, which is cheaper on the smaller picture) rather than shown washed out."""
    filters = [f"scale={width}:{height}:flags=bicubic", *(tonemap_filters() if info.is_hdr else []), "setsar=1"]
    # JPEG is full range. Left to negotiation, FFmpeg 9's MJPEG encoder is sometimes opened as limited range
    # and refuses to start ("Non full-range YUV is non-standard"), e.g. for a single thumbnail and its sheet.
    return ",".join([*filters, "format=yuvj420p"])


def extract_args(
    ffmpeg: str, source: Path, info: MediaInfo, limits: Limits, time_seconds: float, destination: Path
) -> list[str]:
    """Arguments that write the frame at ``time_seconds`` as a JPEG, upright (FFmpeg's autorotation is on) and
    at the display size, so anamorphic and rotated sources look as a player shows them."""
    width, height = info.display_size  # never scaled up or down
    # Seeking on the input (before -i) jumps to the keyframe before, then decodes only up to the time.
    seek = ["-ss", f"{time_seconds:.3f}"]
    return [
        *input_args(ffmpeg, source, info, limits, seek),
        "-map", "0:v:0",
        "-vf", picture_filters(info, width, height),
        "-frames:v", "1",
        "-q:v", str(POSTER_JPEG_QUALITY),
        *_one_jpeg(destination),
    ]  # fmt: skip


def preview_args(
    ffmpeg: str, source: Path, info: MediaInfo, limits: Limits, destination: Path, max_width: int
) -> list[str]:
    """Arguments that write the first frame of ``source`` (an output, or the start of one) as a JPEG at most
    ``max_width`` wide: the dashboard's poster of an MP4 output. The output is read with the same hardened
    input as an upload, as a stored object is only as trustworthy as the store."""
    return [
        *input_args(ffmpeg, source, info, limits),
        "-map", "0:v:0",
        "-frames:v", "1",
        "-vf", f"scale='min({max_width},iw)':-2,format=yuvj420p",
        "-q:v", str(PREVIEW_JPEG_QUALITY),
        *_one_jpeg(destination),
    ]  # fmt: skip


def _one_jpeg(destination: Path) -> list[str]:
    # One picture, the name taken as is (no %d pattern).
    return ["-update", "1", "-f", "image2", f"file:{destination}"]
