"""Loudness normalisation of one audio track to a rendition's ``loudness_lufs`` (EBU R128 / ITU-R BS.1770).

Two passes of FFmpeg's ``loudnorm``: the first only measures (it decodes the one audio track, nothing else), the
second applies a gain while the output is encoded. "Linear where possible": with the measured values given,
``loudnorm`` applies one constant gain (``linear=true``) unless that gain would put the true peak over the
ceiling, or the source's loudness range over the target range; then it falls back by itself to its dynamic
mode (a gain that follows the short-term loudness, 3 s ahead, and a true-peak limiter), which reaches the
target without clipping but changes the dynamics. :func:`is_linear` predicts which, with loudnorm's own rule,
so the note can say it. A silent track (below BS.1770's -70 LUFS gate) gets no gain: there is nothing to bring
up. The output is measured again with ``ebur128`` and the job's note says before and after.

The measurement goes through loudnorm's ``stats_file`` (a name in the job's directory, where FFmpeg runs)
rather than its log, so the pass keeps the ``-loglevel error`` of every run on an upload and the stderr never
carries the upload's metadata. ``ebur128`` has no such file: its summary is read from the log of a run on our
own output (whose metadata we wrote: none).

For a streaming package (one audio rendition per source track): per track, :func:`plan_loudness` (``track``),
``audio_args(info, rendition, audio_filter=plan.filter)``, then :func:`measure_output` on what was written and
:func:`loudness_note`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from videoconverter.errors import TranscodeError
from videoconverter.renditions import TRUE_PEAK_DBTP, Limits, Rendition
from videoconverter.transcode.command import audio_sample_rate, input_args, preamble
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.products import Conversion

#: BS.1770's absolute gate: a track whose integrated loudness is below it (or -inf) is silent.
SILENCE_LUFS = -70.0
#: AAC's encoding (and the resampling back from loudnorm's 192 kHz) can raise true peaks a little over what
#: loudnorm let through, so loudnorm aims this much under the ceiling and the encoded output stays under it.
CODEC_HEADROOM_DB = 0.5
#: The loudness range loudnorm's dynamic mode aims at, at least (EBU R128 s1 suggests no target; 11 LU is
#: the common default of streaming services). A source with a wider range gets its own as the target, up to
#: loudnorm's limit, so a wide range alone never denies it the linear gain.
LOUDNESS_RANGE_LU = 11.0
MAX_LOUDNESS_RANGE_LU = 50.0
#: loudnorm reads a measured LRA of 0 as "not measured" and refuses linear mode; a constant tone measures 0.
MIN_MEASURED_LRA_LU = 0.01
#: audio_args encodes stereo (``-ac 2``): the loudness measured and normalised is that of the stereo mix.
OUTPUT_LAYOUT = "stereo"
STATS_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # a plain name: nothing for the filter graph to parse
_LOUDNORM_FIELDS = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
_EBUR128_I = re.compile(r"^\s*I:\s*(-?inf|[-+]?\d+(?:\.\d+)?) LUFS\s*$", re.MULTILINE)
_EBUR128_PEAK = re.compile(r"^\s*Peak:\s*(-?inf|[-+]?\d+(?:\.\d+)?) dBFS\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Measurement:
    """What loudnorm's first pass measured on a track (its JSON's ``input_*`` and ``target_offset``)."""

    input_i: float  # integrated loudness, LUFS; -inf for silence
    input_tp: float  # true peak, dBTP
    input_lra: float  # loudness range, LU
    input_thresh: float  # the relative gate, LUFS
    target_offset: float  # LU; the dynamic mode's final gain correction

    @property
    def silent(self) -> bool:
        return not self.input_i > SILENCE_LUFS  # -inf and NaN included


def limiter_true_peak(ceiling_dbtp: float = TRUE_PEAK_DBTP) -> float:
    """The true peak loudnorm is told: the ceiling less the codec's headroom."""
    return ceiling_dbtp - CODEC_HEADROOM_DB


