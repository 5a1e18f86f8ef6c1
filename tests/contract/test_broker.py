"""The broker contract: every backend passes these tests unchanged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.contract.conftest import MAX_RECEIVE_COUNT, ContractNames
from videoconverter.brokers.base import Broker, Delivery, Topology
from videoconverter.errors import ConfigError, QueueNotFoundError, StaleReceiptError


def receive_one(broker: Broker, queue: str, visibility_timeout_seconds: int = 30, wait_seconds: float = 2.0):
    got = broker.receive(queue, wait_seconds=wait_seconds, visibility_timeout_seconds=visibility_timeout_seconds)
    assert len(got) == 1, f"expected one message on {queue}, got {len(got)}"
    return got[0]


class BrokerContract:
    """Every broker passes these tests unchanged; a subclass per backend names it (``backend``, read by the
    ``broker_factory`` fixture) and says where its backend's behaviour differs in ways only tests care about."""

    backend: str
    #: publish() returns one id per copy, unique across queues; where False, the single id every copy carries.
    distinct_copy_ids = True
    #: depth().in_flight counts every client's leases; where False, only this broker instance's.
    counts_every_lease = True

    def test_declare_is_idempotent_and_keeps_messages(self, broker: Broker, names: ContractNames) -> None:
        broker.publish(names.topic, "kept")
        broker.declare(names.topology())
        broker.declare(names.topology())
        assert receive_one(broker, names.a).body == "kept"

    def test_describe_words_what_declare_ensures(self, broker: Broker, names: ContractNames) -> None:
        topology = names.topology()
        steps = type(broker).describe(topology)  # a class method: provision --dry-run opens no broker
        assert steps[0] == f"topic {names.topic}"
        for spec in topology.queues:
            (line,) = [s for s in steps if s.startswith(f"queue {spec.name} ")]
            assert f"subscribed to {names.topic}" in line
            assert f"after {spec.max_receive_count} receives -> {spec.dead_letter_queue}" in line
            assert f"queue {spec.dead_letter_queue}" in steps

    def test_only_a_topic_with_an_address_lets_a_bucket_publish(self, broker: Broker, names: ContractNames) -> None:
        if not broker.capabilities.topic_address:  # only this broker's clients publish
            with pytest.raises(ConfigError):
                broker.allow_bucket(names.topic, "contract-bucket")
            return
        address = broker.allow_bucket(names.topic, "contract-bucket")
        assert address and broker.allow_bucket(names.topic, "contract-bucket") == address  # idempotent
        with pytest.raises(QueueNotFoundError):
            broker.allow_bucket("no-such-topic", "contract-bucket")

    def test_publish_fans_out_one_copy_to_every_subscribed_queue(self, broker: Broker, names: ContractNames) -> None:
        ids = broker.publish(names.topic, '{"hello": 1}')
        if self.distinct_copy_ids:
            assert len(ids) == len(names.queues) and len(set(ids)) == len(names.queues)
        else:  # the copies share one id
            assert len(ids) == 1
        for queue in names.queues:
            delivery = receive_one(broker, queue)
            assert delivery.message_id in ids
            assert delivery.body == '{"hello": 1}'
            assert delivery.attempt == 1
            assert delivery.queue == queue
            assert broker.receive(queue, wait_seconds=0) == []

    def test_publish_to_an_unknown_topic_is_an_error(self, broker: Broker) -> None:
        with pytest.raises(QueueNotFoundError):
            broker.publish("no-such-topic", "lost?")

    def test_publish_to_a_topic_no_queue_is_subscribed_to_is_an_error(
        self, broker_factory: Callable[[], Broker], names: ContractNames
    ) -> None:
        lonely = broker_factory()
        lonely.declare(Topology(names.topic, ()))  # the topic exists, but nothing would receive the message
        with pytest.raises(QueueNotFoundError):
            lonely.publish(names.topic, "lost?")

    def test_receive_from_an_unknown_queue_is_an_error(self, broker: Broker) -> None:
        with pytest.raises(QueueNotFoundError):
            broker.receive("no_such_queue", wait_seconds=0)

    def test_receive_returns_empty_list_when_the_wait_ends(self, broker: Broker, names: ContractNames) -> None:
        started = time.monotonic()
        assert broker.receive(names.a, wait_seconds=0.5) == []
        waited = time.monotonic() - started
        assert 0.45 <= waited < 3.0

    def test_long_poll_wakes_up_when_a_message_arrives(
        self, broker_factory: Callable[[], Broker], broker: Broker, names: ContractNames
    ) -> None:
        other = broker_factory()  # another connection, as another process would have
        timer = threading.Timer(0.3, lambda: other.send(names.a, "late"))
        timer.start()
        started = time.monotonic()
        got = broker.receive(names.a, wait_seconds=10)
        elapsed = time.monotonic() - started
        timer.join()
        assert [d.body for d in got] == ["late"]
        assert elapsed < 5.0, f"long poll took {elapsed:.2f} s to notice a message sent after 0.3 s"

    def test_a_leased_message_is_invisible_until_its_lease_ends(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "job")
        first = receive_one(broker, names.a, visibility_timeout_seconds=1)
        assert broker.receive(names.a, wait_seconds=0) == []
        again = receive_one(broker, names.a, visibility_timeout_seconds=30, wait_seconds=5)
        assert again.message_id == first.message_id
        assert again.attempt == 2
        assert again.receipt != first.receipt

    def test_ack_deletes_the_message(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "job")
        delivery = receive_one(broker, names.a, visibility_timeout_seconds=1)
        broker.ack(delivery)
        assert broker.receive(names.a, wait_seconds=1.5) == []
        assert broker.depth(names.a).total == 0

    def test_a_stale_receipt_is_refused_after_redelivery(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "job")
        stale = receive_one(broker, names.a, visibility_timeout_seconds=1)
        fresh = receive_one(broker, names.a, wait_seconds=5)
        for settle in (
            broker.ack,
            lambda d: broker.extend(d, 30),
            broker.release,
            lambda d: broker.dead_letter(d, "x"),
        ):
            with pytest.raises(StaleReceiptError):
                settle(stale)
        broker.ack(fresh)
        assert broker.depth(names.a).total == 0

    def test_extend_keeps_the_lease_past_the_original_timeout(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "long job")
        delivery = receive_one(broker, names.a, visibility_timeout_seconds=1)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            broker.extend(delivery, 1)
            assert broker.receive(names.a, wait_seconds=0.3) == []
        broker.ack(delivery)

    def test_release_makes_the_message_visible_again_after_the_delay(
        self, broker: Broker, names: ContractNames
    ) -> None:
        broker.send(names.a, "retry me")
        delivery = receive_one(broker, names.a)
        broker.release(delivery, delay_seconds=1.0)
        assert broker.receive(names.a, wait_seconds=0.3) == []
        assert broker.depth(names.a).delayed == 1
        again = receive_one(broker, names.a, wait_seconds=5)
        assert again.attempt == 2
        broker.release(again)
        assert receive_one(broker, names.a, wait_seconds=1).attempt == 3

    def test_the_lease_of_a_client_that_died_comes_back_at_once(
        self, broker_factory: Callable[[], Broker], broker: Broker, names: ContractNames
    ) -> None:
        broker.send(names.a, "job")
        holder = broker_factory()  # a worker process that dies holding the message
        held = receive_one(holder, names.a, visibility_timeout_seconds=600)
        if broker.capabilities.leases_outlive_holder:
            # It dies without a word; another client hands the lease back from what a lease journal keeps.
            journalled = Delivery(held.queue, held.message_id, "", held.receipt, held.attempt, held.sent_at)
            broker.release(journalled, 0)
        else:
            holder.close()  # the backend ends a closed client's leases itself
        again = receive_one(broker, names.a, wait_seconds=5)
        assert (again.message_id, again.attempt) == (held.message_id, 2)

    def test_dead_letter_keeps_the_reason_and_redrive_brings_it_back(
        self, broker: Broker, names: ContractNames
    ) -> None:
        broker.send(names.a, "poison")
        broker.send(names.a, "fine")
        poison = receive_one(broker, names.a)
        broker.dead_letter(poison, "not a video: text file named .mp4")
        letters = broker.dead_letters(names.a)
        assert [(d.body, d.reason, d.source_queue) for d in letters] == [
            ("poison", "not a video: text file named .mp4", names.a)
        ]
        assert broker.dead_letters(names.b) == []
        assert receive_one(broker, names.a).body == "fine"
        assert broker.redrive(names.a) == 1
        assert broker.dead_letters(names.a) == []
        back = receive_one(broker, names.a)
        assert (back.body, back.attempt) == ("poison", 1)

    def test_redrive_of_one_message_id_moves_only_that_dead_letter(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "first")
        broker.send(names.a, "second")
        for _ in range(2):
            delivery = receive_one(broker, names.a)
            broker.dead_letter(delivery, f"{delivery.body} is broken")
        letters = {d.body: d for d in broker.dead_letters(names.a)}
        assert set(letters) == {"first", "second"}
        assert broker.redrive(names.a, message_id=letters["second"].message_id) == 1
        assert [(d.body, d.reason, d.message_id) for d in broker.dead_letters(names.a)] == [
            ("first", "first is broken", letters["first"].message_id)
        ]
        back = receive_one(broker, names.a)
        assert (back.body, back.attempt) == ("second", 1)
        assert broker.receive(names.a, wait_seconds=0.5) == []

    def test_redrive_of_an_unknown_message_id_moves_nothing(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "poison")
        broker.dead_letter(receive_one(broker, names.a), "not a video")
        assert broker.redrive(names.a, message_id="no-such-message") == 0
        assert [(d.body, d.reason) for d in broker.dead_letters(names.a)] == [("poison", "not a video")]
        assert broker.receive(names.a, wait_seconds=0.5) == []
        assert broker.redrive(names.b, message_id="no-such-message") == 0

    def test_the_receive_limit_dead_letters_a_message_nobody_acks(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "crashes every worker")
        for attempt in range(1, MAX_RECEIVE_COUNT + 1):
            delivery = receive_one(broker, names.a, visibility_timeout_seconds=1, wait_seconds=5)
            assert delivery.attempt == attempt
            broker.release(delivery)  # as if the worker died right away
        assert broker.receive(names.a, wait_seconds=0.5) == []
        letters = broker.dead_letters(names.a)
        assert len(letters) == 1 and letters[0].body == "crashes every worker"
        assert letters[0].reason

    def test_depth_counts_messages_by_state(self, broker: Broker, names: ContractNames) -> None:
        for body in ("a", "b", "c"):
            broker.send(names.a, body)
        leased = receive_one(broker, names.a)
        delayed = receive_one(broker, names.a)
        broker.release(delayed, delay_seconds=60)
        depth = broker.depth(names.a)
        assert (depth.visible, depth.in_flight, depth.delayed, depth.total) == (1, 1, 1, 3)
        broker.ack(leased)
        assert broker.depth(names.a).total == 2

    def test_depth_counts_another_clients_lease_where_the_backend_can(
        self, broker_factory: Callable[[], Broker], broker: Broker, names: ContractNames
    ) -> None:
        broker.send(names.a, "taken elsewhere")
        other = broker_factory()
        leased = receive_one(other, names.a)
        depth = broker.depth(names.a)
        if self.counts_every_lease:
            assert (depth.visible, depth.in_flight, depth.delayed) == (0, 1, 0)
        else:  # invisible here, and not counted as visible either
            assert (depth.visible, depth.in_flight, depth.delayed) == (0, 0, 0)
        assert other.depth(names.a).in_flight == 1
        other.ack(leased)
        assert broker.depth(names.a).total == 0

    def test_concurrent_consumers_never_lease_a_message_twice(
        self, broker_factory: Callable[[], Broker], broker: Broker, names: ContractNames
    ) -> None:
        count = 60
        for i in range(count):
            broker.send(names.a, f"m{i}")
        seen: list[str] = []
        lock = threading.Lock()

        def consume() -> None:
            own = broker_factory()
            while True:
                got = own.receive(names.a, max_messages=2, wait_seconds=0.2, visibility_timeout_seconds=60)
                if not got:
                    return
                for delivery in got:
                    own.ack(delivery)
                    with lock:
                        seen.append(delivery.body)

        threads = [threading.Thread(target=consume) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(seen) == sorted(f"m{i}" for i in range(count))

    # --- receive_any: several queues ------------------------------------------------------------------------

    def test_receive_any_takes_from_whichever_queue_has_a_message(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.b, "for b")
        (got,) = broker.receive_any([names.a, names.b], wait_seconds=2)
        assert (got.queue, got.body, got.attempt) == (names.b, "for b", 1)
        broker.ack(got)
        broker.send(names.a, "for a")
        (got,) = broker.receive_any([names.a, names.b], wait_seconds=2)
        assert (got.queue, got.body) == (names.a, "for a")
        broker.ack(got)
        assert broker.receive_any([names.a, names.b], wait_seconds=0) == []
        assert broker.depth(names.a).total == broker.depth(names.b).total == 0

    def test_receive_any_of_several_messages_says_where_each_came_from(
        self, broker: Broker, names: ContractNames
    ) -> None:
        for body in ("a0", "b0", "a1", "b1"):
            broker.send(names.a if body.startswith("a") else names.b, body)
        received: list[str] = []
        while got := broker.receive_any([names.a, names.b], max_messages=3, wait_seconds=1):
            assert 1 <= len(got) <= 3
            for delivery in got:
                assert delivery.queue == (names.a if delivery.body.startswith("a") else names.b)
                broker.ack(delivery)
                received.append(delivery.body)
        assert sorted(received) == ["a0", "a1", "b0", "b1"]

    def test_receive_any_serves_both_full_queues_in_turn(self, broker: Broker, names: ContractNames) -> None:
        for i in range(6):
            broker.publish(names.topic, f"m{i}")  # one copy in each queue, as every upload is
        served = []
        for _ in range(6):
            (delivery,) = broker.receive_any([names.a, names.b], wait_seconds=2)
            broker.ack(delivery)
            served.append(delivery.queue)
        assert served.count(names.a) >= 2 and served.count(names.b) >= 2, served
        assert all(len(set(served[i : i + 3])) == 2 for i in range(len(served) - 2)), f"a queue ran 3 times: {served}"

    def test_receive_any_starves_no_queue_behind_older_messages(self, broker: Broker, names: ContractNames) -> None:
        for i in range(3):
            broker.send(names.a, f"older {i}")
        broker.send(names.b, "newer")
        served = []
        for _ in range(4):  # oldest first serves it 4th; rotation sooner: either way within 4
            (delivery,) = broker.receive_any([names.a, names.b], wait_seconds=2)
            broker.ack(delivery)
            served.append(delivery.body)
        assert "newer" in served and sorted(served) == ["newer", "older 0", "older 1", "older 2"]

    def test_receive_any_returns_empty_list_when_the_wait_ends(self, broker: Broker, names: ContractNames) -> None:
        started = time.monotonic()
        assert broker.receive_any([names.a, names.b], wait_seconds=0.5) == []
        waited = time.monotonic() - started
        assert 0.45 <= waited < 3.0

    def test_receive_any_wakes_up_when_a_message_arrives_in_the_second_queue(
        self, broker_factory: Callable[[], Broker], broker: Broker, names: ContractNames
    ) -> None:
        other = broker_factory()
        timer = threading.Timer(0.3, lambda: other.send(names.b, "late"))
        timer.start()
        started = time.monotonic()
        got = broker.receive_any([names.a, names.b], wait_seconds=10)
        elapsed = time.monotonic() - started
        timer.join()
        assert [(d.queue, d.body, d.attempt) for d in got] == [(names.b, "late", 1)]
        assert elapsed < 5.0, f"receive_any took {elapsed:.2f} s to notice a message sent after 0.3 s"

    def test_receive_any_leases_as_receive_does(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.b, "job")
        (first,) = broker.receive_any([names.a, names.b], wait_seconds=2, visibility_timeout_seconds=1)
        assert broker.receive_any([names.a, names.b], wait_seconds=0) == []
        assert broker.receive(names.b, wait_seconds=0) == []
        (again,) = broker.receive_any([names.a, names.b], wait_seconds=5, visibility_timeout_seconds=30)
        assert (again.queue, again.message_id, again.attempt) == (names.b, first.message_id, 2)
        assert again.receipt != first.receipt
        with pytest.raises(StaleReceiptError):
            broker.ack(first)
        broker.extend(again, 30)
        broker.ack(again)
        assert broker.depth(names.b).total == 0

    def test_receive_any_dead_letters_at_the_receive_limit(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.b, "crashes every worker")
        for attempt in range(1, MAX_RECEIVE_COUNT + 1):
            (delivery,) = broker.receive_any([names.a, names.b], wait_seconds=5, visibility_timeout_seconds=1)
            assert (delivery.queue, delivery.attempt) == (names.b, attempt)
            broker.release(delivery)
        assert broker.receive_any([names.a, names.b], wait_seconds=0.5) == []
        letters = broker.dead_letters(names.b)
        assert [(d.body, d.source_queue) for d in letters] == [("crashes every worker", names.b)]
        assert broker.dead_letters(names.a) == []

    def test_receive_any_from_an_unknown_queue_is_an_error(self, broker: Broker, names: ContractNames) -> None:
        broker.send(names.a, "still there")
        with pytest.raises(QueueNotFoundError):
            broker.receive_any([names.a, "no_such_queue"], wait_seconds=0)
        with pytest.raises(ValueError):
            broker.receive_any([], wait_seconds=0)
        (delivery,) = broker.receive_any([names.a, names.a], wait_seconds=2)  # nothing broken; a name twice is once
        assert delivery.body == "still there"
        broker.ack(delivery)


class TestSQLiteBroker(BrokerContract):
    backend = "sqlite"


class TestRabbitMQBroker(BrokerContract):
    """A fanout exchange copies one message, whose id every copy carries; AMQP cannot count another client's
    unacknowledged messages (they appear in no figure of ``depth``)."""

    backend = "rabbitmq"
    distinct_copy_ids = False
    counts_every_lease = False


class TestSQSBroker(BrokerContract):
    """SNS gives each copy its own SQS message id, so the broker carries one id of its own in an attribute."""

    backend = "aws"
    distinct_copy_ids = False
