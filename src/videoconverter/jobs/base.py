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
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, Self

from videoconverter.jobs.timeline import Timeline

#: Page sizes of the paged reads (:meth:`JobStore.page`, :meth:`JobStore.changes`).
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
#: Upper bounds of the run-time histogram of finished jobs (start to done); the last bucket is +Inf.
DURATION_BUCKETS_SECONDS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 10800.0)
#: The log lines a job keeps (per key and rendition): its first and its last; those between are dropped.
LOG_HEAD_LINES = 50
LOG_TAIL_LINES = 150
#: How many jobs :meth:`JobStore.prune` deletes in one transaction.
PRUNE_BATCH_SIZE = 200


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
    timeline: Timeline = field(default_factory=Timeline)  # the latest attempt's stage times (jobs/timeline.py)
    pieces_planned: int = 0  # a job split into pieces (chunking/): how many; 0 when converted whole
    pieces_done: int = 0  # of those, how many are encoded into the work area
    holder: str = ""  # the id of the message whose delivery last started the job ("": none named; see start)

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
            "timeline": self.timeline.as_json(),
            "timeline_seconds": self.timeline.seconds_since_upload(),
            "pieces": {"done": self.pieces_done, "planned": self.pieces_planned} if self.pieces_planned else None,
        }


@dataclass(frozen=True)
class PieceCount:
    """Where a split job stands after one piece was counted (see :meth:`JobStore.piece_done`)."""

    done: int  # distinct pieces counted so far, this one included
    planned: int
    newly: bool  # this call counted the piece (False: it was counted before, a redelivery)

    @property
    def completes(self) -> bool:
        """Whether this call counted the last piece: exactly one call of a job's pieces sees this true."""
        return self.newly and self.done == self.planned