def measure_args(
    ffmpeg: str,
    source: Path,
    info: MediaInfo,
    limits: Limits,
    track: int,
    target: float,
    stats_name: str = "loudnorm.json",
) -> list[str]:
    """Arguments that measure audio track ``track`` of ``source`` (the stereo mix, as it will be encoded) and
    write loudnorm's JSON to ``stats_name`` in FFmpeg's working directory. Only that track is decoded."""
    if not STATS_NAME_RE.match(stats_name):
        raise ValueError(f"not a plain file name: {stats_name!r}")
    options = f"{_targets(target, LOUDNESS_RANGE_LU)}:print_format=json:stats_file={stats_name}"
    chain = f"{_before_loudnorm()},loudnorm={options}"
    args = [*input_args(ffmpeg, source, info, limits), "-map", f"0:a:{track}", "-vn", "-sn", "-dn"]
    return [*args, "-map_metadata", "-1", "-af", chain, "-f", "null", "-"]


def parse_loudnorm(text: str) -> Measurement:
    """The measurement in loudnorm's JSON (``print_format=json``); the last JSON object in ``text`` counts.
    Raises :class:`TranscodeError` when there is none, or a value is missing or not a number."""
    start, end = text.rfind("{"), text.rfind("}")
    try:
        if start < 0 or end < start:
            raise ValueError("no JSON object")
        fields = json.loads(text[start : end + 1])
        values = {name: float(fields[name]) for name in _LOUDNORM_FIELDS}
    except (ValueError, KeyError, TypeError) as exc:
        raise TranscodeError(f"loudnorm's measurement could not be read ({exc})", stderr_tail=text[-2000:]) from exc
    # Silence measures -inf (and an infinite offset); a loudness range is always finite.
    if any(math.isnan(value) for value in values.values()) or not math.isfinite(values["input_lra"]):
        raise TranscodeError("loudnorm's measurement is not a number", stderr_tail=text[-2000:])
    return Measurement(**values)


def linear_gain_db(target: float, measurement: Measurement) -> float:
    return target - measurement.input_i


def is_linear(target: float, measurement: Measurement) -> bool:
    """Whether loudnorm's second pass applies one constant gain: loudnorm's own rule (its ``config_input``)
    with the values :func:`normalise_filter` gives it. False for a silent track (no filter at all)."""
    if measurement.silent:
        return False
    peak = measurement.input_tp + linear_gain_db(target, measurement)
    return peak <= limiter_true_peak() and measurement.input_lra <= _target_range(measurement)


def normalise_filter(target: float, measurement: Measurement, sample_rate: int) -> str:
    """The audio filter that brings a track measured as ``measurement`` to ``target`` LUFS, to go first in
    :func:`.command.audio_args`'s chain (``audio_filter=``), ending at ``sample_rate`` (loudnorm works, and
    outputs, at 192 kHz). "" for a silent track: no gain."""
    if measurement.silent:
        return ""
    measured = ":".join(
        [
            # loudnorm reads 0 as "not measured" (and refuses linear mode), as it does an LRA of 0.
            f"measured_I={_clamp(measurement.input_i, -99, -0.01):.2f}",
            f"measured_TP={_clamp(measurement.input_tp, -99, 99):.2f}",
            f"measured_LRA={_clamp(measurement.input_lra, MIN_MEASURED_LRA_LU, 99):.2f}",
            f"measured_thresh={_clamp(measurement.input_thresh, -99, 0):.2f}",
            f"offset={_clamp(measurement.target_offset, -99, 99):.2f}",
        ]
    )
    options = f"{_targets(target, _target_range(measurement))}:{measured}:linear=true"
    return f"{_before_loudnorm()},loudnorm={options},aresample={sample_rate}"


def ebur128_args(ffmpeg: str, path: Path, stream: int = 0, demuxer: str = "mov") -> list[str]:
    """Arguments that measure audio stream ``stream`` of our own output ``path`` with ``ebur128`` (true peak
    on); its summary is logged at the info level, so this run logs at that level (the file's metadata is ours)."""
    args = [*preamble(ffmpeg), "-loglevel", "info", "-protocol_whitelist", "file", "-f", demuxer]
    args += ["-i", f"file:{path}", "-map", f"0:a:{stream}", "-vn", "-sn", "-dn"]
    # framelog=verbose: the per-100-ms lines stay out of the log, which then ends with the summary.
    return [*args, "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]


def parse_ebur128(text: str) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) from ebur128's last summary in ``text``. Raises
    :class:`TranscodeError` when there is no summary."""
    summary = text[text.rfind("Summary:") :] if "Summary:" in text else ""
    integrated, peak = _EBUR128_I.search(summary), _EBUR128_PEAK.search(summary)
    if integrated is None or peak is None:
        raise TranscodeError("ebur128 printed no summary with a loudness and a true peak", stderr_tail=text[-2000:])
    return float(integrated.group(1)), float(peak.group(1))


@dataclass(frozen=True)
class LoudnessPlan:
    """One track's normalisation, planned from its measurement."""

    target: float  # LUFS
    measurement: Measurement
    sample_rate: int  # of the encoded output
    track: int = 0  # among the source's audio tracks

    @property
    def filter(self) -> str:
        """For ``audio_args(..., audio_filter=)``; "" (no gain) for a silent track."""
        return normalise_filter(self.target, self.measurement, self.sample_rate)

    @property
    def linear(self) -> bool:
        return is_linear(self.target, self.measurement)


