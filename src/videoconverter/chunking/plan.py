"""Planning the pieces of a long source: pure arithmetic on the probe's duration and the output frame rate.

Pieces start on keyframe-interval boundaries of the output (a whole number of GOPs each), so every piece begins
with the keyframe the whole encode would have put there, and the joined video has the whole encode's keyframes.
A piece is counted in output frames, so the pieces together hold exactly the whole encode's frames; the last
piece runs to the end of the source, whatever its length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

#: A piece is encoded from this much before its end for good measure: ``-frames:v`` cuts it exactly, and the
#: frame-rate filter needs the next source frame to emit the last one.
READ_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class Piece:
    """One run of output frames: ``frames`` from ``start_frame`` (None: to the end of the source)."""

    index: int
    start_frame: int
    frames: int | None
    preroll_frames: int = 0  # encoded before ``start_frame`` and dropped at the join (see :func:`with_preroll`)

    @property
    def encode_start_frame(self) -> int:
        return self.start_frame - self.preroll_frames

    def start_seconds(self, rate: Fraction) -> Fraction:
        return Fraction(self.start_frame) / rate

    def duration_seconds(self, rate: Fraction, total_seconds: float) -> float:
        """How long the piece is: its frames, or (the last) what is left of ``total_seconds``."""
        if self.frames is not None:
            return float(Fraction(self.frames) / rate)
        return max(0.0, total_seconds - float(self.start_seconds(rate)))


@dataclass(frozen=True)
class ChunkPlan:
    pieces: tuple[Piece, ...]
    piece_frames: int  # frames of every piece but the last

    @property
    def count(self) -> int:
        return len(self.pieces)


def with_preroll(piece: Piece, gop_frames: int) -> Piece:
    """``piece`` encoded from one keyframe interval earlier (the first piece: from its start). x264's rate
    control (the VBV buffer, the lookahead) then reaches the piece's first frame in about the state a whole
    encode has there; from a cold start it would spend a full buffer on that keyframe, a quality spike and a
    burst past the bitrate cap at every seam. The extra interval ends on a keyframe of the whole grid, so the
    join drops it without re-encoding. It costs one keyframe interval of encoding per piece (2 s in 60: 3 %)."""
    return replace(piece, preroll_frames=min(gop_frames, piece.start_frame))


def applies(enabled: bool, min_source_seconds: float, kind: str, duration_seconds: float | None) -> bool:
    """Whether a job is split: chunking on, an MP4 rendition or an HLS ladder, and a source of known duration
    at least ``min_source_seconds`` long (thumbnails are converted whole)."""
    return (
        enabled and kind in ("mp4", "hls") and bool(duration_seconds) and (duration_seconds or 0) >= min_source_seconds
    )


def plan_pieces(
    duration_seconds: float, rate: Fraction, gop_frames: int, keyframe_interval_seconds: float, chunk_seconds: float
) -> ChunkPlan:
    """Pieces of about ``chunk_seconds`` (rounded to whole keyframe intervals of ``gop_frames`` each) over
    ``duration_seconds`` at ``rate``. The last piece holds what remains: from half a piece to one and a half
    (a sliver would cost a whole FFmpeg start for a second of video). At least one piece."""
    if duration_seconds <= 0 or rate <= 0 or gop_frames < 1:
        raise ValueError("a plan needs a positive duration, frame rate and GOP")
    gops = max(1, round(chunk_seconds / keyframe_interval_seconds))
    piece_frames = gops * gop_frames
    total_frames = math.ceil(duration_seconds * rate - 1e-6)
    count = max(1, round(total_frames / piece_frames))
    pieces = tuple(Piece(i, i * piece_frames, piece_frames if i < count - 1 else None) for i in range(count))
    return ChunkPlan(pieces, piece_frames)


def seconds_text(seconds: Fraction | float, round_up: bool = False) -> str:
    """A time for ``-ss`` / ``-t``, rounded down to the microsecond FFmpeg counts in, so that a seek to a
    frame's exact time never lands just after it (and drops it). ``round_up`` for the concat demuxer's
    ``inpoint``, which seeks to the keyframe at or before it: never just before the piece's own keyframe."""
    scaled = Fraction(seconds) * 1_000_000
    micros = math.ceil(scaled) if round_up else math.floor(scaled)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
