"""A job's error, explained in words a person can act on, and a stable cause for metrics."""

from __future__ import annotations

from dataclasses import dataclass

from videoconverter.jobs.base import JobRecord, JobState
from videoconverter.jobs.causes import classify


@dataclass(frozen=True)
class Explanation:
    cause: str  # stable: not_a_video, no_video_stream, over_limit, source_missing, bad_event, ffmpeg_timeout, ...
    words: str


def explain(record: JobRecord) -> Explanation | None:
    """What went wrong with ``record`` and what happens next; None when nothing went wrong."""
    if not record.error:
        return None
    text = record.error.lower()
    cause, words = classify(record.error)
    if cause == "over_limit":
        words = f"{words} {record.error.split(': ', 1)[-1].rstrip('.')}."
    if record.state is JobState.FAILED:
        if text.startswith("gave up after"):
            words += (
                f" It failed {record.attempts} times and was set aside in the dead-letter queue: redrive it once fixed."
            )
        else:
            words += " It will not work on a retry, so it was set aside in the dead-letter queue."
    elif record.state in (JobState.QUEUED, JobState.RUNNING):
        words += " It will be retried automatically."
    elif record.state is JobState.DONE:
        return None  # an earlier attempt failed, a later one succeeded
    return Explanation(cause, words)
