"""The output frame rate: the source's, snapped to a standard rate, halved while above the rendition's cap.

Phones record variable frame rate (frames come when the sensor has them); an output needs a constant rate
for smooth playback and for keyframes that fall at the same times in every rung of a ladder. The ``fps``
filter makes it constant by repeating or dropping frames on their timestamps, so audio stays in sync.
"""

from __future__ import annotations

from fractions import Fraction

STANDARD_RATES = tuple(
    Fraction(r)
    for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60", "100", "120000/1001",
              "120", "240")
)  # fmt: skip
SNAP_TOLERANCE = 0.05  # a VFR clip averaging 29.1 fps is a 30 fps clip with dropped frames
FALLBACK_RATE = Fraction(30)


def output_frame_rate(source_rate: float | None, max_frame_rate: int) -> Fraction:
    """The constant rate of the output: ``source_rate`` snapped to the nearest standard rate within 5 %,
    then halved while it is above ``max_frame_rate`` (120 -> 60, 100 -> 50, 240 -> 60), so that every
    output frame is a source frame and motion stays even. An unknown rate is taken as 30 fps."""
    rate = _snapped(source_rate) if source_rate and source_rate > 0 else FALLBACK_RATE
    while rate > max_frame_rate:
        rate /= 2
    return rate


def _snapped(rate: float) -> Fraction:
    nearest = min(STANDARD_RATES, key=lambda standard: abs(float(standard) - rate))
    if abs(float(nearest) - rate) <= SNAP_TOLERANCE * float(nearest):
        return nearest
    return Fraction(rate).limit_denominator(1001)


def frames_per_interval(rate: Fraction, seconds: float) -> int:
    """Frames in ``seconds`` at ``rate``: the GOP length for a keyframe interval."""
    return max(1, round(float(rate) * seconds))


def fraction_text(rate: Fraction) -> str:
    """``30000/1001`` or ``30``: exact for FFmpeg's ``fps`` filter (a decimal would drift)."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"
