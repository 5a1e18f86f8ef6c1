"""Measured quality of an output against its source: VMAF (libvmaf, model vmaf_v0.6.1), PSNR and bitrate.

The output is the *distorted* picture; the source, the *reference*, is brought onto the output's grid first:
its timestamps start at zero, an ``fps`` filter resamples it to the output's frame rate (so frame n of one is
compared with frame n of the other, whatever the converter did to the rate), it is scaled to the output's size
with the converter's scaler (and tone-mapped as the converter does when an HDR source became SDR), and both
become 8-bit 4:2:0. The argument list is built as a pure step
(:func:`build_quality_command`); :func:`measure_quality` probes, runs FFmpeg and reads its logs.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from videoconverter.errors import PermanentError, TranscodeError
from videoconverter.renditions import Limits
from videoconverter.transcode.color import tonemap_filters
from videoconverter.transcode.command import input_args, upload_input
from videoconverter.transcode.probe import MediaInfo, probe
from videoconverter.transcode.products import Runner
from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg

VMAF_MODEL = "vmaf_v0.6.1"  # libvmaf's built-in model, trained for 1080p viewing on a TV-sized screen
SCALER = "bicubic"  # the scaler build_command uses, so a size change costs what it costs in a conversion
PIXEL_FORMAT = "yuv420p"
VMAF_LOG = "vmaf.json"  # relative: FFmpeg runs in the private work directory
PSNR_LOG = "psnr.log"
#: PSNR reported for pictures that are identical (infinite in theory; JSON has no infinity).
MAX_PSNR_DB = 100.0


@dataclass(frozen=True)
class QualityReport:
    """How close an output is to its source, and what it costs.

    ``vmaf_mean`` is the usual headline figure (0-100, higher is better); ``vmaf_harmonic_mean`` weighs bad
    frames more, and ``vmaf_min`` is the worst frame. PSNR is FFmpeg's overall figure, from the mean squared
    error over all compared frames (luma, and the average of Y, U, V weighted by their sizes), in dB.
    """

    vmaf_mean: float
    vmaf_harmonic_mean: float
    vmaf_min: float
    psnr_y: float
    psnr_avg: float
    video_kbps: float  # the output's video stream: its packets' bytes over the output's duration
    total_kbps: float  # the whole file, container included
    output_bytes: int
    duration_seconds: float
    width: int  # the compared picture: the output's, rotation applied
    height: int
    frame_rate: float  # the output's, which the source was resampled to
    frames_compared: int

    def as_dict(self) -> dict[str, float | int]:
        """The stable JSON object of ``videoconverter quality --json`` (the field names above)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def build_quality_command(
    ffmpeg: str,
    source: Path,
    output: Path,
    source_info: MediaInfo,
    output_info: MediaInfo,
    limits: Limits,
    threads: int = 1,
) -> list[str]:
    """Arguments (``argv[0]`` included) that compare ``output`` (input 0) with ``source`` (input 1) and write
    the logs :data:`VMAF_LOG` and :data:`PSNR_LOG` into FFmpeg's working directory. Both inputs get the hardened
    options of :func:`upload_input` (a file we measure may be an upload). ``threads`` (1 or more) goes to
    libvmaf and the filter graph."""
    width, height = compared_size(output_info)
    rate = _rate_text(output_info.frame_rate or source_info.frame_rate or 30.0)
    # The converter tone-mapped an HDR source it made SDR: compare with it as an SDR viewer would have seen it.
    reference = [f"fps={rate}", reference_picture(width, height, source_info.is_hdr and not output_info.is_hdr)]
    graph = ";".join(
        [
            f"[0:v]{DISTORTED_FILTERS}[distorted]",
            f"[1:v]setpts=PTS-STARTPTS,{','.join(reference)},split=2[reference_psnr][reference_vmaf]",
            # psnr passes its first input through untouched, so the same distorted frames go on to libvmaf.
            f"[distorted][reference_psnr]psnr=stats_file={PSNR_LOG}:shortest=1[checked]",
            f"[checked][reference_vmaf]{vmaf_filter(VMAF_LOG, threads)}[measured]",
        ]
    )
    return [
        *input_args(ffmpeg, output, output_info, limits),
        *upload_input(source, source_info, limits),
        "-filter_threads",
        str(threads),
        "-filter_complex",
        graph,
        "-map",
        "[measured]",
        "-f",
        "null",
        "-",
    ]