def plan_loudness(job: Conversion, rendition: Rendition, track: int = 0) -> LoudnessPlan | None:
    """Measure source audio track ``track`` (one FFmpeg run through ``job.run``) for ``rendition``'s
    ``loudness_lufs``; None when it sets none or the source has no such track. Raises what ``job.run`` raises,
    and :class:`TranscodeError` when loudnorm's measurement cannot be read."""
    target = rendition.loudness_lufs
    tracks = len(job.info.audio_tracks) or int(job.info.has_audio)
    if target is None or track >= tracks:
        return None
    stats = job.workdir / f"loudnorm-{track}.json"
    stats.unlink(missing_ok=True)  # a retried job's directory: never read the previous attempt's
    job.run(measure_args(job.ffmpeg, job.source, job.info, job.limits, track, target, stats.name), None)
    if not stats.exists():
        raise TranscodeError("loudnorm wrote no measurement (its stats_file needs FFmpeg 7.1 or later)")
    return LoudnessPlan(target, parse_loudnorm(stats.read_text("utf-8", "replace")), audio_sample_rate(job.info), track)


def measure_output(job: Conversion, path: Path, stream: int = 0, demuxer: str = "mov") -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of audio stream ``stream`` of our output ``path``."""
    result = job.run(ebur128_args(job.ffmpeg, path, stream, demuxer), None)
    return parse_ebur128(result.stderr_tail)


def loudness_note(plan: LoudnessPlan, after: tuple[float, float] | None) -> str:
    """The job's note on it: "loudness -31.2 LUFS (true peak -20.1 dBTP) -> -16.0 LUFS (-3.4 dBTP), linear";
    ``after`` is :func:`measure_output`'s (None: not measured)."""
    measured = plan.measurement
    if measured.silent:
        return f"loudness: silent track (below {SILENCE_LUFS:.0f} LUFS), left as it is"
    before = f"loudness {measured.input_i:.1f} LUFS (true peak {measured.input_tp:.1f} dBTP)"
    result = f" -> {after[0]:.1f} LUFS ({after[1]:.1f} dBTP)" if after else f" -> {plan.target:.1f} LUFS"
    if plan.linear:
        return f"{before}{result}, linear"
    gain = linear_gain_db(plan.target, measured)
    peak = measured.input_tp + gain
    reason = f"a linear {gain:+.1f} dB would peak at {peak:+.1f} dBTP, over {limiter_true_peak():+.1f}"
    if peak <= limiter_true_peak():
        reason = f"its range of {measured.input_lra:.1f} LU is over {_target_range(measured):.0f}"
    return f"{before}{result}, dynamic ({reason})"


def _targets(target: float, loudness_range: float) -> str:
    return f"I={target:g}:TP={limiter_true_peak():g}:LRA={loudness_range:g}"


def _target_range(measurement: Measurement) -> float:
    return _clamp(math.ceil(measurement.input_lra), LOUDNESS_RANGE_LU, MAX_LOUDNESS_RANGE_LU)


def _before_loudnorm() -> str:
    """Gaps filled first (loudnorm's dynamic mode re-frames the audio and times its frames by counting samples,
    so a gap of a variable-rate recording would be lost after it), then the stereo mix the encoder gets."""
    return f"aresample=async=1,aformat=channel_layouts={OUTPUT_LAYOUT}"


def _clamp(value: float, low: float, high: float) -> float:
    """Within loudnorm's range for an option (it refuses values outside)."""
    return min(high, max(low, value))
