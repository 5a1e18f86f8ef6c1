"""Live updates: one poller per server reads the job store and the queue depths at most once a second and
sends what changed to every Server-Sent-Events client, so a hundred open dashboards cost one query a second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from videoconverter.brokers.base import QueueDepth
from videoconverter.errors import QueueNotFoundError
from videoconverter.jobs.base import JobRecord
from videoconverter.pipeline import Services
from videoconverter.web.explain import explain

log = logging.getLogger(__name__)
POLL_INTERVAL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
SUBSCRIBER_BACKLOG = 64  # events a slow client may lag behind before it is told to reload


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
        self._seen: dict[tuple[str, str, str], tuple[Any, ...]] = {}
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
            await asyncio.sleep(self.interval_seconds)

    async def _poll(self) -> None:
        records, queues = await run_in_threadpool(lambda: (self.svc.jobs.find(), queue_depths(self.svc)))
        self.polls += 1
        changed = []
        for record in records:
            ident = (record.id.key, record.id.source_etag, record.id.rendition)
            fingerprint = (record.state, round(record.progress_percent, 1), record.attempts, record.updated_at)
            if self._seen.get(ident) != fingerprint:
                self._seen[ident] = fingerprint
                changed.append(job_json(record))
        if changed:
            self._broadcast(_frame("jobs", {"jobs": changed}))
        if queues != self._queues:
            self._queues = queues
            self._broadcast(_frame("queues", {"queues": queues}))

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