#: The output's frames as libvmaf compares them: timestamps from zero, 8-bit 4:2:0.
DISTORTED_FILTERS = f"setpts=PTS-STARTPTS,format={PIXEL_FORMAT}"


def reference_picture(width: int, height: int, tonemap: bool) -> str:
    """The source's frames (already at the output's rate) brought onto the output's picture: its size with the
    converter's scaler, tone-mapped when the converter tone-maps, 8-bit 4:2:0."""
    filters = [
        f"scale={width}:{height}:flags={SCALER}",
        *(tonemap_filters() if tonemap else []),
        f"format={PIXEL_FORMAT}",
    ]
    return ",".join(filters)


def vmaf_filter(log_path: str, threads: int, subsample: int = 1) -> str:
    """libvmaf with our model, a JSON log at ``log_path`` (relative to FFmpeg's working directory), ``threads``
    threads, and every ``subsample``-th frame scored (1: all); it ends with the shorter input."""
    every = f":n_subsample={subsample}" if subsample > 1 else ""
    return f"libvmaf=model=version={VMAF_MODEL}:log_fmt=json:log_path={log_path}:n_threads={threads}{every}:shortest=1"


def compared_size(info: MediaInfo) -> tuple[int, int]:
    """The output's decoded picture size: coded pixels, turned as FFmpeg auto-rotates a rotation tag."""
    return (info.height, info.width) if info.rotation_degrees % 180 else (info.width, info.height)


def _rate_text(frames_per_second: float) -> str:
    # The probe gives a float; 29.97 must become exactly 30000/1001 or the fps filter drifts a frame a minute.
    rate = Fraction(frames_per_second).limit_denominator(1001)
    return f"{rate.numerator}/{rate.denominator}"


def measure_quality(
    source: Path,
    output: Path,
    *,
    ffmpeg: str | None = None,
    limits: Limits | None = None,
    threads: int = 0,
) -> QualityReport:
    """Compare ``output`` with the ``source`` it was converted from (see the module's docstring).

    ``threads`` 0 uses every core this process may run on. Raises :class:`NotAVideoError`,
    :class:`NoVideoStreamError` or :class:`LimitExceededError` (naming the file) when either file cannot be
    measured, :class:`TranscodeError` when FFmpeg fails or writes no usable log.
    """
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="videoconverter-quality-") as tmp:
        workdir = Path(tmp)
        run: Runner = lambda args, _duration: run_ffmpeg(  # noqa: E731
            args, workdir=workdir, timeout_seconds=limits.transcode_timeout_seconds
        )
        source_info = _probe(source, limits)
        return measure_with(run, workdir, ffmpeg or ffmpeg_executable(), source, source_info, output, limits, threads)


