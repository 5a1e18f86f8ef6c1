"""A job error's stable cause (for metrics and the dashboard) and what it means, in words a person can act on."""

from __future__ import annotations

#: (cause, substrings of the error that mean it, what to tell a person); first match wins.
CAUSES: list[tuple[str, tuple[str, ...], str]] = [
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
UNEXPECTED = ("unexpected", "The worker hit an unexpected error.")


def classify(error: str) -> tuple[str, str]:
    """``(cause, words)`` for a job's error text."""
    text = error.lower()
    for name, needles, sentence in CAUSES:
        if any(n in text for n in needles):
            return name, sentence
    return UNEXPECTED
