"""The broker interface: what SQS, RabbitMQ and SQLite have in common, and no more.

Delivery is at least once. A received message is leased for a visibility timeout; unless it is acked,
released or dead-lettered before the lease ends, it becomes visible again and is delivered anew with a higher
attempt count. The worker decides between retry and dead-letter; the backend's own receive limit
(``QueueSpec.max_receive_count``) is the safety net for workers that die before deciding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from videoconverter.errors import ConfigError


@dataclass(frozen=True)
class QueueSpec:
    name: str
    dead_letter_queue: str
    message_retention_seconds: int
    max_receive_count: int
    # The lease a receive gets when it names none (SQS's queue attribute; a Lambda trigger relies on it).
    visibility_timeout_seconds: int = 30


@dataclass(frozen=True)
class Topology:
    """A topic and the queues subscribed to it; every queue has its own dead-letter queue."""

    topic: str
    queues: tuple[QueueSpec, ...]


@dataclass(frozen=True)
class Delivery:
    queue: str
    message_id: str
    body: str
    receipt: str  # proves the lease; refused once the message has been delivered again
    attempt: int  # 1 on the first delivery
    sent_at: float  # seconds since the epoch


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    reason: str
    source_queue: str
    dead_lettered_at: float


@dataclass(frozen=True)
class QueueDepth:
    """How many messages a queue holds, by state, as far as the backend can know: AMQP cannot count another
    client's unacknowledged messages, so there ``in_flight`` counts this broker instance's leases only."""

    visible: int  # ready to be received now
    in_flight: int  # leased to a worker
    delayed: int  # released with a delay, not yet visible

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True)
class Capabilities:
    """What production code needs to know of a backend beyond the protocol. (Differences only tests care about
    live on the contract test classes, ``tests/contract/test_broker.py``.)"""

    # What a topic is known by to the cloud services that may publish to it themselves, as an object store's
    # ``notification_targets`` names it (an SNS topic's ARN, which S3 bucket notifications target); "" where
    # only this broker's clients can publish (then the process that writes an upload publishes its event).
    topic_address: str = ""
    # Whether a lease outlives the client that holds it: the messages of a consumer that dies without settling
    # them stay leased until their visibility timeout ends, unless any client hands them back early with
    # ``release(delivery, 0)`` (a Delivery rebuilt from queue, message_id, receipt, attempt and sent_at; the body
    # is not read), as `up`'s supervisor does for a worker it saw die (``videoconverter.recovery``). False where
    # the backend ends a dead client's leases itself and a receipt means nothing to another client (AMQP
    # requeues the unacknowledged messages of a closed connection at once).
    leases_outlive_holder: bool = False


class Broker(Protocol):
    """A topic fanning out to queues (see the module docstring); :class:`BrokerBackend` adds how one is opened."""

    capabilities: Capabilities

    def declare(self, topology: Topology) -> None:
        """Create the topic, the queues, their dead-letter queues and the subscriptions. Idempotent."""

    def publish(self, topic: str, body: str) -> list[str]:
        """Put one copy of ``body`` in every queue subscribed to ``topic``, all or none; return message ids.

        The ids are one per copy, or the one id every copy shares where the backend copies one message (a
        RabbitMQ fanout exchange; SNS, where our id travels as an attribute); ids stay unique within a queue.

        Raises ``QueueNotFoundError`` when the topic does not exist or has no subscribers (nothing would
        receive the message, and a silent loss is worse than an error).
        """

    def send(self, queue: str, body: str) -> str:
        """Put ``body`` in one queue; return its message id. Raises ``QueueNotFoundError``."""

    def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 0.0, visibility_timeout_seconds: int = 30
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` visible messages, waiting up to ``wait_seconds`` for the first.

        Returns an empty list when the wait ends with nothing to receive. Waiting does not busy-spin.
        A message already received ``max_receive_count`` times is moved to the dead-letter queue instead.
        Raises ``QueueNotFoundError`` when the queue does not exist.
        """

    def receive_any(
        self,
        queues: Sequence[str],
        *,
        max_messages: int = 1,
        wait_seconds: float = 0.0,
        visibility_timeout_seconds: int = 30,
    ) -> list[Delivery]:
        """Like :meth:`receive`, from whichever of ``queues`` has visible messages, waiting up to ``wait_seconds`` for
        the first on any of them. Fair: a queue with waiting messages is never starved by the others (the oldest
        sent message first, or rotation). Each Delivery's ``queue`` says which queue it came from.

        Raises ``QueueNotFoundError`` when one of the queues does not exist, ValueError when ``queues`` is empty.
        """

    def ack(self, delivery: Delivery) -> None:
        """Delete the message. Raises ``StaleReceiptError`` if it was delivered again since."""

    def extend(self, delivery: Delivery, visibility_timeout_seconds: int) -> None:
        """Heartbeat: keep the lease for another ``visibility_timeout_seconds`` from now.

        Raises ``StaleReceiptError`` if the message was delivered again since.
        """

    def release(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        """Give the message back; it becomes visible after ``delay_seconds``. Raises ``StaleReceiptError``."""

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead-letter queue, keeping ``reason``. Raises ``StaleReceiptError``."""

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The messages in ``queue``'s dead-letter queue, oldest first, without removing them."""

    def redrive(self, queue: str, message_id: str | None = None) -> int:
        """Move every message in ``queue``'s dead-letter queue back to ``queue`` with a fresh attempt count, or
        only the one whose id is ``message_id`` (the id ``dead_letters`` reports); the others stay where they
        are, with their reasons.

        Returns how many were moved (0 when there is no such message). Raises ``QueueNotFoundError``.
        """

    def depth(self, queue: str) -> QueueDepth:
        """How many messages ``queue`` holds, by state (exact only as far as the backend can know: see
        :class:`QueueDepth`).

        Raises ``QueueNotFoundError``.
        """

    def allow_bucket(self, topic: str, bucket: str) -> str:
        """Let the object store's ``bucket`` (and no other) publish its own events to ``topic``; return the topic's
        address, of the kind ``capabilities.topic_address`` names, for the store's ``notify_topic``. Idempotent.

        Raises ConfigError where ``capabilities.topic_address`` is empty: no service but this broker's clients can
        publish to its topics. Raises ``QueueNotFoundError`` when the topic does not exist.
        """

    def log_deliveries(self, topics: Sequence[str], role: str, success_sample_percent: int) -> None:
        """Have the broker's service log its deliveries from ``topics`` (every failure, ``success_sample_percent``
        of the successes), acting as ``role``; nothing where ``role`` is empty or the broker keeps no such log.
        Idempotent."""

    def close(self) -> None:
        """Release connections. The broker must not be used afterwards."""


class BrokerBackend(Broker, Protocol):
    """A broker that a URL opens: every class in :data:`videoconverter.brokers.BACKENDS`."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open the broker ``url`` names (its scheme chose this class); connect where the backend connects.

        Raises ConfigError when the URL is malformed, BrokerUnavailableError when the server cannot be reached.
        """

    @classmethod
    def describe(cls, topology: Topology) -> list[str]:
        """What :meth:`declare` ensures for ``topology``, in words, without connecting (``provision --dry-run``)."""

    @classmethod
    def describe_delivery_logging(cls, topics: Sequence[str], role: str, success_sample_percent: int) -> list[str]:
        """What :meth:`log_deliveries` ensures, in words, without connecting; empty where the broker keeps no
        delivery log."""


def describe_topology(
    topology: Topology, retention_seconds: Callable[[QueueSpec], int] = lambda spec: spec.message_retention_seconds
) -> list[str]:
    """The words of a broker's ``describe``: the topic, then each queue with how long it keeps messages (as
    ``retention_seconds`` says for this backend) and its dead-letter queue."""
    steps = [f"topic {topology.topic}"]
    for spec in topology.queues:
        steps.append(
            f"queue {spec.name} (subscribed to {topology.topic}; keeps messages {retention_seconds(spec)} s; "
            f"after {spec.max_receive_count} receives -> {spec.dead_letter_queue})"
        )
        steps.append(f"queue {spec.dead_letter_queue}")
    return steps


class ClientPublishedTopics:
    """What the brokers whose topics take messages from their own clients only (SQLite, RabbitMQ) share: the common
    words of :func:`describe_topology`, and an ``allow_bucket`` that refuses."""

    @classmethod
    def describe(cls, topology: Topology) -> list[str]:
        return describe_topology(topology)

    @classmethod
    def describe_delivery_logging(cls, topics: Sequence[str], role: str, success_sample_percent: int) -> list[str]:
        return []

    def log_deliveries(self, topics: Sequence[str], role: str, success_sample_percent: int) -> None:
        """Nothing: every delivery is the broker's own, and its job's log lines tell what became of it."""

    def allow_bucket(self, topic: str, bucket: str) -> str:
        raise ConfigError(
            f"{type(self).__name__}'s topics take messages from its own clients only: bucket {bucket} cannot "
            f"publish to {topic} by itself"
        )