def measure_with(
    run: Runner,
    workdir: Path,
    ffmpeg: str,
    source: Path,
    source_info: MediaInfo,
    output: Path,
    limits: Limits,
    threads: int = 0,
) -> QualityReport:
    """:func:`measure_quality` with ``run`` running FFmpeg in ``workdir`` (where it writes its logs): how a
    conversion measures its own output, through the job's runner (timeout, stop flag, lease)."""
    output_info = _probe(output, limits)
    threads = threads if threads > 0 else cores()
    # Absolute paths: FFmpeg runs in the work directory.
    args = build_quality_command(
        ffmpeg, source.absolute(), output.absolute(), source_info, output_info, limits, threads
    )
    run(args, None)
    vmaf = read_vmaf_log(workdir / VMAF_LOG)
    psnr_y, psnr_avg = read_psnr_log(workdir / PSNR_LOG)
    size = output.stat().st_size
    duration = output_info.duration_seconds or 0.0
    width, height = compared_size(output_info)
    return QualityReport(
        vmaf_mean=vmaf.mean,
        vmaf_harmonic_mean=vmaf.harmonic_mean,
        vmaf_min=vmaf.minimum,
        psnr_y=psnr_y,
        psnr_avg=psnr_avg,
        video_kbps=_kbps(video_stream_bytes(output, limits), duration),
        total_kbps=_kbps(size, duration),
        output_bytes=size,
        duration_seconds=duration,
        width=width,
        height=height,
        frame_rate=output_info.frame_rate or 0.0,
        frames_compared=vmaf.frames,
    )


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _probe(path: Path, limits: Limits) -> MediaInfo:
    try:
        return probe(path, limits)
    except PermanentError as exc:
        # The probe speaks of "the upload"; here there are two files, so say which one.
        raise type(exc)(f"{path}: {exc.message}") from exc
    except OSError as exc:
        raise PermanentError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def _kbps(byte_count: int, seconds: float) -> float:
    return byte_count * 8 / seconds / 1000 if seconds > 0 else 0.0


@dataclass(frozen=True)
class VmafScores:
    mean: float
    harmonic_mean: float
    minimum: float
    frames: int


def read_vmaf_log(path: Path) -> VmafScores:
    """The pooled scores of a libvmaf JSON log. Raises :class:`TranscodeError` if it is missing or empty."""
    try:
        log = json.loads(path.read_text())
        frames = [frame["metrics"]["vmaf"] for frame in log["frames"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TranscodeError(f"FFmpeg wrote no usable VMAF log: {exc}") from exc
    if not frames:
        raise TranscodeError("no frames were compared: the output and the source have no common time span")
    return VmafScores(
        mean=statistics.fmean(frames),
        # libvmaf's own harmonic mean adds 1 to every score so that a frame scoring 0 does not make it 0.
        harmonic_mean=len(frames) / sum(1.0 / (score + 1.0) for score in frames) - 1.0,
        minimum=min(frames),
        frames=len(frames),
    )


def read_psnr_log(path: Path) -> tuple[float, float]:
    """Luma and average PSNR over all frames of a ``psnr`` stats file, from the mean squared errors (as FFmpeg
    computes its summary line), for 8-bit pictures."""
    try:
        lines = [dict(field.split(":", 1) for field in line.split()) for line in path.read_text().splitlines()]
        mse_y = statistics.fmean(float(line["mse_y"]) for line in lines)
        mse_avg = statistics.fmean(float(line["mse_avg"]) for line in lines)
    except (OSError, ValueError, KeyError, statistics.StatisticsError) as exc:
        raise TranscodeError(f"FFmpeg wrote no usable PSNR log: {exc}") from exc
    return _psnr_db(mse_y), _psnr_db(mse_avg)


def _psnr_db(mse: float) -> float:
    return MAX_PSNR_DB if mse <= 0 else min(MAX_PSNR_DB, 10 * math.log10(255**2 / mse))


def video_stream_bytes(path: Path, limits: Limits) -> int:
    """The bytes of the first video stream's packets (read, not decoded), with the probe's input restrictions."""
    keyframes, others = packet_sizes(path, limits)
    return sum(keyframes) + sum(others)


def packet_sizes(path: Path, limits: Limits) -> tuple[list[int], list[int]]:
    """The sizes of the first video stream's packets, keyframes and the others (read, not decoded), with the
    probe's input restrictions."""
    import av  # here: a process that never reads packets (a `jobs` command) does not load PyAV's libraries

    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(limits.allowed_input_formats)}
    keyframes: list[int] = []
    others: list[int] = []
    try:
        with av.open(str(path), mode="r", options=options) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size:
                    (keyframes if packet.is_keyframe else others).append(packet.size)
    except av.FFmpegError as exc:
        raise TranscodeError(f"{path}: cannot read the video stream's packets: {exc}") from exc
    return keyframes, others
