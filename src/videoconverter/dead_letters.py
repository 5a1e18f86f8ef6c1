"""Redriving dead letters, with their jobs: what ``dlq redrive`` and ``POST /api/dead-letters/redrive`` share.

The broker moves the messages; the job store marks the jobs they stand for queued again (``failed → queued``), so
the dashboard and ``jobs`` show them waiting rather than failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from videoconverter.errors import InvalidEventError
from videoconverter.events import parse_event
from videoconverter.pipeline import Services
from videoconverter.renditions import Rendition

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
    """The keys of the ObjectCreated records in a message body; none when it is not an S3 event."""
    try:
        return sorted({record.key for record in parse_event(body)})
    except InvalidEventError:
        return []
