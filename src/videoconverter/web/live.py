"""Live updates: one poller per server asks the job store for the jobs updated since its last poll, and the
queues for their depths, at most once a second, and sends what changed to every Server-Sent-Events client. A
hundred open dashboards cost one query a second, and a query costs what changed, not the history."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from videoconverter.brokers.base import QueueDepth
from videoconverter.errors import QueueNotFoundError
from videoconverter.jobs.base import MAX_PAGE_SIZE, JobRecord
from videoconverter.pipeline import Services
from videoconverter.web.explain import explain

log = logging.getLogger(__name__)
POLL_INTERVAL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
SUBSCRIBER_BACKLOG = 64  # events a slow client may lag behind before it is told to reload
#: A poll asks for changes since the previous poll began, less this: a change whose time was taken up to this
#: long before it was committed (a write waiting for a lock, a worker's clock a little behind) is still seen.
CHANGES_OVERLAP_SECONDS = 5.0
MAX_CHANGES_PER_POLL = 10 * MAX_PAGE_SIZE  # beyond: clients are told to reload rather than sent every job


def job_json(record: JobRecord) -> dict[str, Any]:
    """A job as the API shows it: the CLI's stable ``--json`` shape plus ``explanation`` and ``cause``."""
    data = record.as_json()
    explanation = explain(record)
    data["explanation"] = explanation.words if explanation else None
    data["cause"] = explanation.cause if explanation else None
    return data


def queue_depths(svc: Services) -> list[dict[str, Any]]:
    """Per rendition: its queue's depth by state and its dead-letter queue's depth."""
    out = []
    for rendition in svc.config.renditions:
        depth = svc.broker.depth(rendition.queue)
        try:
            dead = svc.broker.depth(rendition.dead_letter_queue).total
        except QueueNotFoundError:
            dead = len(svc.broker.dead_letters(rendition.queue, limit=1000))
        out.append(_depth_json(rendition.name, rendition.queue, depth, dead))
    return out


def _depth_json(rendition: str, queue: str, depth: QueueDepth, dead: int) -> dict[str, Any]:
    return {
        "rendition": rendition,
        "queue": queue,
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "delayed": depth.delayed,
        "dead_letters": dead,
    }


class LiveJobs:
    """The shared poller and its subscribers (one asyncio queue of SSE frames each)."""

    def __init__(self, svc: Services, interval_seconds: float = POLL_INTERVAL_SECONDS) -> None:
        self.svc = svc
        self.interval_seconds = interval_seconds
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._seen: dict[tuple[str, str, str], tuple[Any, ...]] = {}  # jobs sent, changed within the overlap
        self._last_poll = time.time()
        self._queues: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.polls = 0  # for tests: how many times the store was read

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for subscriber in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                subscriber.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stream(self) -> AsyncIterator[str]:
        """SSE frames for one client until it goes away: ``jobs`` and ``queues`` events, and heartbeats."""
        queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield "retry: 2000\n\n"
            if self._queues:
                yield _frame("queues", {"queues": self._queues})
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), self.heartbeat_seconds)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            self._subscribers.discard(queue)

    async def _run(self) -> None:
        while True:
            if self._subscribers:
                try:
                    await self._poll()
                except Exception:
                    log.warning("live update poll failed", exc_info=True)
            else:  # nobody listens: a client that comes loads the jobs, then needs only what changes from then on
                self._last_poll = time.time()
            await asyncio.sleep(self.interval_seconds)

    async def _poll(self) -> None:
        changed, queues = await run_in_threadpool(lambda: (self._changed(), queue_depths(self.svc)))
        self.polls += 1
        if changed is None:
            self._broadcast(_frame("reload", {}))
        elif changed:
            self._broadcast(_frame("jobs", {"jobs": [job_json(r) for r in changed]}))
        if queues != self._queues:
            self._queues = queues
            self._broadcast(_frame("queues", {"queues": queues}))

    def _changed(self) -> list[JobRecord] | None:
        """The jobs updated since the previous poll (and not sent already); None when too many changed."""
        started, since = time.time(), self._last_poll - CHANGES_OVERLAP_SECONDS
        records: list[JobRecord] = []
        cursor: str | None = None
        while True:
            page = self.svc.jobs.changes(since, MAX_PAGE_SIZE, cursor)
            records += page.records
            if page.next_cursor is None:
                break
            if len(records) >= MAX_CHANGES_PER_POLL:
                self._seen.clear()
                self._last_poll = started
                return None
            cursor = page.next_cursor
        self._last_poll = started
        changed = []
        for record in records:
            ident = (record.id.key, record.id.source_etag, record.id.rendition)
            fingerprint = (record.state, round(record.progress_percent, 1), record.attempts, record.updated_at)
            if self._seen.get(ident) != fingerprint:
                self._seen[ident] = fingerprint
                changed.append(record)
        horizon = started - 2 * CHANGES_OVERLAP_SECONDS  # what no later poll can read again
        self._seen = {ident: f for ident, f in self._seen.items() if f[3] >= horizon}
        return changed

    def _broadcast(self, frame: str) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.put_nowait(frame)
            except asyncio.QueueFull:  # a stalled client: tell it to reload instead of buffering without end
                self._subscribers.discard(subscriber)
                with contextlib.suppress(asyncio.QueueFull):
                    subscriber.get_nowait()
                    subscriber.put_nowait(_frame("reload", {}))
                    subscriber.put_nowait(None)


def _frame(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
