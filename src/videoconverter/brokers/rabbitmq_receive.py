"""The receiving half of the RabbitMQ broker: consumers that wake a waiting receive when a message arrives.

AMQP 0-9-1 has no "get, waiting up to N seconds". Asking again with ``basic.get`` at intervals costs latency (half
an interval on average) and CPU while idle; a consumer is pushed each message as it arrives. But a consumer is
pushed messages whether or not anyone is waiting, and every message handed back with ``basic.reject`` (or by
closing the channel: before RabbitMQ 4.3) counts towards the queue's delivery limit, as a worker that died would.
A message nobody asked for must neither be held while the worker converts a video, nor cost an attempt. So:

- **Ready messages are taken, not consumed.** A receive first looks at each queue's ready count (the passive
  declare that also proves the queue exists: a consume or get on a missing queue would close the work channel and
  every lease with it) and takes what is there with ``basic.get``, least recently served queue first (fairness, as
  in :mod:`~videoconverter.brokers.fairness`). Only when every queue is empty does it wait.
- **Waiting is consuming, one message at a time.** A waiting receive makes sure each of its queues has one consumer
  of this broker instance on the work channel, with ``basic.qos(prefetch_count=1)``: RabbitMQ pushes each consumer
  at most one message until that one is settled. The I/O thread hands what arrives to a waiting receive (as a
  lease, exactly as ``basic.get`` would) and wakes it.
- **A consumer is cancelled only once it has delivered.** Its one message is unacknowledged, so RabbitMQ can push
  it nothing more: ``basic.cancel`` races with no delivery. (Cancelling a consumer that might still be pushed a
  message would be a race: pika rejects whatever arrives between the cancel and its cancel-ok, which counts.) A
  consumer that delivered nothing stays for the next receive, so an idle receive loop sends nothing but the
  passive declares: no consume and cancel per call.
- **A message that arrives with nobody waiting** (between two receives, or while the receive that woke is
  already satisfied) waits :data:`HAND_BACK_AFTER_SECONDS` for the next receive of this instance, then is handed
  back without costing a delivery: a confirmed copy keeping its id, time and attempt count
  (``x-videoconverter-prior-deliveries``) goes to the end of its queue, then the original is acked. Its consumer
  was cancelled when it delivered, so it takes no other while the worker is busy.

A receive with ``max_messages`` above 1 waits for the first message only, then takes what else is ready with
``basic.get``. Every lease, however it was received, lives on the work channel and dies with it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pika.exceptions

from videoconverter.brokers.base import Delivery
from videoconverter.brokers.fairness import Rotation, queue_names
from videoconverter.brokers.rabbitmq_io import AmqpConnection
from videoconverter.brokers.rabbitmq_messages import PRIOR_DELIVERIES_HEADER, attempt_of
from videoconverter.errors import QueueNotFoundError, VideoConverterError

log = logging.getLogger("videoconverter.brokers.rabbitmq")

PREFETCH_COUNT = 1  # per consumer: one message in its hands at a time
#: How long a message that arrived with nobody waiting is kept for the next receive before it goes back.
HAND_BACK_AFTER_SECONDS = 0.05
_NOT_FOUND = 404


@dataclass
class Lease:
    queue: str
    delivery_tag: int
    channel: Any  # the channel it was received on: a lease dies with its channel
    deadline: float  # time.monotonic()
    attempt: int
    properties: Any
    body: bytes


@dataclass
class _Waiter:
    """One receive waiting for messages (touched by the I/O thread only, until it is woken and removed)."""

    queues: tuple[str, ...]
    max_messages: int
    visibility_timeout_seconds: int
    deliveries: list[Delivery] = field(default_factory=list)
    woken: threading.Event = field(default_factory=threading.Event)

    @property
    def wanted(self) -> int:
        return self.max_messages - len(self.deliveries)


@dataclass(frozen=True)
class _Arrival:
    """A message a consumer was pushed."""

    queue: str
    channel: Any
    delivery_tag: int
    properties: Any
    body: bytes
    at: float  # time.monotonic()
    consumer_tag: str = ""  # "" when taken with basic.get


class RabbitMQReceiving:
    """``receive`` and ``receive_any``; the broker provides the I/O thread, the leases and the sending."""

    _io: AmqpConnection
    _leases: dict[str, Lease]

    def _count(self, queue: str) -> int:
        raise NotImplementedError

    def _publish(self, exchange: str, routing_key: str, body: bytes, properties: Any, what: str) -> None:
        raise NotImplementedError

    def _copy_properties(self, properties: Any, headers: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _own_headers(self, headers: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _init_receiving(self) -> None:
        self._rotation = Rotation()
        self._waiters: list[_Waiter] = []
        self._consumers: dict[str, str] = {}  # queue -> tag of this instance's consumer, which delivered nothing yet
        self._consumer_channel: Any = None  # the channel the consumers live on, set up with the prefetch
        self._arrivals: list[_Arrival] = []  # pushed by pika's dispatch, not yet handled
        self._parked: list[_Arrival] = []  # arrived with nobody waiting
        self._vanished: set[str] = set()  # queues whose consumer the server cancelled (deleted): not consumed again

    def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 0.0, visibility_timeout_seconds: int = 30
    ) -> list[Delivery]:
        return self.receive_any(
            [queue],
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
        )

    def receive_any(
        self,
        queues: Sequence[str],
        *,
        max_messages: int = 1,
        wait_seconds: float = 0.0,
        visibility_timeout_seconds: int = 30,
    ) -> list[Delivery]:
        waiter = _Waiter(queue_names(queues), max_messages, visibility_timeout_seconds)
        if self._io.call(lambda: self._begin(waiter, wait_seconds > 0)):
            return waiter.deliveries
        try:
            waiter.woken.wait(wait_seconds)
        finally:
            self._io.call(lambda: self._end(waiter))
        if not waiter.deliveries and self._io.stopping.is_set():
            raise VideoConverterError("the broker was closed during a receive")
        return waiter.deliveries

    # --- I/O thread -----------------------------------------------------------------------------------------

    def _begin(self, waiter: _Waiter, wait: bool) -> bool:
        """Take what is parked or ready; else start waiting. True when the receive is done."""
        ready = {queue: self._count(queue) for queue in waiter.queues}  # raises before anything is taken
        self._vanished.difference_update(waiter.queues)
        for arrival in [a for a in self._parked if a.queue in waiter.queues][: max(0, waiter.wanted)]:
            self._parked.remove(arrival)
            self._lease_to(waiter, arrival)
        self._take_ready(waiter, ready)
        if waiter.deliveries or not wait or waiter.wanted <= 0:
            return True
        self._waiters.append(waiter)
        try:
            self._ensure_consumers()
        except BaseException:
            self._waiters.remove(waiter)
            raise
        return False

    def _end(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.deliveries and waiter.wanted > 0:  # woken by the first message: the others without waiting
            with contextlib.suppress(QueueNotFoundError):  # deleted meanwhile: what was received stays received
                self._take_ready(waiter, {queue: self._count(queue) for queue in waiter.queues})

    def _take_ready(self, waiter: _Waiter, ready: dict[str, int]) -> None:
        channel = self._io.work_channel()
        for queue in self._rotation.order([queue for queue in waiter.queues if ready[queue]]):
            while waiter.wanted > 0:
                method, properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                self._lease_to(waiter, _Arrival(queue, channel, method.delivery_tag, properties, body, 0.0))

    def _lease_to(self, waiter: _Waiter, arrival: _Arrival) -> None:
        receipt = uuid.uuid4().hex
        properties = arrival.properties
        attempt = attempt_of(properties.headers)
        self._leases[receipt] = Lease(
            arrival.queue,
            arrival.delivery_tag,
            arrival.channel,
            time.monotonic() + waiter.visibility_timeout_seconds,
            attempt,
            properties,
            arrival.body,
        )
        waiter.deliveries.append(
            Delivery(
                arrival.queue,
                properties.message_id or f"amqp-{receipt}",
                arrival.body.decode("utf-8", errors="replace"),
                receipt,
                attempt,
                float(properties.timestamp or time.time()),
            )
        )
        self._rotation.served(arrival.queue)

    def _ensure_consumers(self) -> None:
        """One consumer on each queue a receive waits on (I/O thread)."""
        needed = [q for w in self._waiters if not w.deliveries for q in w.queues]
        missing = [q for q in dict.fromkeys(needed) if q not in self._consumers and q not in self._vanished]
        if not missing:
            return
        channel = self._io.work_channel()
        if channel is not self._consumer_channel:  # a new work channel: the old one's consumers died with it
            self._consumers.clear()
            channel.basic_qos(prefetch_count=PREFETCH_COUNT)  # per consumer, for the consumers created from now
            channel.add_on_cancel_callback(self._on_cancelled_by_server)
            self._consumer_channel = channel
        for queue in missing:
            try:
                tag = channel.basic_consume(queue, functools.partial(self._on_message, queue), auto_ack=False)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != _NOT_FOUND:
                    raise
                # Deleted since the receive began: the work channel closed with the error (and its leases died);
                # the receive waits on the other queues, and the next one says the queue is missing.
                self._vanished.add(queue)
                log.warning("queue %s was deleted while a receive waited on it", queue)
                return
            self._consumers[queue] = tag

    def _on_message(self, queue: str, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        """pika's dispatch calls this inside ``process_data_events``: only note the message; the tick handles it."""
        self._arrivals.append(
            _Arrival(queue, channel, method.delivery_tag, properties, body, time.monotonic(), method.consumer_tag)
        )

    def _on_cancelled_by_server(self, method_frame: Any) -> None:
        tag = method_frame.method.consumer_tag
        for queue in [q for q, t in self._consumers.items() if t == tag]:
            del self._consumers[queue]
            self._vanished.add(queue)
            log.warning("RabbitMQ cancelled the consumer of queue %s (deleted?)", queue)

    def _receiving_tick(self) -> float | None:
        """Hand what arrived to the waiting receives, hand back what waited too long (I/O thread); return the
        seconds until something parked is due, None if nothing is."""
        arrivals, self._arrivals = self._arrivals, []
        for arrival in arrivals:
            if arrival.consumer_tag and self._consumers.get(arrival.queue) == arrival.consumer_tag:
                # Spent: with its one message unacknowledged it cannot be pushed another, so the cancel races
                # nothing. The next receive that waits on this queue starts a new consumer.
                del self._consumers[arrival.queue]
                if arrival.channel.is_open:
                    arrival.channel.basic_cancel(arrival.consumer_tag)
            if not self._on_work_channel(arrival):
                continue  # its channel died: the server requeued it
            waiter = next((w for w in self._waiters if arrival.queue in w.queues and w.wanted > 0), None)
            if waiter is None:
                self._parked.append(arrival)
                continue
            self._lease_to(waiter, arrival)
            waiter.woken.set()
        if self._waiters:
            self._ensure_consumers()
        return self._hand_back_parked()

    def _hand_back_parked(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        kept: list[_Arrival] = []
        due: list[_Arrival] = []
        for arrival in self._parked:
            if self._on_work_channel(arrival):  # else its channel died, and the server requeued it
                (due if now - arrival.at >= HAND_BACK_AFTER_SECONDS else kept).append(arrival)
        self._parked = kept  # before handing back: should that fail, nothing is handed back twice
        for arrival in due:
            self._hand_back(arrival)
        return min((arrival.at + HAND_BACK_AFTER_SECONDS - now for arrival in kept), default=None)

    def _hand_back(self, arrival: _Arrival) -> None:
        """Back to the end of its queue without costing a delivery: a confirmed copy with the attempt count so far,
        then the ack. Should the copy fail, a reject instead (it counts, but nothing is lost)."""
        headers = self._own_headers(arrival.properties.headers)
        headers[PRIOR_DELIVERIES_HEADER] = attempt_of(arrival.properties.headers) - 1
        try:
            copy = self._copy_properties(arrival.properties, headers)
            self._publish("", arrival.queue, arrival.body, copy, f"queue {arrival.queue!r}")
        except (VideoConverterError, pika.exceptions.AMQPChannelError) as exc:
            log.warning("could not hand a message back to %s by a copy (%s): rejected instead", arrival.queue, exc)
            arrival.channel.basic_reject(arrival.delivery_tag, requeue=True)
            return
        arrival.channel.basic_ack(arrival.delivery_tag)

    def _hand_back_everything(self) -> None:
        """Before closing: what is parked goes back at once, and every waiting receive wakes (I/O thread)."""
        self._hand_back_parked(now=float("inf"))
        for waiter in self._waiters:
            waiter.woken.set()

    def _forget_consumers(self) -> None:
        """The work channel or the connection is gone, and the server requeued what it had pushed."""
        self._consumers.clear()
        self._consumer_channel = None
        self._arrivals.clear()
        self._parked.clear()

    def _parked_count(self, queue: str) -> int:
        return sum(1 for arrival in self._parked if arrival.queue == queue)

    def _on_work_channel(self, arrival: _Arrival) -> bool:
        return arrival.channel is self._io.work and arrival.channel.is_open
