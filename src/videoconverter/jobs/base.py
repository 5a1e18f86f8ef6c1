"""The job store interface and the job state machine.

::

    queued --start--> running --finish--> done
      ^                  |  \\--fail-----> failed --redrive--> queued
      +----retry---------+

A job is identified by the uploaded key, the source object's ETag and the rendition: uploading the same key
again with new content is a new job, and a redelivered event for the same content is the same job.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self


class JobState(enum.StrEnum):
    QUEUED = "queued"  # an event is in the rendition's queue (first time, after a retry, or after a redrive)
    RUNNING = "running"  # a worker holds the message and is converting
    DONE = "done"  # the output exists for this source ETag (or a newer upload made this one moot)
    FAILED = "failed"  # dead-lettered with a reason; `videoconverter dlq redrive` queues it again

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED)


@dataclass(frozen=True)
class JobId:
    key: str
    source_etag: str
    rendition: str


@dataclass(frozen=True)
class JobRecord:
    id: JobId
    state: JobState
    attempts: int
    created_at: float
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress_percent: float = 0.0
    output_url: str = ""
    error: str = ""
    stderr_tail: str = ""
    note: str = ""  # e.g. "source is 640x360: kept its size (never upscaled)"
    sequencer: str = ""
    output_size: int | None = None  # bytes of the object at output_url when the job finished (None: unknown)
    quality: str = ""  # a VMAF target's search as JSON text (transcode/pertitle.py QualitySearch.as_dict), or ""

    def as_json(self) -> dict[str, object]:
        """The stable ``--json`` shape of a job (a public interface: see the README)."""
        return {
            "key": self.id.key,
            "source_etag": self.id.source_etag,
            "rendition": self.id.rendition,
            "state": self.state.value,
            "attempts": self.attempts,
            "progress_percent": round(self.progress_percent, 1),
            "output": self.output_url or None,
            "error": self.error or None,
            "stderr_tail": self.stderr_tail or None,
            "note": self.note or None,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "quality": json.loads(self.quality) if self.quality else None,
        }


@dataclass(frozen=True)
class JobLogLine:
    key: str
    rendition: str
    at: float
    level: str
    message: str


class JobStore(Protocol):
    """The jobs' records and log lines; :class:`JobStoreBackend` adds how one is opened."""

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        """Record a queued job unless one exists already (then return the existing record unchanged)."""

    def start(self, job_id: JobId, attempt: int) -> JobRecord:
        """Mark the job running on its ``attempt``-th delivery, creating the record if needed."""

    def progress(self, job_id: JobId, percent: float) -> None:
        """Record how far the conversion is (0-100). Ignored unless the job is running."""

    def finish(
        self, job_id: JobId, output_url: str, note: str = "", output_size: int | None = None, quality: str = ""
    ) -> JobRecord:
        """Mark the job done, with the output's location (empty when nothing was written), a note, the
        output's size in bytes (None when unknown) and a VMAF target's search as JSON text ("" for none)."""

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "") -> JobRecord:
        """Mark the job queued again after a transient failure, keeping the error."""

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "") -> JobRecord:
        """Mark the job failed (dead-lettered), keeping the error and FFmpeg's stderr tail."""

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        """Mark failed jobs queued again (after a redrive); return how many."""

    def get(self, job_id: JobId) -> JobRecord | None:
        """The job's record, or None."""

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        """Jobs, newest first, optionally only for ``key`` and in ``states``."""

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        """Keep one log line of a job (the troubleshooting trail shown by ``videoconverter logs``)."""

    def logs(self, key: str) -> list[JobLogLine]:
        """Every kept log line of ``key``, oldest first."""

    def close(self) -> None:
        """Release connections."""


class JobStoreBackend(JobStore, Protocol):
    """A job store that a URL opens: every class in :data:`videoconverter.jobs.BACKENDS`."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open the job store ``url`` names (its scheme chose this class), creating its tables when missing.

        Raises ConfigError when the URL is malformed or the database cannot be reached or opened.
        """
