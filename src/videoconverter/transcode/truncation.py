"""A truncated upload (an interrupted transfer) is not converted into half a video called done.

An MP4 whose index is at the front (``+faststart``) still opens, and probes with the duration its header
promises, when its data stops half way: FFmpeg then decodes what is there, warns on stderr and exits 0. So
after FFmpeg, each kind compares how far the source could be read, as its outputs show, with what the probe
promised, and :func:`check_read` fails the job permanently beyond a tolerance (or, with
``[limits] accept_truncated_sources``, returns a note that says so).
"""

from __future__ import annotations

from videoconverter.errors import TruncatedSourceError
from videoconverter.renditions import Limits

#: What may be missing at the end before a source counts as truncated: the larger of the two. Timestamps,
#: audio priming and frame-rate conversion move an output's end by a frame or two, never by half a second.
TOLERANCE_SECONDS = 0.5
TOLERANCE_SHARE = 0.02


def tolerance_seconds(promised_seconds: float) -> float:
    return max(TOLERANCE_SECONDS, TOLERANCE_SHARE * promised_seconds)


def is_truncated(read_seconds: float | None, promised_seconds: float | None, resolution_seconds: float = 0.0) -> bool:
    """Whether ``read_seconds`` falls short of ``promised_seconds`` by more than the tolerance. A measure that
    is only known to ``resolution_seconds`` (a thumbnail every N seconds) gets that much more. Unknown lengths
    (a stream without a duration, a run without progress) are never called truncated."""
    if read_seconds is None or not promised_seconds:
        return False
    return read_seconds + resolution_seconds < promised_seconds - tolerance_seconds(promised_seconds)


def truncation_message(read_seconds: float, promised_seconds: float) -> str:
    return f"the upload is truncated: {read_seconds:.1f} s of {promised_seconds:.1f} s could be read"


def check_read(
    read_seconds: float | None, promised_seconds: float | None, limits: Limits, resolution_seconds: float = 0.0
) -> str:
    """Nothing (``""``) when the source was read to the end it promised (see :func:`is_truncated`). Otherwise
    raises :class:`TruncatedSourceError` naming both lengths, or, when ``limits.accept_truncated_sources``,
    returns the note the job is then done with."""
    if read_seconds is None or promised_seconds is None:
        return ""
    if not is_truncated(read_seconds, promised_seconds, resolution_seconds):
        return ""
    message = truncation_message(read_seconds, promised_seconds)
    if limits.accept_truncated_sources:
        return f"{message}; converted what was there"
    raise TruncatedSourceError(message)


def joined(*notes: str) -> str:
    """Notes of one output, in order, the empty ones left out."""
    return "; ".join(note for note in notes if note)
