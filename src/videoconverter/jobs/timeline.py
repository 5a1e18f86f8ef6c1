"""A job's timeline: when its latest attempt reached each stage, from the upload to done, as wall-clock times.

The stages, in order (:data:`STAGES`): ``uploaded`` (the S3 event's ``eventTime``: the object was written),
``published`` (the broker's sent time of the event's message), ``received`` (the worker got the message),
``downloaded`` (the source fetched into the job's private directory), ``probed``, ``ffmpeg_started`` (the first
FFmpeg run of the job began), ``ffmpeg_finished`` (its last ended), ``written`` (every output file written, the
marker last) and ``done`` (the job store recorded the job done). A stage the attempt never reached (a job found
done already, one that failed) is absent. Times come from the clocks of the machines that stamped them, at the
resolution of their source (S3 and SQS: milliseconds; an AMQP timestamp: whole seconds).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

STAGES = (
    "uploaded",
    "published",
    "received",
    "downloaded",
    "probed",
    "ffmpeg_started",
    "ffmpeg_finished",
    "written",
    "done",
)
#: What the time up to each stage (from the one before that is known) is called in the log's summary.
SPANS = {
    "published": "publish",
    "received": "queue",
    "downloaded": "download",
    "probed": "probe",
    "ffmpeg_started": "prepare",
    "ffmpeg_finished": "FFmpeg",
    "written": "write",
    "done": "record",
}


@dataclass(frozen=True)
class Timeline:
    """Epoch seconds (wall clock) at which the job reached each stage; None: not reached, or not known."""

    uploaded: float | None = None
    published: float | None = None
    received: float | None = None
    downloaded: float | None = None
    probed: float | None = None
    ffmpeg_started: float | None = None
    ffmpeg_finished: float | None = None
    written: float | None = None
    done: float | None = None

    def stamps(self) -> dict[str, float]:
        """The known stages, in stage order."""
        return {stage: at for stage in STAGES if (at := getattr(self, stage)) is not None}

    def with_stamp(self, stage: str, at: float) -> Timeline:
        return dataclasses.replace(self, **{stage: at})

    def to_text(self) -> str:
        """The JSON text the job stores keep (``{"stage": epoch seconds}``), "" when no stage is known."""
        stamps = self.stamps()
        return json.dumps(stamps, separators=(",", ":")) if stamps else ""

    @classmethod
    def from_text(cls, text: str | None) -> Timeline:
        """What :meth:`to_text` wrote; anything else (nothing, a damaged value) reads as no stage known."""
        try:
            loaded = json.loads(text) if text else {}
        except ValueError:
            return cls()
        if not isinstance(loaded, dict):
            return cls()
        known = {
            stage: float(at)
            for stage, at in loaded.items()
            if stage in STAGES and isinstance(at, int | float) and math.isfinite(at)
        }
        return cls(**known)

    def as_json(self) -> dict[str, str] | None:
        """``jobs --json``'s ``timeline``: each known stage as an ISO-8601 UTC time with milliseconds."""
        return {stage: iso_time(at) for stage, at in self.stamps().items()} or None

    def seconds_since_upload(self) -> dict[str, float] | None:
        """``jobs --json``'s ``timeline_seconds``: each known stage's seconds after ``uploaded`` (None when the
        upload's time is unknown), to the millisecond."""
        if self.uploaded is None:
            return None
        return {stage: round(at - self.uploaded, 3) for stage, at in self.stamps().items()}

    def summary(self) -> str:
        """Where the time went, for the job's log: the span up to each known stage from the one before it."""
        stamps = list(self.stamps().items())
        spans = [f"{SPANS[stage]} {_seconds(at - before)}" for (_, before), (stage, at) in itertools.pairwise(stamps)]
        total = f" (upload to done {_seconds(self.done - self.uploaded)})" if self.done and self.uploaded else ""
        return "timeline: " + (", ".join(spans) or "no stages known") + total


class TimelineRecorder:
    """Collects one attempt's stamps as a worker reaches each stage; safe to stamp from several threads (a
    ladder's rungs run side by side)."""

    def __init__(self, known: Timeline | None = None) -> None:
        self._timeline = known or Timeline()
        self._lock = threading.Lock()

    def stamp(self, stage: str, at: float | None = None) -> None:
        """``stage`` reached now (or at ``at``)."""
        with self._lock:
            self._timeline = self._timeline.with_stamp(stage, time.time() if at is None else at)

    def first(self, stage: str, at: float | None = None) -> None:
        """``stage`` reached, unless it was reached before: e.g. the first of a job's FFmpeg runs started."""
        with self._lock:
            if getattr(self._timeline, stage) is None:
                self._timeline = self._timeline.with_stamp(stage, time.time() if at is None else at)

    def timeline(self) -> Timeline:
        with self._lock:
            return self._timeline


def iso_time(epoch_seconds: float) -> str:
    """``2026-12-02T04:24:53.123Z``: the form S3 writes ``eventTime`` in."""
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_time(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 time (an S3 ``eventTime``; no zone: UTC); None when it is not one."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if abs(value) < 10 else f"{value:.1f} s"