@dataclass(frozen=True)
class JobLogLine:
    key: str
    rendition: str
    at: float
    level: str
    message: str


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a page holds; every field empty: all of them."""

    states: tuple[JobState, ...] = ()  # any of these states
    rendition: str | None = None
    key_prefix: str = ""  # keys that start with it ("" matches every key)


ALL_JOBS = JobFilter()


@dataclass(frozen=True)
class JobPage:
    """One page of a listing. ``next_cursor`` continues after its last record, None once nothing follows.

    A page may hold fewer than the limit while more follow (DynamoDB bounds what one request reads)."""

    records: list[JobRecord]
    next_cursor: str | None


@dataclass(frozen=True)
class DurationTotals:
    """The run-time histogram of one rendition's finished jobs, counted as they finished."""

    buckets: dict[float, int] = field(default_factory=dict)  # upper bound (math.inf last) -> jobs, not cumulative
    sum_seconds: float = 0.0
    count: int = 0

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, jobs at most that long)`` for each bound of :data:`DURATION_BUCKETS_SECONDS` and +Inf."""
        bounds = [*DURATION_BUCKETS_SECONDS, math.inf]
        return [(bound, sum(n for b, n in self.buckets.items() if b <= bound)) for bound in bounds]


@dataclass(frozen=True)
class JobStats:
    """What the job store counts as jobs change, so that reading it never reads the records."""

    jobs: dict[tuple[str, JobState], int] = field(default_factory=dict)  # (rendition, state) -> records now
    durations: dict[str, DurationTotals] = field(default_factory=dict)  # rendition -> since the store began
    failures: dict[tuple[str, str], int] = field(default_factory=dict)  # (rendition, cause) -> transitions to failed

    def total(self, where: JobFilter) -> int | None:
        """How many records match ``where``; None when the counts cannot tell (a key prefix)."""
        if where.key_prefix:
            return None
        return sum(
            n
            for (rendition, state), n in self.jobs.items()
            if (not where.states or state in where.states) and where.rendition in (None, rendition)
        )


class JobStore(Protocol):
    """The jobs' records and log lines; :class:`JobStoreBackend` adds how one is opened."""

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        """Record a queued job unless one exists already (then return the existing record unchanged)."""

    def start(self, job_id: JobId, attempt: int, holder: str = "", fresh_seconds: float = 0.0) -> JobRecord:
        """Mark the job running on its ``attempt``-th delivery, creating the record if needed; its timeline is
        cleared (the new attempt's is recorded when it ends).

        ``holder`` claims the job for one message (its id): when the job is running for another holder and was
        updated less than ``fresh_seconds`` ago, nothing changes and the record returned names that holder (a
        duplicate event of an upload being converted; the caller drops it). The same message delivered again
        (its lease lost) takes the job over, as does any message once the holder has gone quiet. Without a
        ``holder`` the job is marked running whoever holds it, and ``holder`` becomes "". Atomic: of concurrent
        claims for different holders, exactly one wins."""

    def progress(self, job_id: JobId, percent: float) -> None:
        """Record how far the conversion is (0-100). Ignored unless the job is running."""

    def finish(
        self,
        job_id: JobId,
        output_url: str,
        note: str = "",
        output_size: int | None = None,
        quality: str = "",
        timeline: Timeline | None = None,
    ) -> JobRecord:
        """Mark the job done, with the output's location (empty when nothing was written), a note, the
        output's size in bytes (None when unknown), a VMAF target's search as JSON text ("" for none) and the
        attempt's timeline (its ``done`` stamped now, the time ``finished_at`` gets)."""

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        """Mark the job queued again after a transient failure, keeping the error (and the failed attempt's
        timeline when given; None leaves the stored one)."""

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        """Mark the job failed (dead-lettered), keeping the error, FFmpeg's stderr tail (and the attempt's
        timeline when given; None leaves the stored one)."""

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        """Mark failed jobs queued again (after a redrive); return how many."""

    def plan_pieces(self, job_id: JobId, planned: int) -> None:
        """Record that the job is split into ``planned`` pieces (chunking). Pieces counted before stay counted
        (a plan made again for the same source is the same plan). Raises LookupError when there is no record."""

    def piece_done(self, job_id: JobId, piece_index: int) -> PieceCount:
        """Count piece ``piece_index`` of the job as done, atomically: of concurrent calls for the job's
        different pieces, exactly one sees :attr:`PieceCount.completes`; a piece counted again changes nothing.
        Progress becomes the share of pieces done (below 100 until the job finishes). Raises LookupError when
        the job has no record or no plan."""

    def get(self, job_id: JobId) -> JobRecord | None:
        """The job's record, or None."""

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        """Jobs, newest first, optionally only for ``key`` and in ``states``. Without a key this reads every
        matching record: request paths use :meth:`page` instead."""

    def page(self, where: JobFilter = ALL_JOBS, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> JobPage:
        """Up to ``limit`` (1 to :data:`MAX_PAGE_SIZE`) jobs matching ``where``, newest first (by creation time,
        then key, source ETag and rendition, all descending); ``cursor``, a previous page's ``next_cursor``,
        continues after that page. The database reads about one page whatever the history's size.

        Raises InvalidQueryError for a limit out of range or a malformed cursor."""

    def changes(self, since: float, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None) -> JobPage:
        """Jobs last updated at or after ``since`` (epoch seconds), oldest change first: what changed, at a cost
        that follows the rate of change. ``cursor`` continues after a previous page of the same ``since``.

        Raises InvalidQueryError for a limit out of range or a malformed cursor."""

    def stats(self) -> JobStats:
        """Jobs by rendition and state, and the run-time histograms and failure counts kept on transitions."""

    def prune(self, before: float, batch_size: int = PRUNE_BATCH_SIZE) -> int:
        """Delete the done and failed jobs last updated before ``before`` (epoch seconds), with their key's and
        rendition's log lines from before then, ``batch_size`` jobs per transaction; return how many jobs."""

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        """Keep one log line of a job (the troubleshooting trail shown by ``videoconverter logs``). A key and
        rendition keep their first :data:`LOG_HEAD_LINES` and last :data:`LOG_TAIL_LINES` lines."""

    def logs(self, key: str) -> list[JobLogLine]:
        """Every kept log line of ``key``, oldest first; where lines were dropped, one line says how many."""

    def wait_for_change(self, timeout_seconds: float) -> None:
        """Sleep until some job may have changed state, or ``timeout_seconds`` (at most; a store that cannot
        tell polls: it returns after a short interval). Callers re-read what they wait on after it returns."""

    def close(self) -> None:
        """Release connections."""


class JobStoreBackend(JobStore, Protocol):
    """A job store that a URL opens: every class in :data:`videoconverter.jobs.BACKENDS`."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open the job store ``url`` names (its scheme chose this class), creating its tables when missing.

        Raises ConfigError when the URL is malformed or the database cannot be reached or opened.
        """
