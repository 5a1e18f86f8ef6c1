"""Quality per title, the running part: encode samples of the source at a CRF, score them, repeat.

Each round is two FFmpeg runs through the job's runner (the same preamble, hardened inputs, timeout, stop flag
and lease as every conversion): one decodes the sample windows (``-ss``/``-t`` on the upload, joined by
``concat``), makes them constant-rate once and encodes them for every output still searching, each with its
real settings at the CRF :func:`.pertitle.next_crf` picked; the other scores each encode with libvmaf against
the same windows of the source, brought onto the output's picture as :mod:`.quality` does. A failed run is a
:class:`TranscodeError` like any other, so the job is retried. The argument lists are pure functions.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from videoconverter.errors import NotAVideoError, NoVideoStreamError
from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.command import keeps_hdr, picture_filters, preamble, rate_filter, upload_input, video_args
from videoconverter.transcode.framerate import frames_per_interval
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.pertitle import (
    MAX_PROBES,
    Probe,
    QualityChoice,
    QualitySearch,
    SampleWindow,
    candidate_starts,
    choose_crf,
    decode_groups,
    first_crf,
    lowest_useful_crf,
    next_crf,
    sample_plan,
    sample_windows,
    vmaf_subsample,
)
from videoconverter.transcode.probe import MediaInfo, keyframes_before, probe
from videoconverter.transcode.products import Conversion
from videoconverter.transcode.quality import (
    DISTORTED_FILTERS,
    cores,
    packet_sizes,
    read_vmaf_log,
    reference_picture,
    vmaf_filter,
)

SAMPLES_DIRECTORY = "pertitle"


class SearchTarget(NamedTuple):
    """One encode to choose a CRF for: an MP4 rendition, or one rung of a ladder (its own settings and size)."""

    name: str
    rendition: Rendition
    size: OutputSize


@dataclass(frozen=True)
class SampleEncode:
    target: SearchTarget
    crf: int
    path: Path  # the encoded samples (absolute: FFmpeg runs in the job's directory)
    vmaf_log: str  # relative to the job's directory


def skip_reason(info: MediaInfo, rendition: Rendition) -> str:
    """Why a rendition with a VMAF target keeps its fixed CRF for this source ("" when it can search)."""
    if keeps_hdr(info, rendition):
        return "VMAF target not used: the output stays HDR, and VMAF scores SDR pictures; fixed CRF used"
    if not info.duration_seconds or info.duration_seconds <= 0:
        return "VMAF target not used: the source's duration is unknown; fixed CRF used"
    return ""


def searched(
    job: Conversion, rendition: Rendition, targets: Sequence[SearchTarget]
) -> tuple[QualitySearch | None, str]:
    """The search for ``targets`` when ``rendition`` has a VMAF target, or None and why not (the note says it):
    see :func:`skip_reason`; and a source whose samples hold no frame (an accepted truncated upload whose data
    ends before them) keeps the fixed CRF too."""
    if not rendition.target_vmaf:
        return None, ""
    reason = skip_reason(job.info, rendition)
    if reason:
        return None, reason
    try:
        return search_quality(job, targets), ""
    except (NotAVideoError, NoVideoStreamError):
        return None, "VMAF target not used: the samples held no picture (the source ends early); fixed CRF used"


def plan_samples(job: Conversion) -> tuple[tuple[SampleWindow, ...], ...]:
    """The sample windows of the job's source (see :func:`.pertitle.sample_windows`), keyframe-aligned, in the
    runs one decoding pass reads (:func:`.pertitle.decode_groups`)."""
    duration = job.info.duration_seconds or 0.0
    plan = sample_plan(duration)
    starts = candidate_starts(duration, *plan) if plan[1] < duration else []
    keyframes = keyframes_before(job.source, job.limits, starts) if starts else []
    return decode_groups(sample_windows(duration, keyframes, plan), keyframes)


def search_quality(job: Conversion, targets: Sequence[SearchTarget]) -> QualitySearch:
    """Choose a CRF for each of ``targets`` (their renditions' ``target_vmaf``), in rounds of samples."""
    started = time.monotonic()
    groups = plan_samples(job)
    windows = tuple(window for group in groups for window in group)
    directory = job.workdir / SAMPLES_DIRECTORY
    directory.mkdir(exist_ok=True)
    windows_file = directory / "windows.mov"
    job.run(
        extract_command(job.ffmpeg, job.source, job.info, job.limits, groups, targets[0].rendition, windows_file), None
    )
    probes: dict[str, list[Probe]] = {t.name: [] for t in targets}
    pending = {
        t.name: first_crf(t.rendition.effective_crf, t.rendition.codec, t.rendition.target_vmaf) for t in targets
    }
    for round_number in range(MAX_PROBES):
        encodes = [_sample_encode(job, t, pending[t.name], round_number, i) for i, t in enumerate(targets)
                   if t.name in pending]  # fmt: skip
        for encode, probe_result in zip(encodes, run_round(job, windows_file, encodes), strict=True):
            probes[encode.target.name].append(probe_result)
        pending = {}
        for t in targets:
            crf = next_crf(
                probes[t.name], t.rendition.target_vmaf, t.rendition.max_video_bitrate_kbps, t.rendition.codec
            )
            if crf is not None:
                pending[t.name] = crf
        if not pending:
            break
    choices = tuple(_choice(t, probes[t.name]) for t in targets)
    return QualitySearch(windows, choices, time.monotonic() - started)


def _sample_encode(job: Conversion, target: SearchTarget, crf: int, round_number: int, index: int) -> SampleEncode:
    name = f"r{round_number}-{index}"
    return SampleEncode(target, crf, job.workdir / SAMPLES_DIRECTORY / f"{name}.mp4", f"vmaf-{name}.json")


def _choice(target: SearchTarget, probes: list[Probe]) -> QualityChoice:
    rendition = target.rendition
    cap = rendition.max_video_bitrate_kbps
    crf, vmaf, kbps = choose_crf(probes, rendition.target_vmaf, cap, rendition.codec)
    capped = vmaf < rendition.target_vmaf and crf <= lowest_useful_crf(probes, cap, rendition.codec)
    return QualityChoice(target.name, rendition.target_vmaf, crf, vmaf, kbps, tuple(probes), capped)


def run_round(job: Conversion, windows_file: Path, encodes: Sequence[SampleEncode]) -> list[Probe]:
    """Encode the samples for every encode of this round, score them; one probe each, in order."""
    windows_info = probe(windows_file, job.limits)
    threads = job.threads if job.threads > 0 else cores()
    job.run(sample_encode_command(job.ffmpeg, windows_file, windows_info, job.limits, encodes, job.threads), None)
    infos = [probe(encode.path, job.limits) for encode in encodes]
    frames = round((windows_info.duration_seconds or 0.0) * (windows_info.frame_rate or 30.0))
    every = vmaf_subsample(frames)
    tonemap = job.info.is_hdr and not keeps_hdr(job.info, encodes[0].target.rendition)
    args = sample_vmaf_command(
        job.ffmpeg, windows_file, windows_info, job.limits, encodes, infos, threads, every, tonemap
    )
    job.run(args, None)
    rate = windows_info.frame_rate or 30.0
    interval = encodes[0].target.rendition.keyframe_interval_seconds
    gop = frames_per_interval(Fraction(rate).limit_denominator(1001), interval)
    return [
        Probe(e.crf, read_vmaf_log(job.workdir / e.vmaf_log).mean, steady_kbps(e.path, job.limits, gop, rate))
        for e in encodes
    ]


def steady_kbps(path: Path, limits: Limits, gop_frames: int, frames_per_second: float) -> float:
    """The video bitrate the encode of a whole source would have, from a sample encode's packets: every
    window starts with a keyframe, far more often than every ``gop_frames`` frames as in the real encode, so the
    keyframes' and the other frames' mean sizes are weighed as one GOP holds them."""
    keyframes, others = packet_sizes(path, limits)
    if not keyframes or not others:
        return sum(keyframes + others) * 8e-3 * frames_per_second / max(1, len(keyframes) + len(others))
    per_frame = (statistics.fmean(keyframes) + (gop_frames - 1) * statistics.fmean(others)) / gop_frames
    return per_frame * 8e-3 * frames_per_second


def extract_command(
    ffmpeg: str, source: Path, info: MediaInfo, limits: Limits, groups: Sequence[Sequence[SampleWindow]],
    rendition: Rendition, destination: Path,
) -> list[str]:  # fmt: skip
    """One FFmpeg that decodes the windows of the upload, made constant-rate as the conversion does, joined,
    and kept losslessly in ``destination``: every round then reads only these frames, and VMAF compares with
    exactly them. Each group of windows is one input cut with ``-ss``/``-t`` (FFmpeg seeks to the keyframe
    before and decodes from there, so a window starts exactly), its windows picked with ``select``."""
    args = [*preamble(ffmpeg)]
    graph = []
    for i, group in enumerate(groups):
        start, end = group[0].start_seconds, group[-1].end_seconds
        args += upload_input(source, info, limits, ["-ss", f"{start:.3f}", "-t", f"{end - start:.3f}"])
        picked = "+".join(f"between(t,{w.start_seconds - start:.3f},{w.end_seconds - start - 1e-3:.3f})" for w in group)
        chosen = f",select='{picked}',setpts=N/FRAME_RATE/TB" if len(group) > 1 else ""
        graph.append(f"[{i}:v]{rate_filter(info, rendition)}{chosen}[g{i}]")
    joined = "".join(f"[g{i}]" for i in range(len(groups)))
    graph.append(f"{joined}concat=n={len(groups)}:v=1:a=0[joined]")
    # Ut Video is quick to write and read; 10-bit HDR goes to x264 (QP 0), which keeps its 10 bits.
    codec = ["-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"] if info.is_hdr else ["-c:v", "utvideo"]
    return [
        *args, "-filter_complex", ";".join(graph), "-map", "[joined]", "-map_metadata", "-1", "-map_chapters",
        "-1", *codec, "-fs", str(limits.max_output_bytes), "-f", "mov", f"file:{destination}",
    ]  # fmt: skip


def _split(count: int) -> str:
    return f"split={count}" + "".join(f"[w{i}]" for i in range(count))


def sample_encode_command(
    ffmpeg: str, windows_file: Path, windows_info: MediaInfo, limits: Limits, encodes: Sequence[SampleEncode],
    threads: int = 0,
) -> list[str]:  # fmt: skip
    """One FFmpeg that encodes the extracted windows once per encode, each with its rendition's real settings
    at its CRF, at its size, without audio."""
    graph = [f"[0:v]{_split(len(encodes))}"]
    outputs: list[str] = []
    for i, encode in enumerate(encodes):
        rendition = dataclasses.replace(encode.target.rendition, crf=encode.crf)
        graph.append(f"[w{i}]{picture_filters(windows_info, encode.target.size, rendition)}[v{i}]")
        outputs += ["-map", f"[v{i}]", *video_args(windows_info, rendition), "-an"]
        outputs += ["-threads", str(threads)] if threads > 0 else []
        outputs += ["-fs", str(limits.max_output_bytes), "-f", "mp4", f"file:{encode.path}"]
    args = [*preamble(ffmpeg), *upload_input(windows_file, windows_info, limits)]
    return [*args, "-filter_complex", ";".join(graph), "-map_metadata", "-1", *outputs]


def sample_vmaf_command(
    ffmpeg: str, windows_file: Path, windows_info: MediaInfo, limits: Limits, encodes: Sequence[SampleEncode],
    encoded_infos: Sequence[MediaInfo], threads: int, subsample: int = 1, tonemap: bool = False,
) -> list[str]:  # fmt: skip
    """One FFmpeg that scores every encode (inputs first) against the extracted windows (the last input),
    brought onto the encode's picture as :mod:`.quality` does, into its ``vmaf_log``; every ``subsample``-th
    frame. ``tonemap``: the conversion tone-maps the HDR source to SDR, so the reference is tone-mapped too."""
    args = [*preamble(ffmpeg)]
    for encode, encoded in zip(encodes, encoded_infos, strict=True):
        args += upload_input(encode.path, encoded, limits)
    args += upload_input(windows_file, windows_info, limits)
    graph = [f"[{len(encodes)}:v]setpts=PTS-STARTPTS,{_split(len(encodes))}"]
    outputs: list[str] = []
    for i, encode in enumerate(encodes):
        size = encode.target.size
        graph.append(f"[w{i}]{reference_picture(size.width, size.height, tonemap)}[r{i}]")
        graph.append(f"[{i}:v]{DISTORTED_FILTERS}[d{i}]")
        graph.append(f"[d{i}][r{i}]{vmaf_filter(encode.vmaf_log, threads, subsample)}[m{i}]")
        outputs += ["-map", f"[m{i}]", "-f", "null", "-"]
    return [*args, "-filter_threads", str(threads), "-filter_complex", ";".join(graph), *outputs]
