"""The pool worker's receive loop: each delivery to its queue's handler, queues taken in turn, one at a time."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest

from videoconverter.brokers.base import Delivery, QueueDepth
from videoconverter.consumer import ACKED, Settlement, settle
from videoconverter.pool import QueuePool, next_order


class NaiveBroker:
    """In memory, with a ``receive_any`` that favours the first queue named that has a message: the pool's own
    turn-taking must make up for it. Records every receive and every settlement."""

    def __init__(self, messages: dict[str, list[str]]) -> None:
        self.queues = {name: deque(bodies) for name, bodies in messages.items()}
        self.receives: list[tuple[tuple[str, ...], int]] = []  # (queues asked, max_messages)
        self.settled: list[tuple[str, str]] = []  # (how, body)
        self._ids = itertools.count(1)

    def receive_any(
        self, queues: Sequence[str], *, max_messages: int = 1, wait_seconds: float = 0.0, **_: Any
    ) -> list[Delivery]:
        self.receives.append((tuple(queues), max_messages))
        for queue in queues:
            if self.queues.get(queue):
                taken = [self.queues[queue].popleft() for _ in range(min(max_messages, len(self.queues[queue])))]
                return [Delivery(queue, str(next(self._ids)), body, f"r-{body}", 1, 0.0) for body in taken]
        return []

    def depth(self, queue: str) -> QueueDepth:
        return QueueDepth(len(self.queues.get(queue, ())), 0, 0)

    def ack(self, delivery: Delivery) -> None:
        self.settled.append(("acked", delivery.body))

    def release(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        self.settled.append(("released", delivery.body))
        self.queues.setdefault(delivery.queue, deque()).append(delivery.body)


def pool_of(broker: NaiveBroker, queues: Sequence[str], **options: Any) -> tuple[QueuePool, list[tuple[str, str]]]:
    """A pool over ``queues`` whose handlers ack and record (queue the handler serves, body)."""
    handled: list[tuple[str, str]] = []

    def handler_of(queue: str) -> Any:
        def handle(delivery: Delivery) -> Settlement:
            handled.append((queue, delivery.body))
            return settle(broker, delivery, ACKED)  # type: ignore[arg-type]

        return handle

    pool = QueuePool(broker, {q: handler_of(q) for q in queues}, wait_seconds=0.0, **options)  # type: ignore[arg-type]
    return pool, handled


def test_the_queue_just_served_is_asked_last() -> None:
    assert next_order(("a", "b", "c"), "a") == ("b", "c", "a")
    assert next_order(("b", "c", "a"), "c") == ("b", "a", "c")
    assert next_order(("a",), "a") == ("a",)


def test_each_delivery_goes_to_the_handler_of_its_queue() -> None:
    broker = NaiveBroker({"q720": ["a-720", "b-720"], "q1080": ["a-1080"]})
    pool, handled = pool_of(broker, ["q720", "q1080"])
    assert pool.run(exit_when_idle=True) == 3
    assert sorted(handled) == [("q1080", "a-1080"), ("q720", "a-720"), ("q720", "b-720")]
    assert sorted(broker.settled) == [("acked", "a-1080"), ("acked", "a-720"), ("acked", "b-720")]


def test_queues_with_work_take_turns_even_where_the_broker_favours_the_first() -> None:
    broker = NaiveBroker({"q720": ["1", "2", "3"], "q1080": ["4", "5", "6"]})
    pool, handled = pool_of(broker, ["q720", "q1080"])
    pool.run(exit_when_idle=True)
    # Without the pool's turn-taking, the naive broker would hand out 1, 2, 3 before 4.
    assert [body for _, body in handled] == ["1", "4", "2", "5", "3", "6"]


def test_a_queue_alone_with_work_is_served_back_to_back() -> None:
    broker = NaiveBroker({"q720": [], "q1080": ["4", "5", "6"]})
    pool, handled = pool_of(broker, ["q720", "q1080"])
    assert pool.run(exit_when_idle=True) == 3
    assert handled == [("q1080", "4"), ("q1080", "5"), ("q1080", "6")]


def test_every_receive_asks_every_queue_for_one_message() -> None:
    broker = NaiveBroker({"q720": ["1", "2"], "q1080": ["3"]})
    pool, _ = pool_of(broker, ["q720", "q1080"])
    pool.run(exit_when_idle=True)
    assert broker.receives and all(sorted(queues) == ["q1080", "q720"] for queues, _ in broker.receives)
    assert {count for _, count in broker.receives} == {1}  # one job at a time: no second message held leased


def test_a_message_from_a_queue_the_pool_does_not_serve_goes_back_unhandled() -> None:
    broker = NaiveBroker({"elsewhere": ["stray"]})
    pool, handled = pool_of(broker, ["q720"])
    pool.order = ("elsewhere", "q720")  # what a broker returning another queue's message looks like
    assert pool.run_once(0.0) == 1
    assert handled == [] and broker.settled == [("released", "stray")]


def test_drain_stops_after_the_current_message_and_stop_before_any() -> None:
    broker = NaiveBroker({"q720": ["1", "2"], "q1080": ["3"]})
    drain = threading.Event()
    pool, handled = pool_of(broker, ["q720", "q1080"], drain=drain)
    first = pool.handlers["q720"]

    def handle_then_drain(delivery: Delivery) -> object:
        drain.set()  # SIGUSR1 arrives while the job runs
        return first(delivery)

    pool.handlers = {**pool.handlers, "q720": handle_then_drain}
    assert pool.run() == 1 and handled == [("q720", "1")]
    stopped = threading.Event()
    stopped.set()
    idle, _ = pool_of(broker, ["q720", "q1080"], stop=stopped)
    assert idle.run() == 0 and broker.depth("q720").visible == 1  # left for another worker


def test_max_messages_and_an_empty_pool() -> None:
    broker = NaiveBroker({"q720": ["1", "2", "3"]})
    pool, handled = pool_of(broker, ["q720"])
    assert pool.run(max_messages=2) == 2 and len(handled) == 2
    with pytest.raises(ValueError):
        QueuePool(broker, {})  # type: ignore[arg-type]
