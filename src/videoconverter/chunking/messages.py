"""The messages of a split job: one per piece (video or audio) and the join, JSON on the rendition's queue.

They share the queue with S3 event notifications, and never look like one: an event body is an object with
``Records`` (or an SNS envelope's ``Type``, or ``Event`` for a test event); ours is an object whose
:data:`MARKER` field names the message kind and version. Every field is checked when read; a message that fails
is malformed (:class:`~videoconverter.errors.InvalidEventError`: dead-lettered at once).
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from videoconverter.chunking.layout import Layout, parse_layout
from videoconverter.errors import InvalidEventError
from videoconverter.events import ObjectCreated

MARKER = "videoconverter_chunk"
VERSION = 1


class Step(enum.StrEnum):
    VIDEO = "video"  # encode one run of frames of the video
    AUDIO = "audio"  # encode the whole audio (audio cut into pieces drifts)
    JOIN = "join"  # every piece is done: concatenate, mux, write the output


@dataclass(frozen=True)
class ChunkMessage:
    """One step of a split job, with what the step needs of the upload and the plan."""

    step: Step
    bucket: str
    key: str
    size: int
    etag: str
    sequencer: str
    rendition: str
    index: int  # the piece's index in the job store's count (video 0..n-1, audio n); join: -1
    pieces: int  # pieces planned, audio included
    video_pieces: int
    start_frame: int = 0
    frames: int = 0  # 0: to the end of the source
    frame_rate: str = "30"  # the output's, exact ("30000/1001")
    crf: int = -1  # a VMAF target's choice, made once for every piece; -1: the rendition's own
    note: str = ""  # join: what the plan found (size kept, the search's result)
    quality: str = ""  # join: the VMAF search as JSON text, for the job store
    layout: str = ""  # the rungs and audio tracks, as JSON text (chunking.layout); "": an MP4's first track
    text_tracks: int = 0  # join: the source's subtitle streams (the join extracts them as captions)

    @property
    def upload(self) -> ObjectCreated:
        return ObjectCreated(self.bucket, self.key, self.size, self.etag, self.sequencer)

    def plan(self) -> Layout:
        """The rungs and audio tracks the split decided (checked when the message was read)."""
        return parse_layout(self.layout)

    @property
    def rate(self) -> Fraction:
        return Fraction(self.frame_rate)

    def to_json(self) -> str:
        fields = asdict(self)
        fields["step"] = self.step.value
        return json.dumps({MARKER: VERSION, **fields})


_TYPES: dict[str, type] = {
    "bucket": str, "key": str, "size": int, "etag": str, "sequencer": str, "rendition": str, "index": int,
    "pieces": int, "video_pieces": int, "start_frame": int, "frames": int, "frame_rate": str, "crf": int,
    "note": str, "quality": str, "layout": str, "text_tracks": int,
}  # fmt: skip


def chunk_message(body: str) -> ChunkMessage | None:
    """The chunk message ``body`` holds; None when it is not one (an S3 event, or anything else, for the
    event parser to judge). Raises InvalidEventError for a chunk message with a missing or wrong field."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or MARKER not in data:
        return None
    if data.pop(MARKER) != VERSION:
        raise InvalidEventError(f"chunk message of an unknown version (expected {VERSION})")
    return _checked(data)


def _checked(data: dict[str, Any]) -> ChunkMessage:
    try:
        step = Step(data.pop("step", None))
    except ValueError:
        raise InvalidEventError("chunk message: step must be video, audio or join") from None
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise InvalidEventError(f"chunk message: unknown field {unknown[0]!r}")
    for name, kind in _TYPES.items():
        if name in data and (not isinstance(data[name], kind) or isinstance(data[name], bool)):
            raise InvalidEventError(f"chunk message: {name} must be {kind.__name__}")
    try:
        message = ChunkMessage(step=step, **data)
        rate = message.rate
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise InvalidEventError(f"chunk message: {exc}") from None
    if rate <= 0 or message.pieces < 1 or not 0 <= message.video_pieces <= message.pieces:
        raise InvalidEventError("chunk message: frame rate and counts must be positive")
    if min(message.start_frame, message.frames, message.size, message.text_tracks) < 0 or (
        message.index >= message.pieces
    ):
        raise InvalidEventError("chunk message: frames, size and index out of range")
    parse_layout(message.layout)
    return message
