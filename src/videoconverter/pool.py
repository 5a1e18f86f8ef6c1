"""A worker process that serves several renditions' queues: whatever is waiting, fairly, one message at a time.

With one worker per rendition, the 720p worker idles while the 1080p encode of a batch's last upload runs alone.
A pool worker takes the next message from whichever of its queues has one (``Broker.receive_any``), so a pool of
them, one per core (what ``videoconverter up`` runs by default), keeps every core busy until the batch is done.
Each delivery goes to the :class:`~videoconverter.worker.Worker` of its queue's rendition, which handles and
settles it as a dedicated worker does (same leases, retries, stop and drain); ``videoconverter worker RENDITION``
is still the dedicated worker.

Fairness is the broker's (``receive_any`` never starves a queue with waiting messages), and the pool adds its own:
the queue it was just served from is asked last next time, so even a broker that favours the first queue named
alternates between queues that both have work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from videoconverter.brokers.base import Broker, Delivery
from videoconverter.consumer import IDLE_CONFIRM_SECONDS, STOP_CHECK_SECONDS, released, settle
from videoconverter.dead_letters import Sweeper
from videoconverter.pipeline import Services
from videoconverter.renditions import Rendition
from videoconverter.worker import Worker

log = logging.getLogger(__name__)


def next_order(order: Sequence[str], served: str) -> tuple[str, ...]:
    """The queues in the order to ask next: ``served`` last, the others keeping their order."""
    return (*(queue for queue in order if queue != served), served)


@dataclass
class QueuePool:
    """Receives one message at a time from whichever of ``handlers``' queues has one, and hands it to the handler
    of its queue, which settles it; stops as a :class:`~videoconverter.consumer.Consumer` does."""

    broker: Broker
    handlers: Mapping[str, Callable[[Delivery], object]]  # queue name -> its handler
    visibility_timeout_seconds: int = 30
    wait_seconds: float = STOP_CHECK_SECONDS  # the longest one receive waits (capped at STOP_CHECK_SECONDS)
    stop: threading.Event = field(default_factory=threading.Event)  # set: stop now
    drain: threading.Event = field(default_factory=threading.Event)  # set: stop after the current message
    between: Callable[[], object] | None = None  # called after every receive (as Consumer.between)

    def __post_init__(self) -> None:
        if not self.handlers:
            raise ValueError("a pool needs at least one queue")
        self.order: tuple[str, ...] = tuple(self.handlers)  # the order of the next receive's queues

    def run(self, max_messages: int | None = None, exit_when_idle: bool = False) -> int:
        """Receive and handle until ``stop`` or ``drain`` is set, ``max_messages`` were handled, or (with
        ``exit_when_idle``) every queue is empty; return how many messages were handled."""
        handled = 0
        while not self.stop.is_set() and not self.drain.is_set() and (max_messages is None or handled < max_messages):
            idle = exit_when_idle and self._queued() == 0
            got = self.run_once(IDLE_CONFIRM_SECONDS if idle else min(self.wait_seconds, STOP_CHECK_SECONDS))
            handled += got
            if self.between is not None:
                self.between()
            if not got and idle:  # confirmed by a short receive: a message leased elsewhere may still come
                break
        return handled

    def run_once(self, wait_seconds: float) -> int:
        """Receive one message from any of the queues, waiting up to ``wait_seconds``; handle it; return 0 or 1."""
        deliveries = self.broker.receive_any(
            self.order,
            max_messages=1,  # one job at a time per process: a second would wait for the first, leased
            wait_seconds=wait_seconds,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
        )
        for delivery in deliveries:
            self.handle(delivery)
        return len(deliveries)

    def handle(self, delivery: Delivery) -> object:
        """Hand ``delivery`` to its queue's handler; one from a queue the pool does not serve goes back at once."""
        handler = self.handlers.get(delivery.queue)
        if handler is None:  # a broker's mistake: leave the message to a worker that serves its queue
            log.error("message %s came from %s, which this pool does not serve", delivery.message_id, delivery.queue)
            return settle(self.broker, delivery, released(0.0))
        self.order = next_order(self.order, delivery.queue)
        return handler(delivery)

    def _queued(self) -> int:
        return sum(self.broker.depth(queue).total for queue in self.handlers)


class PoolWorker:
    """The pool worker of ``renditions``: one :class:`QueuePool` over their queues, each delivery handled by its
    rendition's Worker (all sharing ``stop`` and ``drain``)."""

    def __init__(
        self,
        services: Services,
        renditions: Sequence[Rendition],
        stop: threading.Event | None = None,
        drain: threading.Event | None = None,
        ffmpeg: str | None = None,
    ) -> None:
        self.stop = stop or threading.Event()  # set: hand the current job back and stop
        self.drain = drain or threading.Event()  # set: stop after the current job
        self.workers = [Worker(services, r, self.stop, ffmpeg=ffmpeg, drain=self.drain) for r in renditions]
        config = services.config
        self.loop = QueuePool(
            services.broker,
            {worker.rendition.queue: worker.handle for worker in self.workers},
            visibility_timeout_seconds=config.visibility_timeout_seconds,
            wait_seconds=min(config.receive_wait_seconds, STOP_CHECK_SECONDS),
            stop=self.stop,
            drain=self.drain,
            between=Sweeper(services, renditions, config.visibility_timeout_seconds),
        )

    def run(self, max_messages: int | None = None, exit_when_idle: bool = False) -> int:
        """Handle messages until stopped (see :meth:`QueuePool.run`); return how many were handled."""
        names = ", ".join(worker.rendition.name for worker in self.workers)
        log.info("pool worker for %s listening on %s", names, ", ".join(self.loop.handlers))
        try:
            handled = self.loop.run(max_messages, exit_when_idle)
        finally:
            for worker in self.workers:  # one state folder, this process's: left only if a job is in it
                worker.workspace.remove_if_empty()
        log.info("pool worker for %s stopped after %d messages", names, handled)
        return handled
