"""The RabbitMQ broker: ``amqp://USER:PASSWORD@HOST:PORT/VHOST`` (``amqps://`` for TLS), through pika.

How the broker contract maps onto AMQP 0-9-1:

- A topic is a durable fanout exchange. Every queue is a quorum queue bound to it, with
  ``x-delivery-limit = max_receive_count - 1`` and at-least-once dead-lettering into its dead-letter queue (a
  quorum queue too): a message delivered ``max_receive_count`` times and returned once more lands there with
  reason ``delivery_limit``, even if every worker that took it died.
- Leases are kept here, as AMQP has no visibility timeout. ``receive`` and ``receive_any`` take ready messages
  with ``basic.get`` and wait for the next one as a consumer with a prefetch of 1 (``rabbitmq_receive``, whose
  docstring gives the design), leaving what they return unacknowledged; a lease not extended in time is
  returned with ``basic.reject(requeue=True)`` (a reject, not a nack: it counts towards the delivery limit on
  every server version). If the process dies, RabbitMQ requeues its messages when the connection closes.
- ``attempt`` is 1 + the queue's ``x-delivery-count`` + the deliveries before a delayed retry (our header
  :data:`PRIOR_DELIVERIES_HEADER`, since a delayed retry is a new message).
- ``release(delay)`` puts a copy in a delay queue whose fixed TTL (the delay rounded up to
  :data:`DELAY_LADDER_SECONDS`) dead-letters it back into the work queue, then acks the original. A per-message
  TTL would only expire at the head of a queue, so there is one delay queue per queue and rung.
- ``dead_letter`` puts a copy with the reason in the dead-letter queue, then acks the original. ``redrive`` takes
  the dead-letter queue's messages unacknowledged, moves the matching ones back the same way and hands the others
  back by closing its channel.
- Long polls: a waiting receive wakes as a message is pushed to its consumer. A message pushed with nobody
  waiting is handed back within :data:`~.rabbitmq_receive.HAND_BACK_AFTER_SECONDS` by a copy that keeps its
  attempt count (a reject would count as a delivery), so no worker holds a message it did not ask for.

What AMQP cannot do: count another client's unacknowledged messages (``depth`` reports this instance's leases,
and the messages pushed to it that it is handing back, only), and give each fanout copy its own id (``publish``
returns the one id they share).

Retention: every queue carries ``x-message-ttl = message_retention_seconds``. A message still waiting when it
expires is dead-lettered with reason ``expired`` (the dead-letter strategy is at least once), so nothing is
dropped silently. The TTL keeps counting across requeues (as SQS's retention does), but a retry with back-off
is a new message with a fresh TTL; dead letters stay until redriven.

Consumer timeout: RabbitMQ closes the channel of a delivery left unacknowledged longer than ``consumer_timeout``
(30 min by default), and jobs can be longer. Every queue is declared with ``x-consumer-timeout`` =
:data:`CONSUMER_TIMEOUT_SECONDS`, which servers from 3.12 apply. Older ones ignore it (the queue's arguments
stay the same after an upgrade): set ``consumer_timeout`` in ``rabbitmq.conf`` above the longest job there.

Threads: pika's ``BlockingConnection`` is not thread-safe and answers server heartbeats only inside its own calls.
Each broker owns one I/O thread (``rabbitmq_io.AmqpConnection``) that holds the connection, runs every operation
submitted by other threads, returns expired leases and keeps the connection alive while workers run FFmpeg.
After a lost connection it reconnects; the leases held then are gone (RabbitMQ has requeued their messages) and
refused as stale.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

import pika
import pika.exceptions

from videoconverter.brokers.base import Capabilities, ClientPublishedTopics, DeadLetter, Delivery, QueueDepth
from videoconverter.brokers.rabbitmq_io import OPERATION_TIMEOUT_SECONDS, AmqpConnection
from videoconverter.brokers.rabbitmq_messages import (
    DEAD_LETTER_QUEUE_SUFFIX,
    DEAD_LETTERED_AT_HEADER,
    DELAY_LADDER_SECONDS,
    OWN_HEADER_PREFIX,
    PRIOR_DELIVERIES_HEADER,
    REASON_HEADER,
    SOURCE_QUEUE_HEADER,
    dead_letter_from,
    dead_letter_id,
    delay_queue_arguments,
    delay_queue_name,
    delay_rung,
    redriven_headers,
)
from videoconverter.brokers.rabbitmq_receive import Lease, RabbitMQReceiving
from videoconverter.brokers.rabbitmq_topology import RabbitMQTopology
from videoconverter.errors import (
    BrokerUnavailableError,
    ConfigError,
    QueueNotFoundError,
    StaleReceiptError,
)
from videoconverter.logs import redact

log = logging.getLogger(__name__)
if logging.getLogger("pika").level == logging.NOTSET:  # it logs every channel opened or closed at INFO
    logging.getLogger("pika").setLevel(logging.WARNING)

_NOT_FOUND = 404


class RabbitMQBroker(RabbitMQReceiving, RabbitMQTopology, ClientPublishedTopics):
    """URL: ``amqp://USER:PASSWORD@HOST:PORT/VHOST`` (``%2F`` is the default vhost ``/``); ``amqps://`` for TLS."""

    capabilities = Capabilities()

    def __init__(self, url: str) -> None:
        self.display_url = redact(url)
        try:
            parameters = pika.URLParameters(url)
        except Exception as exc:  # pika raises ValueError and friends for a malformed URL
            raise ConfigError(f"broker: {self.display_url} is not a valid AMQP URL: {exc}") from exc
        if parameters.blocked_connection_timeout is None:
            parameters.blocked_connection_timeout = OPERATION_TIMEOUT_SECONDS
        self._leases: dict[str, Lease] = {}
        self._dead_letter_queues: dict[str, str] = {}
        self._delay_queues: set[str] = set()  # known to exist
        self._init_receiving()
        self._io = AmqpConnection(parameters, self.display_url, on_tick=self._tick, on_lost=self._on_lost)

    @classmethod
    def from_url(cls, url: str) -> RabbitMQBroker:
        return cls(url)

    def server_version(self) -> str:
        """The RabbitMQ version the connection reports, e.g. ``3.10.8``."""
        return self._io.call(self._server_version)

    def _server_version(self) -> str:
        version = self._io.connection._impl.server_properties.get("version", "")
        return version.decode() if isinstance(version, bytes) else str(version)

    # --- sending ----------------------------------------------------------------------------------------

    def publish(self, topic: str, body: str) -> list[str]:
        properties = self._properties()
        self._io.call(lambda: self._publish(topic, "", body.encode(), properties, f"topic {topic!r}"))
        return [properties.message_id]

    def send(self, queue: str, body: str) -> str:
        properties = self._properties()
        self._io.call(lambda: self._publish("", queue, body.encode(), properties, f"queue {queue!r}"))
        return str(properties.message_id)

    def _copy_properties(self, properties: Any, headers: dict[str, Any]) -> Any:
        """A copy's properties: the original's id and time, with ``headers``."""
        return self._properties(properties.message_id, headers, properties.timestamp)

    @staticmethod
    def _properties(
        message_id: str | None = None, headers: dict[str, Any] | None = None, sent_at: float | None = None
    ) -> Any:
        return pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id or str(uuid.uuid4()),
            timestamp=int(sent_at if sent_at is not None else time.time()),
            content_type="text/plain; charset=utf-8",
            headers=headers or {},
        )

    def _publish(self, exchange: str, routing_key: str, body: bytes, properties: Any, what: str) -> None:
        """Publish and wait for the confirm (I/O thread). Nothing routed or a missing exchange: QueueNotFound."""
        channel = self._io.control_channel()
        try:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except pika.exceptions.UnroutableError as exc:
            detail = "has no subscribed queue: the message would be lost" if exchange else "does not exist"
            raise QueueNotFoundError(f"{what} {detail}: run `videoconverter provision` first") from exc
        except pika.exceptions.NackError as exc:
            raise BrokerUnavailableError(f"RabbitMQ refused a message for {what} (queue full or failing)") from exc
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == _NOT_FOUND:
                raise QueueNotFoundError(f"{what} does not exist: run `videoconverter provision` first") from exc
            raise

    # --- settling ---------------------------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        def ack() -> None:
            lease = self._take_lease(delivery)
            lease.channel.basic_ack(lease.delivery_tag)

        self._io.call(ack)

    def extend(self, delivery: Delivery, visibility_timeout_seconds: int) -> None:
        def extend() -> None:
            lease = self._lease(delivery)
            lease.deadline = time.monotonic() + visibility_timeout_seconds

        self._io.call(extend)

    def release(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        def release() -> None:
            lease = self._take_lease(delivery)
            if delay_seconds <= 0:
                lease.channel.basic_reject(lease.delivery_tag, requeue=True)
                return
            headers = self._own_headers(lease.properties.headers)
            headers[PRIOR_DELIVERIES_HEADER] = lease.attempt
            copy = self._properties(lease.properties.message_id, headers, lease.properties.timestamp)
            rung = delay_rung(delay_seconds)
            name = delay_queue_name(lease.queue, rung)
            if name not in self._delay_queues:  # declared at provision; again here for older topologies
                try:
                    self._declare_queue(name, delay_queue_arguments(lease.queue, rung))
                except BaseException:
                    self._leases[delivery.receipt] = lease
                    raise
                self._delay_queues.add(name)
            self._publish_then_ack(delivery.receipt, lease, name, copy, f"delay queue {name!r}")

        self._io.call(release)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        def dead_letter() -> None:
            lease = self._take_lease(delivery)
            headers = self._own_headers(lease.properties.headers)
            headers.pop(PRIOR_DELIVERIES_HEADER, None)
            headers.update(
                {REASON_HEADER: reason, SOURCE_QUEUE_HEADER: lease.queue, DEAD_LETTERED_AT_HEADER: str(time.time())}
            )
            copy = self._properties(lease.properties.message_id, headers, lease.properties.timestamp)
            target = self._dead_letter_queue(lease.queue)
            self._publish_then_ack(delivery.receipt, lease, target, copy, f"dead-letter queue {target!r}")

        self._io.call(dead_letter)

    def _publish_then_ack(self, receipt: str, lease: Lease, queue: str, properties: Any, what: str) -> None:
        """Move a leased message: the confirmed copy first, then the ack (at least once, never lost)."""
        try:
            self._publish("", queue, lease.body, properties, what)
        except BaseException:
            self._leases[receipt] = lease  # still ours: the caller may retry, or the lease runs out
            raise
        lease.channel.basic_ack(lease.delivery_tag)

    def _lease(self, delivery: Delivery) -> Lease:
        """The live lease of ``delivery`` (I/O thread); an expired one is returned to the queue now."""
        lease = self._leases.get(delivery.receipt)
        if lease is not None and lease.deadline <= time.monotonic():
            self._expire(delivery.receipt, lease)
            lease = None
        if lease is None or lease.channel is not self._io.work or not lease.channel.is_open:
            self._leases.pop(delivery.receipt, None)
            raise StaleReceiptError(
                f"message {delivery.message_id} on {delivery.queue}: its lease expired (or the connection was "
                "lost) and it went back to the queue; this worker no longer owns it"
            )
        return lease

    def _take_lease(self, delivery: Delivery) -> Lease:
        lease = self._lease(delivery)
        del self._leases[delivery.receipt]
        return lease

    def _expire(self, receipt: str, lease: Lease) -> None:
        self._leases.pop(receipt, None)
        if lease.channel is self._io.work and lease.channel.is_open:
            lease.channel.basic_reject(lease.delivery_tag, requeue=True)
            log.info("lease of a message on %s expired: returned to the queue", lease.queue)

    def _tick(self) -> float | None:
        """The I/O thread's round (see ``rabbitmq_io``): expired leases back, arrivals to their receives; returns the
        seconds until the next lease ends or parked message is due (None: nothing is)."""
        now = time.monotonic()
        for receipt, lease in list(self._leases.items()):
            if lease.deadline <= now:
                self._expire(receipt, lease)
        parked_due = self._receiving_tick()
        lease_due = min((lease.deadline - now for lease in self._leases.values()), default=None)
        return min((due for due in (parked_due, lease_due) if due is not None), default=None)

    def _on_lost(self) -> None:
        """Leases and consumers die with the connection or the work channel (RabbitMQ requeues their messages)."""
        self._leases.clear()
        self._forget_consumers()

    @staticmethod
    def _own_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
        """The headers a copy keeps: the application's and ours, not the broker's (x-death, x-delivery-count)."""
        return {k: v for k, v in (headers or {}).items() if not k.startswith("x-") or k.startswith(OWN_HEADER_PREFIX)}

    # --- dead letters and inspection --------------------------------------------------------------------

    def _dead_letter_queue(self, queue: str) -> str:
        return self._dead_letter_queues.get(queue) or f"{queue}{DEAD_LETTER_QUEUE_SUFFIX}"

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        def peek() -> list[DeadLetter]:
            target = self._dead_letter_queue(queue)
            self._count(target)
            channel = self._io.connection.channel()
            letters = []
            try:
                for _ in range(limit):
                    method, properties, body = channel.basic_get(target, auto_ack=False)
                    if method is None:
                        break
                    letters.append(dead_letter_from(queue, properties, body))
            finally:
                channel.close()  # hands every message back, in order
            return sorted(letters, key=lambda d: d.dead_lettered_at)

        return self._io.call(peek)

    def redrive(self, queue: str, message_id: str | None = None) -> int:
        """Each match is published to ``queue`` (confirmed), then acked; every other message taken on the way stays
        unacknowledged and goes back to the dead-letter queue, in order and unchanged, when the channel closes (or
        when the connection dies): at least once, nothing lost."""

        def redrive() -> int:
            source = self._dead_letter_queue(queue)
            self._count(source)
            self._count(queue)
            channel = self._io.connection.channel()
            moved = 0
            try:
                while True:
                    method, properties, body = channel.basic_get(source, auto_ack=False)
                    if method is None:
                        return moved
                    if message_id is not None and dead_letter_id(properties) != message_id:
                        continue  # left unacknowledged: handed back below
                    headers = redriven_headers(self._own_headers(properties.headers))
                    self._publish("", queue, body, self._properties(properties.message_id, headers), f"queue {queue!r}")
                    channel.basic_ack(method.delivery_tag)
                    moved += 1
            finally:
                channel.close()  # hands back every message not acked, in order

        return self._io.call(redrive)

    def depth(self, queue: str) -> QueueDepth:
        def depth() -> QueueDepth:
            visible = self._count(queue)
            delayed = 0
            for rung in DELAY_LADDER_SECONDS:
                with contextlib.suppress(QueueNotFoundError):  # declared by an older version
                    delayed += self._count(delay_queue_name(queue, rung))
            in_flight = sum(1 for lease in self._leases.values() if lease.queue == queue) + self._parked_count(queue)
            return QueueDepth(visible, in_flight, delayed)

        return self._io.call(depth)

    def _count(self, queue: str) -> int:
        """Messages ready in ``queue`` (I/O thread). Raises ``QueueNotFoundError``."""
        try:
            result = self._io.probe_channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == _NOT_FOUND:
                missing = f"queue {queue!r} does not exist: run `videoconverter provision` first"
                raise QueueNotFoundError(missing) from exc
            raise
        return int(result.method.message_count)

    def close(self) -> None:
        if not self._io.stopping.is_set():
            with contextlib.suppress(Exception):  # connection lost: the server requeued what was parked
                self._io.call(self._hand_back_everything)
        self._io.close()
