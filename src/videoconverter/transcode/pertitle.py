"""Quality per title, the pure part: where to sample a source, which CRF to try next, which CRF meets a VMAF
target, and which rungs of a ladder to drop. No I/O and no FFmpeg here (:mod:`.search` runs the samples).

The search encodes a few short samples of the source with the rendition's real settings at one CRF, scores
them with VMAF at the output's size, and tries a second CRF (and at most a third) chosen from what it saw.
VMAF is taken as linear in CRF between the CRFs tried (x264 near VMAF 90-97: about 0.75 point a CRF step;
the bitrate as linear in CRF on a log scale, about 12 % a step), and the chosen CRF is the largest whole one
whose predicted VMAF meets the target. Below the bitrate cap a lower CRF buys quality; at the cap it buys
nothing (the cap decides), so the search never goes below the lowest CRF that already reached the cap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

#: All samples together: this share of the source's duration, within the bounds below.
SAMPLE_SHARE = 0.12
MIN_SAMPLE_TOTAL_SECONDS = 1.0
MAX_SAMPLE_TOTAL_SECONDS = 20.0
#: The preferred length of one sample, the shortest, and how many (spread over the source: two at least, as
#: one place in a video says little about the rest). A sample much shorter than x264's lookahead (40 frames
#: at ``medium``) scores lower than the same frames in the whole encode; at half a second it is within about
#: half a point.
SAMPLE_SECONDS = 2.0
MIN_SAMPLE_SECONDS = 0.5
MIN_SAMPLES = 2
MAX_SAMPLES = 8
#: libvmaf scores every n-th sample frame once there are this many frames per n (and at most every 4th).
FRAMES_PER_SUBSAMPLE = 60
MAX_SUBSAMPLE = 4
MAX_PROBES = 3
#: VMAF points per CRF step assumed after the first probe (x264, VMAF 85-97), and the flattest slope believed.
PRIOR_SLOPE = 0.75
MIN_SLOPE = 0.05
#: The bitrate's fall per CRF step assumed with one probe (a natural log: about 11 %).
KBPS_PER_STEP = 0.12
#: The VMAF the codec's default CRF typically gives (x264 CRF 23 at 720p-1080p): where the first guess starts.
TYPICAL_DEFAULT_VMAF = 95.5
#: A first probe this close to the target is enough: the prior slope bridges the rest (about a CRF step).
ONE_PROBE_MARGIN = 1.0
#: How far a probe may be from the CRFs tried before, in CRF steps; and the chosen CRF, once probing is over
#: (VMAF can fall off a cliff past a flat stretch: easy content does at high CRFs).
MIN_STEP = 2
MAX_STEP = 8
MAX_EXTRAPOLATION = 2
#: A probe whose sample bitrate is this share of the cap or more was held by the cap (samples are short: the
#: one-second buffer rarely fills in them, so they show the cap late). So was one above :data:`NEAR_CAP_SHARE`
#: whose bitrate barely grew from the next higher CRF's (the cap flattens it).
CAP_BOUND_SHARE = 0.85
NEAR_CAP_SHARE = 0.6
#: The CRFs a search may choose, per codec (below: bytes without visible gain; above: visibly worse).
CRF_RANGE = {"h264": (10, 40), "hevc": (10, 40), "av1": (15, 55), "vp9": (15, 55)}
#: Rung dropping: a rung goes when the rung above it is at most this much VMAF worse, at a bitrate at most
#: this many times its own (players gain nothing from a step that small).
DROP_VMAF_MARGIN = 2.0
SIMILAR_BITRATE_RATIO = 1.3


class SampleWindow(NamedTuple):
    """Where one sample is cut from the source, in seconds of its timeline."""

    start_seconds: float
    seconds: float

    @property
    def end_seconds(self) -> float:
        return self.start_seconds + self.seconds


@dataclass(frozen=True)
class Probe:
    """The samples encoded at one CRF: their pooled VMAF and video bitrate."""

    crf: int
    vmaf: float
    video_kbps: float

    def capped(self, cap_kbps: float) -> bool:
        return self.video_kbps >= CAP_BOUND_SHARE * cap_kbps


@dataclass(frozen=True)
class QualityChoice:
    """What the search chose for one encode (an MP4, or one rung of a ladder), and what it saw."""

    name: str  # the rendition's or the rung's name
    target_vmaf: float
    crf: int
    predicted_vmaf: float
    predicted_video_kbps: float
    probes: tuple[Probe, ...]
    capped: bool = False  # the cap, not the target, decided: the target could not be reached under it
    kept: bool = True  # hls: false for a rung dropped from the ladder
    measured_vmaf: float | None = None  # verify_vmaf: the whole output's VMAF

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target_vmaf": self.target_vmaf,
            "crf": self.crf,
            "predicted_vmaf": round(self.predicted_vmaf, 2),
            "predicted_video_kbps": round(self.predicted_video_kbps, 1),
            "measured_vmaf": None if self.measured_vmaf is None else round(self.measured_vmaf, 2),
            "capped": self.capped,
            "kept": self.kept,
            "probes": [
                {"crf": p.crf, "vmaf": round(p.vmaf, 2), "video_kbps": round(p.video_kbps, 1)} for p in self.probes
            ],
        }

    def summary(self) -> str:
        """``720p: CRF 25 for VMAF 95 (predicted 95.4, measured 95.1)``."""
        measured = "" if self.measured_vmaf is None else f", measured {self.measured_vmaf:.1f}"
        reason = ", held by the bitrate cap" if self.capped else ""
        return (
            f"{self.name}: CRF {self.crf} for VMAF {self.target_vmaf:g} "
            f"(predicted {self.predicted_vmaf:.1f}{measured}{reason})"
        )


@dataclass(frozen=True)
class QualitySearch:
    """A whole search: the samples and a choice per encode (one for an MP4, one per rung for a ladder)."""

    windows: tuple[SampleWindow, ...]
    choices: tuple[QualityChoice, ...]
    elapsed_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``quality`` object of ``jobs --json`` (see the README)."""
        return {
            "samples": [
                {"start_seconds": round(w.start_seconds, 3), "seconds": round(w.seconds, 3)} for w in self.windows
            ],
            "search_seconds": round(self.elapsed_seconds, 2),
            "outputs": [choice.as_dict() for choice in self.choices],
        }

    def note(self) -> str:
        """The job's note: each kept output's choice; the dropped rungs named."""
        kept = "; ".join(c.summary() for c in self.choices if c.kept)
        dropped = [c.name for c in self.choices if not c.kept]
        return kept + (f"; rungs dropped (the rung above is as good at a similar bitrate): {', '.join(dropped)}"
                       if dropped else "")  # fmt: skip

    def log_line(self) -> str:
        """One line for the job's log: the samples, every probe and the choice."""
        samples = ", ".join(f"{w.start_seconds:.1f}+{w.seconds:.1f}s" for w in self.windows)
        parts = []
        for c in self.choices:
            probes = ", ".join(f"CRF {p.crf} → {p.vmaf:.1f} ({p.video_kbps:.0f} kb/s)" for p in c.probes)
            parts.append(f"{c.summary()} [{probes}]" + ("" if c.kept else " dropped"))
        return f"VMAF search in {self.elapsed_seconds:.1f} s on samples {samples}: " + "; ".join(parts)

    def with_measured(self, measured: dict[str, float]) -> QualitySearch:
        choices = tuple(replace(c, measured_vmaf=measured.get(c.name, c.measured_vmaf)) for c in self.choices)
        return replace(self, choices=choices)


