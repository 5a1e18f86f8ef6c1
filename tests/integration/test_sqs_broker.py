"""What the SQS broker does beyond the contract, against moto's server: SQS's own limits and failures."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest

from tests.aws import MotoServer
from videoconverter.brokers.base import QueueSpec, Topology
from videoconverter.brokers.sqs import SQSBroker
from videoconverter.brokers.sqs_messages import MAX_DELAY_SECONDS
from videoconverter.errors import BrokerUnavailableError, QueueNotFoundError, StaleReceiptError


@pytest.fixture
def topology() -> Topology:
    prefix = f"s{uuid.uuid4().hex[:8]}"
    return Topology(f"{prefix}-topic", (QueueSpec(f"{prefix}-q", f"{prefix}-q-dlq", 3600, 3, 45),))


@pytest.fixture
def broker(moto_server: MotoServer, topology: Topology) -> Iterator[SQSBroker]:
    b = SQSBroker.from_url(moto_server.url("aws"))
    b.declare(topology)
    yield b
    b.delete(topology)
    b.close()


def test_declare_brings_a_changed_queue_into_line(broker: SQSBroker, topology: Topology) -> None:
    spec = topology.queues[0]
    changed = Topology(topology.topic, (QueueSpec(spec.name, spec.dead_letter_queue, 7200, 7, 90),))
    broker.declare(changed)
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=spec.name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["MessageRetentionPeriod"], attributes["VisibilityTimeout"]) == ("7200", "90")
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] in (7, "7")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscriptions = boto3.client("sns").list_subscriptions_by_topic(TopicArn=broker.topic_arn(topology.topic))
    assert [s["Endpoint"] for s in subscriptions["Subscriptions"]] == [arn]  # not subscribed twice


def test_a_retry_longer_than_sqs_delays_allow_waits_in_flight(broker: SQSBroker, topology: Topology) -> None:
    queue = topology.queues[0].name
    broker.send(queue, "later")
    delivery = broker.receive(queue, wait_seconds=2)[0]
    broker.release(delivery, delay_seconds=MAX_DELAY_SECONDS + 60)
    depth = broker.depth(queue)
    assert (depth.visible, depth.in_flight, depth.delayed) == (0, 1, 0)
    with pytest.raises(StaleReceiptError):
        broker.ack(delivery)  # released: this receipt is no longer ours


def test_a_receipt_of_another_consumer_is_left_to_sqs(
    broker: SQSBroker, moto_server: MotoServer, topology: Topology
) -> None:
    queue = topology.queues[0].name
    broker.send(queue, "taken by a Lambda")
    delivery = broker.receive(queue, wait_seconds=2, visibility_timeout_seconds=60)[0]
    lambda_side = SQSBroker.from_url(moto_server.url("aws"))  # knows nothing of the lease
    try:
        lambda_side.extend(delivery, 60)
        lambda_side.ack(delivery)
    finally:
        lambda_side.close()
    assert broker.depth(queue).total == 0


def test_a_dead_letter_keeps_its_reason_and_source_across_a_peek(broker: SQSBroker, topology: Topology) -> None:
    queue = topology.queues[0].name
    broker.send(queue, "poison")
    broker.dead_letter(broker.receive(queue, wait_seconds=2)[0], "x" * 10_000)
    first, second = broker.dead_letters(queue), broker.dead_letters(queue)
    assert first == second and len(first) == 1  # a peek leaves the message where it was
    assert first[0].source_queue == queue and 0 < len(first[0].reason) <= 4000
    assert first[0].dead_lettered_at <= time.time()


def test_an_unreachable_endpoint_is_one_clear_error() -> None:
    broker = SQSBroker.from_url("aws://?endpoint_url=http://127.0.0.1:9&region=us-east-1")
    broker._sqs.meta.config.retries = {"max_attempts": 1}  # fail fast: the real client keeps retrying a while
    with pytest.raises(BrokerUnavailableError, match=r"cannot reach SNS/SQS at http://127.0.0.1:9"):
        broker.send("anything", "lost?")


def test_a_queue_that_was_never_provisioned_says_so(moto_server: MotoServer) -> None:
    broker = SQSBroker.from_url(moto_server.url("aws"))
    with pytest.raises(QueueNotFoundError, match="provision"):
        broker.depth("never-provisioned")
    with pytest.raises(QueueNotFoundError, match="provision"):
        broker.publish("never-provisioned-topic", "{}")
