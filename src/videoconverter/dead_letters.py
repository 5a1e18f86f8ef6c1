"""Dead letters with their jobs: redriving them, and failing the jobs whose messages the broker dead-lettered.

Redriving is what ``dlq redrive`` and ``POST /api/dead-letters/redrive`` share: the broker moves the messages; the
job store marks the jobs they stand for queued again (``failed → queued``), so the dashboard and ``jobs`` show
them waiting rather than failed.

A message received ``max_receive_count`` times without a settlement (every worker that took it died: killed, out
of memory, its machine lost) is dead-lettered by the broker itself, where no worker sees it: SQLite's claim,
SQS's redrive policy, RabbitMQ's delivery limit. Its job would stay ``running`` for ever, and ``jobs --wait``
with it. Each worker therefore looks, every visibility timeout, for jobs of its renditions that are not finished
and took ``max_receive_count`` attempts (a cheap query, nearly always empty); only if there are any does it read
the dead-letter queue, and it fails each one whose message is there, with the broker's reason (:class:`Sweeper`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from videoconverter.chunking.messages import chunk_message
from videoconverter.errors import InvalidEventError
from videoconverter.events import parse_event
from videoconverter.jobs.base import MAX_PAGE_SIZE, JobFilter, JobId, JobState
from videoconverter.jobs.log import JobLog
from videoconverter.pipeline import Services
from videoconverter.renditions import Rendition

log = logging.getLogger(__name__)

#: How many of a dead-letter queue's messages are read to find the one to redrive (its body names the job).
LOOKUP_LIMIT = 10_000


def redrive(svc: Services, renditions: Iterable[Rendition], message_id: str | None = None) -> list[dict[str, Any]]:
    """Move every dead letter of each rendition back to its queue, or only the one whose id is ``message_id``,
    and requeue the failed jobs they stand for: ``[{"rendition", "redriven", "jobs_requeued"}]``, one per
    rendition (``redriven`` is 0 where the rendition has no such message)."""
    out = []
    for rendition in renditions:
        if message_id is None:
            moved = svc.broker.redrive(rendition.queue)
            requeued = svc.jobs.requeue_failed(rendition=rendition.name) if moved else 0
        else:
            keys = _keys_of_letter(svc, rendition, message_id)
            moved = svc.broker.redrive(rendition.queue, message_id)
            requeued = sum(svc.jobs.requeue_failed(key, rendition.name) for key in keys) if moved else 0
        out.append({"rendition": rendition.name, "redriven": moved, "jobs_requeued": requeued})
    return out


def _keys_of_letter(svc: Services, rendition: Rendition, message_id: str) -> list[str]:
    """The uploaded keys named by the dead letter ``message_id`` (none for a malformed event or no such letter)."""
    for letter in svc.broker.dead_letters(rendition.queue, limit=LOOKUP_LIMIT):
        if letter.message_id == message_id:
            return keys_of(letter.body)
    return []


def keys_of(body: str) -> list[str]:
    """The keys of the uploads a message body stands for (an S3 event's records, or a split job's piece); none
    when it is neither."""
    return sorted({job.key for job in jobs_of(body, "")})


def jobs_of(body: str, rendition: str) -> list[JobId]:
    """The jobs of ``rendition`` a message body stands for: one per ObjectCreated record of an S3 event, or the
    job a piece of a split job belongs to; none for a malformed body."""
    try:
        chunk = chunk_message(body)
        if chunk is not None:
            return [JobId(chunk.key, chunk.etag, chunk.rendition)]
        return [JobId(record.key, record.etag, rendition) for record in parse_event(body)]
    except InvalidEventError:
        return []


def fail_stranded(svc: Services, renditions: Sequence[Rendition]) -> int:
    """Fail every unfinished job of ``renditions`` whose message the broker dead-lettered itself (see the module's
    docstring), with the broker's reason; return how many."""
    failed = 0
    for rendition in renditions:
        suspects = _suspects(svc, rendition)
        if not suspects:
            continue
        for letter in svc.broker.dead_letters(rendition.queue, limit=LOOKUP_LIMIT):
            for job in jobs_of(letter.body, rendition.name):
                if job not in suspects:
                    continue
                reason = f"dead-lettered by the broker: {letter.reason or 'received too many times'}"
                svc.jobs.fail(job, reason)
                JobLog(svc.jobs, job.key, job.rendition, source_etag=job.source_etag).error(reason)
                suspects.discard(job)
                failed += 1
    return failed


def _suspects(svc: Services, rendition: Rendition) -> set[JobId]:
    """The jobs of ``rendition`` not finished after ``max_receive_count`` attempts: only theirs can have been
    dead-lettered by the broker. Every running one (as many as workers, and the stranded), and the newest page of
    queued ones (queued at the last attempt is rare: a worker stopped, handed the job back, then died)."""
    found = []
    cursor: str | None = None
    while True:
        page = svc.jobs.page(JobFilter(states=(JobState.RUNNING,), rendition=rendition.name), MAX_PAGE_SIZE, cursor)
        found += page.records
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    found += svc.jobs.page(JobFilter(states=(JobState.QUEUED,), rendition=rendition.name), MAX_PAGE_SIZE).records
    return {r.id for r in found if r.attempts >= svc.config.max_receive_count}


class Sweeper:
    """Runs :func:`fail_stranded` for a worker's renditions at most once every ``interval_seconds`` (the
    visibility timeout: the pace at which lost leases come back), from the worker's receive loop."""

    def __init__(self, svc: Services, renditions: Sequence[Rendition], interval_seconds: float) -> None:
        self.svc, self.renditions, self.interval_seconds = svc, tuple(renditions), interval_seconds
        self._next = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_seconds
        try:
            fail_stranded(self.svc, self.renditions)
        except Exception:  # a look-out, never a reason for the worker to stop: the next sweep tries again
            log.warning("could not look for jobs the broker dead-lettered", exc_info=True)
