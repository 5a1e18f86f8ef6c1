"""Job records: one per (key, source ETag, rendition), with state, progress, errors and log lines."""

from videoconverter.jobs.base import JobId, JobLogLine, JobRecord, JobState, JobStore

__all__ = ["JobId", "JobLogLine", "JobRecord", "JobState", "JobStore"]
