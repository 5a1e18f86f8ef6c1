"""The job store, announcing every state change: a decorator around any :class:`JobStore` backend.

Each transition is recorded first, then its event is published to the notifications topic (the broker fans it
out to the events queue, the webhooks queue and, on AWS, to whatever else subscribed to the SNS topic). A
failure to publish never fails the job: it is logged, and kept in the job's own log lines, where
``videoconverter logs`` shows it. The events carry what the records hold (the output's size included, as the
worker passed it to ``finish``), so announcing needs no object store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from videoconverter.brokers.base import Broker
from videoconverter.jobs import base
from videoconverter.jobs.base import (
    JobFilter,
    JobId,
    JobLogLine,
    JobPage,
    JobRecord,
    JobState,
    JobStats,
    JobStore,
    PieceCount,
)
from videoconverter.jobs.timeline import Timeline
from videoconverter.notifications.schema import EventType, job_event, upload_done_event

log = logging.getLogger(__name__)


class NotifyingJobStore:
    def __init__(self, inner: JobStore, broker: Broker, topic: str, renditions: Sequence[str]) -> None:
        self.inner = inner
        self.broker = broker
        self.topic = topic
        self.renditions = tuple(renditions)

    # --- transitions: recorded, then announced --------------------------------------------------------------

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        new = self.inner.get(job_id) is None
        record = self.inner.enqueue(job_id, sequencer)
        if new and record.state is JobState.QUEUED:
            self._emit(job_event(EventType.QUEUED, record), job_id)
        return record

    def start(self, job_id: JobId, attempt: int, holder: str = "", fresh_seconds: float = 0.0) -> JobRecord:
        record = self.inner.start(job_id, attempt, holder, fresh_seconds)
        if record.holder == holder:  # else a duplicate's refused claim: the job's running event was sent before
            self._emit(job_event(EventType.RUNNING, record), job_id)
        return record

    def finish(
        self,
        job_id: JobId,
        output_url: str,
        note: str = "",
        output_size: int | None = None,
        quality: str = "",
        timeline: Timeline | None = None,
    ) -> JobRecord:
        record = self.inner.finish(job_id, output_url, note, output_size, quality, timeline)
        self._emit(job_event(EventType.DONE, record, record.output_size), job_id)
        self._announce_upload_if_done(job_id)
        return record

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        record = self.inner.retry(job_id, error, stderr_tail, timeline)
        self._emit(job_event(EventType.RETRYING, record), job_id)
        return record

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        record = self.inner.fail(job_id, error, stderr_tail, timeline)
        self._emit(job_event(EventType.FAILED, record), job_id)
        return record

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        failed = [r for r in self._failed(key, rendition) if rendition is None or r.id.rendition == rendition]
        count = self.inner.requeue_failed(key, rendition)
        for before in failed:
            after = self.inner.get(before.id)
            if after is not None and after.state is JobState.QUEUED:
                self._emit(job_event(EventType.REDRIVEN, after), after.id)
        return count

    # --- reads and the rest, unchanged ----------------------------------------------------------------------

    def progress(self, job_id: JobId, percent: float) -> None:
        self.inner.progress(job_id, percent)

    def plan_pieces(self, job_id: JobId, planned: int) -> None:
        self.inner.plan_pieces(job_id, planned)

    def piece_done(self, job_id: JobId, piece_index: int) -> PieceCount:
        return self.inner.piece_done(job_id, piece_index)

    def get(self, job_id: JobId) -> JobRecord | None:
        return self.inner.get(job_id)

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        return self.inner.find(key, states)

    def page(
        self, where: JobFilter = base.ALL_JOBS, limit: int = base.DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> JobPage:
        return self.inner.page(where, limit, cursor)

    def changes(self, since: float, limit: int = base.DEFAULT_PAGE_SIZE, cursor: str | None = None) -> JobPage:
        return self.inner.changes(since, limit, cursor)

    def stats(self) -> JobStats:
        return self.inner.stats()

    def prune(self, before: float, batch_size: int = base.PRUNE_BATCH_SIZE) -> int:
        return self.inner.prune(before, batch_size)

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        self.inner.append_log(key, rendition, level, message)

    def logs(self, key: str) -> list[JobLogLine]:
        return self.inner.logs(key)

    def wait_for_change(self, timeout_seconds: float) -> None:
        self.inner.wait_for_change(timeout_seconds)

    def close(self) -> None:
        self.inner.close()

    # --- plumbing -------------------------------------------------------------------------------------------

    def _failed(self, key: str | None, rendition: str | None) -> list[JobRecord]:
        """The failed jobs a redrive may requeue: a key's, or a page-by-page query of the failed state."""
        if key is not None:
            return self.inner.find(key, (JobState.FAILED,))
        found: list[JobRecord] = []
        cursor: str | None = None
        where = JobFilter(states=(JobState.FAILED,), rendition=rendition)
        while True:
            page = self.inner.page(where, base.MAX_PAGE_SIZE, cursor)
            found.extend(page.records)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def _announce_upload_if_done(self, job_id: JobId) -> None:
        records = {r.id.rendition: r for r in self.inner.find(job_id.key) if r.id.source_etag == job_id.source_etag}
        if not all(name in records and records[name].state is JobState.DONE for name in self.renditions):
            return
        outputs = {name: (records[name].output_url, records[name].output_size) for name in self.renditions}
        # Two workers finishing the last renditions at once may both get here: the event id is the same.
        self._emit(upload_done_event(job_id.key, job_id.source_etag, outputs), job_id)

    def _emit(self, event: dict[str, Any], job_id: JobId) -> None:
        try:
            self.broker.publish(self.topic, json.dumps(event))
        except Exception as exc:
            context = {"key": job_id.key, "rendition": job_id.rendition}
            log.warning("event %s not published: %s", event["type"], exc, extra=context)
            try:
                self.inner.append_log(
                    job_id.key, job_id.rendition, "WARNING", f"notification {event['type']} not published: {exc}"
                )
            except Exception:
                log.warning("could not keep the unpublished notification in the job log", exc_info=True)