# --- where to sample ---------------------------------------------------------------------------------------


def sample_plan(duration_seconds: float) -> tuple[int, float]:
    """How many samples, and how long each: :data:`SAMPLE_SHARE` of the duration in all (within bounds), in
    samples of about :data:`SAMPLE_SECONDS`; a source shorter than that total is sampled whole."""
    total = min(MAX_SAMPLE_TOTAL_SECONDS, max(MIN_SAMPLE_TOTAL_SECONDS, SAMPLE_SHARE * duration_seconds))
    if total >= duration_seconds:
        return 1, duration_seconds
    count = max(MIN_SAMPLES, min(MAX_SAMPLES, round(total / SAMPLE_SECONDS)))
    count = max(1, min(count, math.floor(total / MIN_SAMPLE_SECONDS)))
    return count, total / count


def vmaf_subsample(frames: int) -> int:
    """Score every n-th of ``frames`` sample frames: all of a few dozen, every 4th of many hundreds."""
    return max(1, min(MAX_SUBSAMPLE, frames // FRAMES_PER_SUBSAMPLE))


def candidate_starts(duration_seconds: float, count: int, seconds: float) -> list[float]:
    """Evenly spread: the i-th sample is centred at (i + 0.5) / count of the duration."""
    return [min(max(0.0, (i + 0.5) * duration_seconds / count - seconds / 2), duration_seconds - seconds)
            for i in range(count)]  # fmt: skip


def sample_windows(
    duration_seconds: float, keyframes: Sequence[float | None] = (), plan: tuple[int, float] | None = None
) -> tuple[SampleWindow, ...]:
    """Where to sample a source of ``duration_seconds``: :func:`sample_plan`'s samples spread evenly
    (:func:`candidate_starts`), each moved back to the source's keyframe at or before its start
    (``keyframes[i]``, None when unknown) when that is within one window's length: FFmpeg decodes a window from
    that keyframe, so none of that decoding is wasted, and since encoders put keyframes where scenes cut, the
    sample then starts with its scene. No two windows overlap."""
    count, seconds = plan or sample_plan(duration_seconds)
    if count == 1 and seconds >= duration_seconds:
        return (SampleWindow(0.0, duration_seconds),)
    windows: list[SampleWindow] = []
    for i, start in enumerate(candidate_starts(duration_seconds, count, seconds)):
        keyframe = keyframes[i] if i < len(keyframes) else None
        earliest = windows[-1].end_seconds if windows else 0.0
        if keyframe is not None and start - seconds <= keyframe <= start and keyframe >= earliest:
            start = keyframe
        windows.append(SampleWindow(round(max(start, earliest), 3), round(seconds, 3)))
    return tuple(windows)


def decode_groups(
    windows: Sequence[SampleWindow], keyframes: Sequence[float | None] = ()
) -> tuple[tuple[SampleWindow, ...], ...]:
    """The windows in runs that one decoding pass reads: a window whose keyframe (``keyframes[i]``, at or
    before it) comes before the previous window's end is read on from there, since seeking to that keyframe
    would decode the previous window again (x264 places keyframes 250 frames apart by default)."""
    groups: list[list[SampleWindow]] = []
    for i, window in enumerate(windows):
        keyframe = keyframes[i] if i < len(keyframes) else None
        if groups and keyframe is not None and keyframe < groups[-1][-1].end_seconds:
            groups[-1].append(window)
        else:
            groups.append([window])
    return tuple(tuple(group) for group in groups)


# --- which CRF ---------------------------------------------------------------------------------------------


def first_crf(default_crf: int, codec: str, target: float) -> int:
    """The first CRF tried: the codec's fixed default moved by the prior slope from the VMAF it typically gives
    (:data:`TYPICAL_DEFAULT_VMAF`) to ``target``, within the search's range."""
    return _clamp(round(default_crf + (TYPICAL_DEFAULT_VMAF - target) / PRIOR_SLOPE), codec)


def next_crf(probes: Sequence[Probe], target: float, cap_kbps: float, codec: str) -> int | None:
    """The CRF to try next, or None when the probes so far are enough to choose (see :func:`choose_crf`)."""
    if not probes or len(probes) >= MAX_PROBES:
        return None
    tried = {p.crf for p in probes}
    if len(probes) == 1:
        (probe,) = probes
        if probe.vmaf < target and probe.capped(cap_kbps):
            return None  # below the target at the cap: a lower CRF would buy nothing
        if abs(probe.vmaf - target) <= ONE_PROBE_MARGIN:
            return None
        floor = lowest_useful_crf(probes, cap_kbps, codec)
        if probe.vmaf + (probe.crf - floor) * PRIOR_SLOPE < target and probe.crf - floor <= MAX_EXTRAPOLATION:
            return None  # the cap is a step or two away and the target beyond it: nothing left to learn
        step = (probe.vmaf - target) / PRIOR_SLOPE
        step = math.copysign(min(MAX_STEP, max(MIN_STEP, abs(step))), step if step else 1.0)
        crf = max(_clamp(round(probe.crf + step), codec), lowest_useful_crf(probes, cap_kbps, codec))
        return crf if crf not in tried else None
    crf, _, _ = choose_crf(probes, target, cap_kbps, codec, reach=MAX_STEP)
    low, high = min(tried), max(tried)
    if low - 1 <= crf <= high + 1 or crf in tried:
        return None
    return crf


def choose_crf(
    probes: Sequence[Probe], target: float, cap_kbps: float, codec: str, reach: int = MAX_EXTRAPOLATION
) -> tuple[int, float, float]:
    """The largest whole CRF whose predicted VMAF meets ``target``, with its predicted VMAF and video kb/s.

    Never lower than :func:`lowest_useful_crf` (lower ones cost the same bytes and gain nothing); within
    :data:`CRF_RANGE` of the codec; at most ``reach`` steps beyond the CRFs tried."""
    ordered = sorted(probes, key=lambda p: p.crf)
    low, high = CRF_RANGE[codec]
    low, high = max(low, ordered[0].crf - reach), min(high, ordered[-1].crf + reach)
    low = max(low, lowest_useful_crf(ordered, cap_kbps, codec))
    solution = crf_for_vmaf(ordered, target)
    crf = max(low, min(high, math.floor(solution + 1e-6)))
    return crf, predicted_vmaf(ordered, crf), predicted_kbps(ordered, crf, cap_kbps)


def lowest_useful_crf(probes: Sequence[Probe], cap_kbps: float, codec: str) -> int:
    """The lowest CRF that still buys quality: below it the cap holds the bitrate, so a lower CRF costs the
    same bytes. The highest CRF whose probe the cap held, or the lowest whose predicted bitrate is within the
    cap (short samples rarely fill the one-second buffer, so their bitrate tells the cap first)."""
    ordered = sorted(probes, key=lambda p: p.crf)
    low, high = CRF_RANGE[codec]
    held = [p.crf for p in ordered if p.capped(cap_kbps)]
    held += [a.crf for a, b in itertools.pairwise(ordered) if _flattened(a, b, cap_kbps)]
    within = next((crf for crf in range(low, high + 1) if _kbps(ordered, crf) <= cap_kbps), high)
    return max([low, within, *held])


def _flattened(lower: Probe, higher: Probe, cap_kbps: float) -> bool:
    """Whether the cap held ``lower`` (a lower CRF than ``higher``): near the cap, its bitrate grew by less
    than a third of what the CRF steps between them would give."""
    if lower.video_kbps < NEAR_CAP_SHARE * cap_kbps or higher.video_kbps <= 0:
        return False
    growth = math.log(max(lower.video_kbps, 1e-3) / higher.video_kbps) / (higher.crf - lower.crf)
    return growth < KBPS_PER_STEP / 3


def crf_for_vmaf(ordered: Sequence[Probe], target: float) -> float:
    """The CRF (a real number) at which the piecewise-linear VMAF(CRF) through the probes meets ``target``.
    VMAF falls as CRF rises; beyond the probes each end's slope continues (one probe: :data:`PRIOR_SLOPE`)."""
    for a, b in itertools.pairwise(ordered):
        if min(a.vmaf, b.vmaf) <= target <= max(a.vmaf, b.vmaf) and a.vmaf != b.vmaf:
            return a.crf + (a.vmaf - target) * (b.crf - a.crf) / (a.vmaf - b.vmaf)
    if target > ordered[0].vmaf:  # better than the lowest CRF tried gives: extrapolate down
        return ordered[0].crf - (target - ordered[0].vmaf) / _slope(ordered, 0)
    return ordered[-1].crf + (ordered[-1].vmaf - target) / _slope(ordered, len(ordered) - 2)


def predicted_vmaf(ordered: Sequence[Probe], crf: float) -> float:
    """VMAF at ``crf``: linear between the probes around it, each end's slope beyond them; at most 100."""
    for a, b in itertools.pairwise(ordered):
        if a.crf <= crf <= b.crf:
            return a.vmaf + (b.vmaf - a.vmaf) * (crf - a.crf) / (b.crf - a.crf)
    if crf < ordered[0].crf:
        return min(100.0, ordered[0].vmaf + (ordered[0].crf - crf) * _slope(ordered, 0))
    return max(0.0, ordered[-1].vmaf - (crf - ordered[-1].crf) * _slope(ordered, len(ordered) - 2))


def predicted_kbps(ordered: Sequence[Probe], crf: float, cap_kbps: float) -> float:
    """Video kb/s at ``crf``: linear in CRF on a log scale through the probes (about 12 % a step for one
    probe), at most the cap."""
    return min(cap_kbps, _kbps(ordered, crf))


def _kbps(ordered: Sequence[Probe], crf: float) -> float:
    rates = [(p.crf, math.log(max(p.video_kbps, 1e-3))) for p in ordered]
    if len(rates) == 1:
        crf0, log0 = rates[0]
        return math.exp(log0 - KBPS_PER_STEP * (crf - crf0))
    pairs = list(itertools.pairwise(rates))
    (c0, l0), (c1, l1) = next(
        ((a, b) for a, b in pairs if a[0] <= crf <= b[0]), pairs[0] if crf < rates[0][0] else pairs[-1]
    )
    return math.exp(l0 + (l1 - l0) * (crf - c0) / (c1 - c0))


def _slope(ordered: Sequence[Probe], index: int) -> float:
    """VMAF points lost per CRF step between probe ``index`` and the next (the prior with one probe)."""
    if len(ordered) < 2:
        return PRIOR_SLOPE
    a, b = ordered[index], ordered[index + 1]
    return max(MIN_SLOPE, (a.vmaf - b.vmaf) / (b.crf - a.crf))


def _clamp(crf: int, codec: str) -> int:
    low, high = CRF_RANGE[codec]
    return max(low, min(high, crf))


# --- which rungs -------------------------------------------------------------------------------------------


def rungs_to_keep(rungs: Sequence[tuple[float, float]]) -> list[bool]:
    """For rungs lowest first, each ``(vmaf, video_kbps)``: which to keep. The top and the bottom always stay;
    a rung between goes when the next kept rung above it is at most :data:`DROP_VMAF_MARGIN` worse (or better)
    at no more than :data:`SIMILAR_BITRATE_RATIO` times its bitrate: that rung serves the same viewers as well."""
    keep = [True] * len(rungs)
    above = len(rungs) - 1
    for i in range(len(rungs) - 2, 0, -1):
        vmaf, kbps = rungs[i]
        upper_vmaf, upper_kbps = rungs[above]
        if upper_vmaf >= vmaf - DROP_VMAF_MARGIN and upper_kbps <= SIMILAR_BITRATE_RATIO * kbps:
            keep[i] = False
        else:
            above = i
    return keep


def drop_rungs(search: QualitySearch) -> QualitySearch:
    """A ladder's search (choices lowest rung first) with the redundant rungs marked not kept
    (:func:`rungs_to_keep`, on each rung's predicted VMAF and bitrate)."""
    keep = rungs_to_keep([(c.predicted_vmaf, c.predicted_video_kbps) for c in search.choices])
    return replace(search, choices=tuple(replace(c, kept=k) for c, k in zip(search.choices, keep, strict=True)))
