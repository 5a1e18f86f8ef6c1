"""Consuming a queue: the receive loop, settling a delivery, and the back-off between attempts.

The rendition worker, the webhook deliverer and ``videoconverter events`` all consume a queue the same way: a
:class:`Consumer` receives, hands each delivery to its handler, and stops when told to (``stop``: at once;
``drain``: after the current message), after ``max_messages``, or when the queue is idle. A handler says what
became of a message with a :class:`Settlement`, and :func:`settle` carries it out on the broker, tolerating a
receipt that went stale meanwhile (the message was delivered again, and is another consumer's now).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from videoconverter.brokers.base import Broker, Delivery
from videoconverter.errors import StaleReceiptError

log = logging.getLogger(__name__)
STOP_CHECK_SECONDS = 1.0  # how long one receive waits before the stop and drain flags are looked at again
IDLE_CONFIRM_SECONDS = 0.3  # with exit_when_idle: how long an empty queue is watched before leaving
MAX_BACKOFF_EXPONENT = 64  # so that a very high attempt number cannot overflow a float


def backoff_seconds(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """The wait before the next delivery after delivery ``attempt`` (1-based) failed: ``base_seconds`` doubled
    with every attempt after the first, at most ``max_seconds``."""
    return float(min(max_seconds, base_seconds * 2 ** min(max(attempt - 1, 0), MAX_BACKOFF_EXPONENT)))


class Settled(Enum):
    """What became of a delivery."""

    ACKED = "acked"  # deleted from the queue: handled, or nothing to do
    RELEASED = "released"  # handed back; visible again after the settlement's delay
    DEAD_LETTERED = "dead-lettered"  # moved to the queue's dead-letter queue with the settlement's reason
    ABANDONED = "abandoned"  # left alone: the lease was lost, so the message is another consumer's now


@dataclass(frozen=True)
class Settlement:
    """A handler's verdict on one delivery (build it with :data:`ACKED`, :func:`released`, :func:`dead_lettered`
    or :data:`ABANDONED`)."""

    how: Settled
    delay_seconds: float = 0.0  # RELEASED: when the message becomes visible again
    reason: str = ""  # DEAD_LETTERED: kept with the dead letter

    @property
    def finished(self) -> bool:
        """Whether the message has left its queue for good (acked or dead-lettered): nothing delivers it again."""
        return self.how in (Settled.ACKED, Settled.DEAD_LETTERED)


ACKED = Settlement(Settled.ACKED)
ABANDONED = Settlement(Settled.ABANDONED)


def released(delay_seconds: float = 0.0) -> Settlement:
    return Settlement(Settled.RELEASED, delay_seconds=delay_seconds)


def dead_lettered(reason: str) -> Settlement:
    return Settlement(Settled.DEAD_LETTERED, reason=reason)


def settle(broker: Broker, delivery: Delivery, settlement: Settlement) -> Settlement:
    """Carry out ``settlement`` on ``broker``; return what was done.

    That is ``settlement`` itself, or :data:`ABANDONED` when the broker refused the receipt
    (``StaleReceiptError``: the message was delivered again meanwhile), which is logged and otherwise ignored,
    since the consumer holding it now settles it. Other broker errors propagate.
    """
    try:
        if settlement.how is Settled.ACKED:
            broker.ack(delivery)
        elif settlement.how is Settled.RELEASED:
            broker.release(delivery, settlement.delay_seconds)
        elif settlement.how is Settled.DEAD_LETTERED:
            broker.dead_letter(delivery, settlement.reason)
    except StaleReceiptError:
        log.warning(
            "message %s was delivered to another consumer meanwhile; leaving it to that one",
            delivery.message_id,
            extra={"queue": delivery.queue, "message_id": delivery.message_id},
        )
        return ABANDONED
    return settlement


@dataclass
class Consumer:
    """Receives from ``queue`` and hands every delivery to ``handle``, which settles it (or has it settled)."""

    broker: Broker
    queue: str
    handle: Callable[[Delivery], object]
    visibility_timeout_seconds: int = 30
    wait_seconds: float = STOP_CHECK_SECONDS  # the longest one receive waits (capped at STOP_CHECK_SECONDS)
    batch_size: int = 1  # messages one receive asks for
    # How exit_when_idle judges "idle": by the queue's depth first, confirmed by a short receive (a message
    # leased elsewhere, or released a moment ago and not counted yet, may still come), or by one empty short
    # receive alone.
    idle_by_depth: bool = True
    stop: threading.Event = field(default_factory=threading.Event)  # set: stop now
    drain: threading.Event = field(default_factory=threading.Event)  # set: stop after the current message
    # Called after every receive, busy or idle (so at least every STOP_CHECK_SECONDS): the worker's look for jobs
    # the broker dead-lettered (dead_letters.Sweeper), which keeps its own pace.
    between: Callable[[], object] | None = None

    def run(self, max_messages: int | None = None, exit_when_idle: bool = False) -> int:
        """Receive and handle until ``stop`` or ``drain`` is set, ``max_messages`` were handled, or (with
        ``exit_when_idle``) the queue is idle; return how many messages were handled. ``between`` runs after
        every receive."""
        handled = 0
        while not self.stop.is_set() and not self.drain.is_set() and (max_messages is None or handled < max_messages):
            idle = exit_when_idle and (not self.idle_by_depth or self.broker.depth(self.queue).total == 0)
            wait = IDLE_CONFIRM_SECONDS if idle else min(self.wait_seconds, STOP_CHECK_SECONDS)
            got = self.run_once(wait, None if max_messages is None else max_messages - handled)
            handled += got
            if self.between is not None:
                self.between()
            if not got and idle:
                break
        return handled

    def run_once(self, wait_seconds: float, max_messages: int | None = None) -> int:
        """Receive once (up to ``batch_size`` messages, or ``max_messages`` if fewer), waiting up to
        ``wait_seconds`` for the first; handle each; return how many there were."""
        deliveries = self.broker.receive(
            self.queue,
            max_messages=self.batch_size if max_messages is None else max(1, min(self.batch_size, max_messages)),
            wait_seconds=wait_seconds,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
        )
        for delivery in deliveries:
            self.handle(delivery)
        return len(deliveries)
