"""What the RabbitMQ broker adds to the contract: threads, connection heartbeats, server errors, wiring."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from tests.conftest import require_service, wait_until
from tests.contract.conftest import RABBITMQ_URL, ContractNames, delete_rabbitmq_topology, reachable
from videoconverter import brokers
from videoconverter.brokers import rabbitmq_receive
from videoconverter.brokers.base import Delivery, QueueSpec, Topology
from videoconverter.brokers.rabbitmq import RabbitMQBroker
from videoconverter.brokers.rabbitmq_messages import DELAY_LADDER_SECONDS, attempt_of, delay_rung
from videoconverter.errors import BrokerUnavailableError, ConfigError, QueueNotFoundError, StaleReceiptError


@pytest.fixture
def names() -> Iterator[ContractNames]:
    require_service(reachable(RABBITMQ_URL), "no RabbitMQ server")
    names = ContractNames(f"t{uuid.uuid4().hex[:10]}-")
    yield names
    delete_rabbitmq_topology(names.topology())


@pytest.fixture
def broker(names: ContractNames) -> Iterator[RabbitMQBroker]:
    broker = RabbitMQBroker(RABBITMQ_URL)
    broker.declare(names.topology())
    yield broker
    broker.close()


def test_amqp_urls_resolve_to_the_rabbitmq_broker() -> None:
    assert brokers.BACKENDS.backend_class("amqp://u:p@host/%2F") is RabbitMQBroker
    assert brokers.BACKENDS.backend_class("amqps://u:p@host/%2F") is RabbitMQBroker
    assert brokers.BACKENDS.extras["amqp"] == "rabbitmq"


def test_delays_round_up_to_the_ladder_and_attempts_add_up() -> None:
    assert [delay_rung(d) for d in (0.1, 1, 1.5, 30, 899, 5000)] == [1, 1, 2, 40, 900, DELAY_LADDER_SECONDS[-1]]
    assert attempt_of(None) == 1
    assert attempt_of({"x-delivery-count": 2, "x-videoconverter-prior-deliveries": 3}) == 6


def test_a_wrong_password_is_a_config_error_that_does_not_show_it() -> None:
    require_service(reachable(RABBITMQ_URL), "no RabbitMQ server")
    url = RABBITMQ_URL.replace("guest:guest@", "guest:s3cret-pw@")
    assert url != RABBITMQ_URL, "the test URL is expected to use guest:guest"
    with pytest.raises(ConfigError) as info:
        RabbitMQBroker(url)
    assert "s3cret-pw" not in str(info.value) and "password" in str(info.value)


def test_declaring_a_queue_with_other_settings_names_it_and_says_what_to_do(
    broker: RabbitMQBroker, names: ContractNames
) -> None:
    changed = Topology(
        names.topic, tuple(QueueSpec(q.name, q.dead_letter_queue, 3600, 7) for q in names.topology().queues)
    )
    with pytest.raises(ConfigError) as info:
        broker.declare(changed)
    assert names.a in str(info.value) and "provision" in str(info.value)
    broker.send(names.a, "still works")  # the broker recovered its channel
    assert [d.body for d in broker.receive(names.a, wait_seconds=2)] == ["still works"]


def test_a_closed_connection_hands_its_leases_back(broker: RabbitMQBroker, names: ContractNames) -> None:
    broker.send(names.a, "job")
    dying = RabbitMQBroker(RABBITMQ_URL)
    taken = dying.receive(names.a, wait_seconds=2, visibility_timeout_seconds=600)
    assert [d.attempt for d in taken] == [1]
    dying.close()  # as a worker killed mid-job: the server requeues at once, long before the lease ends
    again = broker.receive(names.a, wait_seconds=5)
    assert [d.body for d in again] == ["job"]
    major, minor = (int(p) for p in broker.server_version().split(".")[:2])
    if (major, minor) < (4, 3):  # from 4.3 a requeue on close no longer counts as a delivery
        assert again[0].attempt == 2


def test_the_delivery_limit_dead_letters_with_rabbitmqs_reason(broker: RabbitMQBroker, names: ContractNames) -> None:
    broker.send(names.a, "poison")
    for _ in range(3):
        (delivery,) = broker.receive(names.a, wait_seconds=5)
        broker.release(delivery)
    letters = wait_until(lambda: broker.dead_letters(names.a), 10, message="the dead letter")
    assert isinstance(letters, list) and len(letters) == 1
    assert letters[0].reason.startswith("delivery_limit") and letters[0].source_queue == names.a
    assert broker.dead_letters(names.a) == letters  # peeking twice loses nothing
    assert broker.redrive(names.a) == 1
    (back,) = broker.receive(names.a, wait_seconds=5)
    assert (back.body, back.attempt) == ("poison", 1)


def test_heartbeats_from_another_thread_keep_the_lease_while_this_one_polls(
    broker: RabbitMQBroker, names: ContractNames
) -> None:
    """The worker's pattern: a heartbeat thread extends while other threads use the same broker."""
    broker.send(names.a, "long job")
    (delivery,) = broker.receive(names.a, wait_seconds=2, visibility_timeout_seconds=1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def heartbeat() -> None:
        while not stop.wait(0.3):
            try:
                broker.extend(delivery, 1)
            except BaseException as exc:
                errors.append(exc)
                return

    beating = threading.Thread(target=heartbeat)
    beating.start()
    try:
        stolen = [broker.receive(names.a, wait_seconds=0.5) for _ in range(5)]  # 2.5 s of rival polling
    finally:
        stop.set()
        beating.join()
    assert errors == [] and stolen == [[]] * 5
    broker.ack(delivery)
    assert broker.depth(names.a).total == 0


# --- receiving by consuming: waking on arrival, holding nothing nobody asked for -----------------------------


def test_a_waiting_receive_wakes_as_the_message_arrives(broker: RabbitMQBroker, names: ContractNames) -> None:
    """Polling with basic.get (every 50-500 ms) would notice a message sent 1.3 s into the wait 0.45 s late."""
    other = RabbitMQBroker(RABBITMQ_URL)
    latencies = []
    sent_at: list[float] = []

    def send() -> None:
        sent_at.append(time.monotonic())
        other.send(names.a, "now")

    try:
        for _ in range(3):
            timer = threading.Timer(1.3, send)
            timer.start()
            (delivery,) = broker.receive(names.a, wait_seconds=10)
            latencies.append(time.monotonic() - sent_at[-1])
            timer.join()
            broker.ack(delivery)
    finally:
        other.close()
    assert min(latencies) < 0.15, f"a waiting receive noticed messages {latencies} s after they were sent"


def test_a_message_pushed_between_receives_is_handed_back_without_costing_a_delivery(
    broker: RabbitMQBroker, names: ContractNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rabbitmq_receive, "HAND_BACK_AFTER_SECONDS", 1.0)  # long enough to watch it parked
    assert broker.receive(names.a, wait_seconds=0.2) == []  # leaves its consumer, which delivered nothing
    other = RabbitMQBroker(RABBITMQ_URL)
    try:
        other.send(names.a, "nobody here asked for it")
        wait_until(lambda: broker.depth(names.a).in_flight == 1, 5, message="the message pushed to the consumer")
        assert other.receive(names.a, wait_seconds=0) == []  # held, for a moment
        (delivery,) = other.receive(names.a, wait_seconds=5)  # then back in the queue, for anyone
        assert (delivery.body, delivery.attempt) == ("nobody here asked for it", 1)
        assert broker.depth(names.a).in_flight == 0
        assert broker.receive(names.a, wait_seconds=0) == []
        other.ack(delivery)
        assert other.depth(names.a).total == 0
    finally:
        other.close()


def test_a_message_pushed_between_receives_goes_to_the_next_receive(
    broker: RabbitMQBroker, names: ContractNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rabbitmq_receive, "HAND_BACK_AFTER_SECONDS", 5.0)
    assert broker.receive(names.a, wait_seconds=0.2) == []
    broker.send(names.a, "just missed")
    wait_until(lambda: broker.depth(names.a).in_flight == 1, 5, message="the message pushed to the consumer")
    (delivery,) = broker.receive(names.a, wait_seconds=0)
    assert (delivery.body, delivery.attempt) == ("just missed", 1)
    broker.ack(delivery)
    assert broker.depth(names.a).total == 0


def test_a_fanout_to_a_receive_waiting_on_both_queues_costs_no_delivery(
    broker: RabbitMQBroker, names: ContractNames
) -> None:
    """Both copies are pushed at once; the receive takes one, and the other must not count as an attempt."""
    other = RabbitMQBroker(RABBITMQ_URL)
    try:
        timer = threading.Timer(0.3, lambda: other.publish(names.topic, "upload"))
        timer.start()
        (first,) = broker.receive_any([names.a, names.b], wait_seconds=10)
        timer.join()
        (second,) = broker.receive_any([names.a, names.b], wait_seconds=5)
        assert {first.queue, second.queue} == {names.a, names.b}
        assert (first.attempt, second.attempt) == (1, 1)
        broker.ack(first)
        broker.ack(second)
        assert broker.depth(names.a).total == broker.depth(names.b).total == 0
    finally:
        other.close()


def test_threads_waiting_on_one_broker_each_get_a_message(broker: RabbitMQBroker, names: ContractNames) -> None:
    got: list[list[Delivery]] = []
    threads = [threading.Thread(target=lambda: got.append(broker.receive(names.a, wait_seconds=10))) for _ in "ab"]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(broker._waiters) == 2, 5, message="both receives waiting")
    broker.send(names.a, "one")
    broker.send(names.a, "two")
    for thread in threads:
        thread.join(timeout=15)
    assert sorted((d.body, d.attempt) for deliveries in got for d in deliveries) == [("one", 1), ("two", 1)]


