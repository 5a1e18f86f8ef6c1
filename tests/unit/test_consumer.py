"""The one consumer loop, settle helper and back-off (on the embedded SQLite broker)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from videoconverter.brokers.base import Delivery, QueueSpec, Topology
from videoconverter.brokers.sqlite import SQLiteBroker
from videoconverter.consumer import (
    ABANDONED,
    ACKED,
    Consumer,
    Settled,
    Settlement,
    backoff_seconds,
    dead_lettered,
    released,
    settle,
)
from videoconverter.notifications.settings import NotificationSettings


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SQLiteBroker]:
    opened = SQLiteBroker(tmp_path / "broker.db")
    opened.declare(Topology("t", (QueueSpec("q", "q-dlq", 3600, 5),)))
    yield opened
    opened.close()


def test_backoff_doubles_from_the_base_up_to_the_maximum() -> None:
    assert [backoff_seconds(n, 5.0, 900.0) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert backoff_seconds(0, 5.0, 900.0) == 5.0  # no attempt before the first
    assert backoff_seconds(9, 5.0, 900.0) == backoff_seconds(10**6, 5.0, 900.0) == 900.0  # no float overflow
    assert backoff_seconds(3, 0.0, 900.0) == 0.0
    # The webhook deliverer's back-off is the same function, with its own base.
    assert NotificationSettings(webhook_retry_base_delay_seconds=5).retry_delay_seconds(3) == 20.0


def test_settle_carries_out_each_settlement(broker: SQLiteBroker) -> None:
    for _ in range(3):
        broker.send("q", "m")
    first, second, third = broker.receive("q", max_messages=3, visibility_timeout_seconds=60)
    assert settle(broker, first, ACKED) == ACKED
    assert settle(broker, second, released(0.0)).how is Settled.RELEASED
    assert settle(broker, third, dead_lettered("broken")) == Settlement(Settled.DEAD_LETTERED, reason="broken")
    assert [letter.reason for letter in broker.dead_letters("q")] == ["broken"]
    (again,) = broker.receive("q", wait_seconds=1)
    assert again.attempt == 2  # the released one
    assert settle(broker, again, ABANDONED) == ABANDONED  # left alone: still leased
    assert broker.depth("q").in_flight == 1
    assert [s.finished for s in (ACKED, dead_lettered("x"), released(1.0), ABANDONED)] == [True, True, False, False]


def test_a_stale_receipt_is_logged_and_reported_as_abandoned(
    broker: SQLiteBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker.send("q", "m")
    (old,) = broker.receive("q", visibility_timeout_seconds=0)  # the lease ends at once
    (new,) = broker.receive("q", wait_seconds=1, visibility_timeout_seconds=60)
    assert settle(broker, old, ACKED) == ABANDONED
    assert "another consumer" in caplog.text
    assert settle(broker, new, ACKED) == ACKED
    assert broker.depth("q").total == 0


def test_the_loop_stops_after_max_messages_or_when_idle(broker: SQLiteBroker) -> None:
    for n in range(5):
        broker.send("q", f"m{n}")
    seen: list[str] = []

    def handle(delivery: Delivery) -> Settlement:
        seen.append(delivery.body)
        return settle(broker, delivery, ACKED)

    consumer = Consumer(broker, "q", handle, batch_size=10)
    assert consumer.run(max_messages=2) == 2  # a batch never takes more than is left of max_messages
    assert consumer.run(exit_when_idle=True) == 3
    assert seen == [f"m{n}" for n in range(5)]
    assert consumer.run(exit_when_idle=True) == 0  # an empty queue: leaves after a short receive


def test_an_idle_queue_counts_a_lease_held_elsewhere_unless_told_otherwise(
    broker: SQLiteBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.send("q", "leased")
    (held,) = broker.receive("q", visibility_timeout_seconds=60)  # another consumer's, for now
    receives = []
    receive = broker.receive
    monkeypatch.setattr(broker, "receive", lambda *a, **k: receives.append(1) or receive(*a, **k))
    handled: list[str] = []

    def handle(delivery: Delivery) -> Settlement:
        handled.append(delivery.body)
        return settle(broker, delivery, ACKED)

    thread = threading.Thread(target=Consumer(broker, "q", handle).run, kwargs={"exit_when_idle": True})
    thread.start()
    wait_until(lambda: len(receives) >= 2, 30, message="the consumer to wait on for the leased message")
    broker.release(held)  # it comes back, and the consumer that waited for it takes it
    thread.join(30)
    assert not thread.is_alive() and handled == ["leased"]

    broker.send("q", "leased again")
    (held,) = receive("q", visibility_timeout_seconds=60)
    assert Consumer(broker, "q", handle, idle_by_depth=False).run(exit_when_idle=True) == 0  # nothing to receive
    assert handled == ["leased"]


def test_stop_and_drain_end_the_loop(broker: SQLiteBroker) -> None:
    broker.send("q", "one")
    broker.send("q", "two")
    drain = threading.Event()

    def handle(delivery: Delivery) -> Settlement:
        drain.set()  # scaling in while this message is handled: it is finished, no other is taken
        return settle(broker, delivery, ACKED)

    assert Consumer(broker, "q", handle, drain=drain).run() == 1
    stop = threading.Event()
    stop.set()
    assert Consumer(broker, "q", handle, stop=stop).run() == 0
    assert broker.depth("q").visible == 1
