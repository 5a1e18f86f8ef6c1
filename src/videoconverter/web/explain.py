"""A job's error, explained in words a person can act on, and a stable cause for metrics."""

from __future__ import annotations

from dataclasses import dataclass

from videoconverter.jobs.base import JobRecord, JobState


@dataclass(frozen=True)
class Explanation:
    cause: str  # stable: not_a_video, no_video_stream, over_limit, source_missing, bad_event, ffmpeg_timeout, ...
    words: str


# (cause, substrings of the error that mean it, what to tell a person); first match wins.
_CAUSES: list[tuple[str, tuple[str, ...], str]] = [
    ("worker_stopped", ("worker stopped",), "A worker was stopped during the job, so it went back to the queue."),
    ("ffmpeg_timeout", ("limit and was killed",), "FFmpeg took longer than the time limit and was stopped."),
    ("no_video_stream", ("no video stream",), "The file has no picture: it holds only audio, or nothing."),
    (
        "not_a_video",
        ("not a readable video", "cannot be decoded", "no decodable frame", "is empty"),
        "This is not a video we can read, or it is damaged. Upload an MP4, MOV, MKV or WebM file.",
    ),
    ("over_limit", ("the limit is", "larger than the limit"), "The video is over a configured limit."),
    ("source_missing", ("no longer exists", "vanished", "no object"), "The upload was deleted before conversion."),
    ("bad_event", ("not an s3", "event"), "The queue message was not an upload event this version understands."),
    ("ffmpeg_crashed", ("ffmpeg", "exit code"), "FFmpeg failed while converting."),
]


def explain(record: JobRecord) -> Explanation | None:
    """What went wrong with ``record`` and what happens next; None when nothing went wrong."""
    if not record.error:
        return None
    text = record.error.lower()
    cause, words = "unexpected", "The worker hit an unexpected error."
    for name, needles, sentence in _CAUSES:
        if any(n in text for n in needles):
            cause, words = name, sentence
            break
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
