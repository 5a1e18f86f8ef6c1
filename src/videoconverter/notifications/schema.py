"""Job events: the one documented, versioned JSON shape of a job state change (a public interface).

::

    {"schema_version": 1, "id": "…", "type": "job.done", "time": 1764300000.5,
     "key": "holiday.mp4", "rendition": "720p", "source_etag": "…", "state": "done", "attempt": 1,
     "output": "s3://videoconverter-output-720p/holiday.mp4", "output_size": 1234567,
     "duration_seconds": 41.2, "error": null, "note": null}

``type`` is one of :class:`EventType`. ``upload.done`` has no ``rendition`` but ``renditions``: name -> output and
size. Delivery is at least once: ``id`` is the same for every copy of an event (derived from what it describes),
so receivers de-duplicate on it.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Mapping
from typing import Any

from videoconverter.jobs.base import JobRecord

SCHEMA_VERSION = 1
_NAMESPACE = uuid.UUID("6f1f2c4e-8d0b-4a51-9d53-2f7f1b9e0c11")


class EventType(enum.StrEnum):
    QUEUED = "job.queued"  # an upload's event is in the rendition's queue
    RUNNING = "job.running"  # a worker started an attempt
    RETRYING = "job.retrying"  # the attempt failed for a passing reason; queued again with back-off
    DONE = "job.done"  # the output is written (or was already there, or was superseded)
    FAILED = "job.failed"  # dead-lettered with the reason
    REDRIVEN = "job.redriven"  # moved back from the dead-letter queue for another try
    UPLOAD_DONE = "upload.done"  # every rendition of one upload is done: publish the video once


def event_id(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(str(p) for p in parts)))


def job_event(kind: EventType, record: JobRecord, output_size: int | None = None) -> dict[str, Any]:
    """The event for ``record`` having just changed state by ``kind``."""
    job = record.id
    duration = None
    if record.finished_at is not None and record.started_at is not None:
        duration = round(record.finished_at - record.started_at, 3)
    return {
        "schema_version": SCHEMA_VERSION,
        # The record's update time tells two runs of the same transition apart (a redriven job fails again).
        "id": event_id(kind.value, *(job.key, job.source_etag, job.rendition), record.attempts, record.updated_at),
        "type": kind.value,
        "time": record.updated_at,
        "key": job.key,
        "rendition": job.rendition,
        "source_etag": job.source_etag,
        "state": record.state.value,
        "attempt": record.attempts,
        "output": record.output_url or None,
        "output_size": output_size,
        "duration_seconds": duration,
        "error": record.error or None,
        "note": record.note or None,
    }


def upload_done_event(key: str, source_etag: str, outputs: Mapping[str, tuple[str, int | None]]) -> dict[str, Any]:
    """Every rendition of the upload ``key`` (with ``source_etag``) is done: ``outputs`` maps name -> (url, size)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": event_id(EventType.UPLOAD_DONE.value, key, source_etag),
        "type": EventType.UPLOAD_DONE.value,
        "time": time.time(),
        "key": key,
        "source_etag": source_etag,
        "renditions": {name: {"output": url or None, "output_size": size} for name, (url, size) in outputs.items()},
    }