def test_a_queue_deleted_under_a_waiting_receive_breaks_no_lease(broker: RabbitMQBroker, names: ContractNames) -> None:
    broker.send(names.a, "leased")
    (lease,) = broker.receive(names.a, wait_seconds=2)
    admin = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        timer = threading.Timer(0.3, lambda: admin.channel().queue_delete(names.b))
        started = time.monotonic()
        timer.start()
        assert broker.receive(names.b, wait_seconds=2) == []
        timer.join()
        assert time.monotonic() - started >= 1.5  # it kept waiting: the deletion only cancelled its consumer
    finally:
        admin.close()
    broker.ack(lease)  # the work channel, and the lease on it, survived
    with pytest.raises(QueueNotFoundError):
        broker.receive(names.b, wait_seconds=0)
    assert broker.depth(names.a).total == 0


def test_the_connection_stays_alive_while_the_caller_is_busy(names: ContractNames) -> None:
    """With a 1 s AMQP heartbeat, a caller busy for 4 s (FFmpeg) would lose its connection without the I/O
    thread answering heartbeats; with it, the lease survives and the ack goes through."""
    separator = "&" if "?" in RABBITMQ_URL else "?"
    broker = RabbitMQBroker(f"{RABBITMQ_URL}{separator}heartbeat=1")
    try:
        broker.declare(names.topology())
        broker.send(names.a, "job")
        (delivery,) = broker.receive(names.a, wait_seconds=2, visibility_timeout_seconds=60)
        time.sleep(4)  # busy, not synchronising: nothing to wait for but the passing of heartbeats
        broker.ack(delivery)
        assert broker.depth(names.a).total == 0
    finally:
        broker.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.mark.exclusive  # stops the shared RabbitMQ server: run alone, after the parallel run (see the Makefile)
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to restart the broker")
def test_a_broker_restart_loses_nothing_confirmed_and_leases_nothing_twice(
    broker: RabbitMQBroker, names: ContractNames
) -> None:
    queue = names.queues[0]
    published = [f"job-{i}" for i in range(30)]
    for body in published:
        broker.send(queue, body)  # returns once RabbitMQ confirmed the message
    leased = broker.receive(queue, max_messages=5, visibility_timeout_seconds=300)
    assert len(leased) == 5
    try:
        _rabbitmqctl("stop_app")
    finally:
        _rabbitmqctl("start_app")
    _rabbitmqctl("await_startup")

    def reconnected() -> bool:
        try:
            broker.depth(queue)
        except BrokerUnavailableError:
            return False  # the listener may open a moment after start-up, and the broker retries with back-off
        return True

    wait_until(reconnected, 90, interval_seconds=0.2, message="the broker to reconnect")
    for delivery in leased:  # their channel died with the connection: the messages went back to the queue
        with pytest.raises(StaleReceiptError):
            broker.ack(delivery)
    received: list[str] = []

    def drain() -> bool:
        try:
            got = broker.receive(queue, max_messages=10, wait_seconds=1, visibility_timeout_seconds=300)
        except BrokerUnavailableError:
            return False  # still reconnecting
        for delivery in got:
            broker.ack(delivery)
            received.append(delivery.body)
        return len(received) >= len(published)

    wait_until(drain, 90, interval_seconds=0.1, message="every confirmed message after the restart")
    assert sorted(received) == sorted(published)


def test_a_message_past_its_retention_is_dead_lettered_not_dropped(names: ContractNames) -> None:
    broker = RabbitMQBroker(RABBITMQ_URL)
    try:
        queue = names.queues[0]
        short = Topology(names.topic, (QueueSpec(queue, f"{queue}-dlq", 1, 5),))  # 1 s retention
        broker.declare(short)
        broker.send(queue, "expires")

        def expired() -> bool:
            return any(d.body == "expires" for d in broker.dead_letters(queue))

        wait_until(expired, 30, interval_seconds=0.2, message="the expired message in the DLQ")
        letter = next(d for d in broker.dead_letters(queue) if d.body == "expires")
        assert "expired" in letter.reason
    finally:
        broker.close()
