"""The demo's progress line, from the job records it polls."""

from __future__ import annotations

from videoconverter.cli.demo import progress_line
from videoconverter.jobs.base import JobId, JobRecord, JobState


def record(key: str, rendition: str, state: JobState, percent: float = 0.0) -> JobRecord:
    return JobRecord(JobId(key, "etag", rendition), state, 1, 0.0, 0.0, progress_percent=percent)


def test_the_progress_line_counts_finished_jobs_and_the_running_ones_progress() -> None:
    keys = {"a.mp4", "b.mp4"}
    records = [
        record("a.mp4", "720p", JobState.DONE, 100),
        record("a.mp4", "1080p", JobState.FAILED),
        record("b.mp4", "720p", JobState.RUNNING, 38),
        record("b.mp4", "1080p", JobState.RUNNING, 64),
        record("older.mp4", "720p", JobState.RUNNING, 90),  # another upload's job: not the demo's
    ]
    assert progress_line(records, keys, 4) == "  2/4 jobs finished, 2 running (50 %)"
    assert progress_line(records[:2], keys, 4) == "  2/4 jobs finished"
    assert progress_line([], keys, 4) == "  0/4 jobs finished"
