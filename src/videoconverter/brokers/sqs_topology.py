"""The set-up half of the AWS broker: the SNS topic, the SQS queues with their dead-letter queues and policies,
the raw-delivery subscriptions, the topic policy that lets the input bucket publish, and the ARNs they are known
by. Mixed into :class:`~.sqs.SQSBroker`, whose state (clients, caches, lock) it shares."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from videoconverter.aws.clients import AwsLocation, error_code
from videoconverter.aws.policies import queue_policy, topic_policy
from videoconverter.aws.provision import delivery_status_attributes, delivery_status_steps
from videoconverter.brokers.base import Topology, describe_topology
from videoconverter.brokers.sqs_messages import (
    MAX_RETENTION_SECONDS,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
    source_retention_seconds,
)
from videoconverter.errors import QueueNotFoundError


class SqsTopology:
    """``declare``, ``delete`` and ARN lookups; the broker provides the clients, the caches and ``_call``."""

    location: AwsLocation
    _sqs: Any
    _sns: Any
    _lock: threading.Lock
    _queue_urls: dict[str, str]
    _topic_arns: dict[str, str]
    _dead_letter_queues: dict[str, str]
    _account: tuple[str, str] | None
    _call: Callable[..., Any]
    _url: Callable[[str], str]
    _translate: Callable[..., Exception]

    @classmethod
    def describe(cls, topology: Topology) -> list[str]:
        """As every broker words it, with the retention SQS gets: a source queue keeps messages less long than its
        dead-letter queue (:func:`~.sqs_messages.source_retention_seconds`)."""
        return describe_topology(topology, source_retention_seconds)

    def declare(self, topology: Topology) -> None:
        topic_arn = self._call(self._sns.create_topic, Name=topology.topic)["TopicArn"]
        with self._lock:
            self._topic_arns[topology.topic] = topic_arn
        for spec in topology.queues:
            dead_letter_url = self._ensure_queue(
                spec.dead_letter_queue, {"MessageRetentionPeriod": str(MAX_RETENTION_SECONDS)}
            )
            redrive = {
                "deadLetterTargetArn": self.queue_arn(dead_letter_url),
                "maxReceiveCount": spec.max_receive_count,
            }
            url = self._ensure_queue(
                spec.name,
                {
                    "MessageRetentionPeriod": str(source_retention_seconds(spec)),
                    "VisibilityTimeout": str(min(spec.visibility_timeout_seconds, MAX_VISIBILITY_TIMEOUT_SECONDS)),
                    "RedrivePolicy": json.dumps(redrive),
                },
            )
            arn = self.queue_arn(url)
            self._call(
                self._sqs.set_queue_attributes, QueueUrl=url, Attributes={"Policy": queue_policy(arn, topic_arn)}
            )
            self._subscribe(topic_arn, arn)
            with self._lock:
                self._dead_letter_queues[spec.name] = spec.dead_letter_queue

    def allow_bucket(self, topic: str, bucket: str) -> str:
        """Set the topic's policy: S3 may publish for ``bucket``, of this account, only; return the topic's ARN.

        S3 checks that it may publish when a bucket notification is set, so this comes first.
        """
        topic_arn = self.topic_arn(topic)
        policy = topic_policy(topic_arn, bucket)
        self._call(self._sns.set_topic_attributes, TopicArn=topic_arn, AttributeName="Policy", AttributeValue=policy)
        return topic_arn

    @classmethod
    def describe_delivery_logging(cls, topics: Sequence[str], role: str, success_sample_percent: int) -> list[str]:
        return delivery_status_steps(topics, role, success_sample_percent)

    def log_deliveries(self, topics: Sequence[str], role: str, success_sample_percent: int) -> None:
        """SNS's delivery status logging to CloudWatch Logs, for the SQS and Lambda protocols
        (:func:`~videoconverter.aws.provision.delivery_status_attributes`)."""
        if not role:
            return
        for topic in topics:
            topic_arn = self.topic_arn(topic)
            for name, value in delivery_status_attributes(role, success_sample_percent).items():
                self._call(self._sns.set_topic_attributes, TopicArn=topic_arn, AttributeName=name, AttributeValue=value)

    def _ensure_queue(self, name: str, attributes: dict[str, str]) -> str:
        """Create the queue, or bring an existing one's attributes into line (CreateQueue refuses changes)."""
        try:
            url = self._url(name)
        except QueueNotFoundError:
            url = self._call(self._sqs.create_queue, QueueName=name, Attributes=attributes)["QueueUrl"]
            with self._lock:
                self._queue_urls[name] = url
            return str(url)
        self._call(self._sqs.set_queue_attributes, QueueUrl=url, Attributes=attributes)
        return url

    def _subscribe(self, topic_arn: str, queue_arn: str) -> None:
        for subscription in self._subscriptions(topic_arn):
            if subscription["Endpoint"] == queue_arn and subscription["Protocol"] == "sqs":
                self._call(
                    self._sns.set_subscription_attributes,
                    SubscriptionArn=subscription["SubscriptionArn"],
                    AttributeName="RawMessageDelivery",
                    AttributeValue="true",
                )
                return
        self._call(
            self._sns.subscribe,
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )

    def queue_arn(self, url: str) -> str:
        attributes = self._call(self._sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def topic_arn(self, topic: str) -> str:
        """The ARN of ``topic`` (whether the topic exists shows when it is used: ``QueueNotFoundError``).

        Built from the caller's account (STS GetCallerIdentity needs no permission) rather than by listing
        topics, so a worker's role needs no ``sns:ListTopics`` on every topic of the account.
        """
        with self._lock:
            known = self._topic_arns.get(topic)
            account = self._account
        if known:
            return known
        if account is None:
            sts = self.location.client("sts")
            try:
                caller = self._call(sts.get_caller_identity)["Arn"]  # arn:PARTITION:iam::ACCOUNT:...
            finally:
                sts.close()
            partition, account_id = caller.split(":")[1], caller.split(":")[4]
            account = (partition, account_id)
            with self._lock:
                self._account = account
        arn = f"arn:{account[0]}:sns:{self.location.region}:{account[1]}:{topic}"
        with self._lock:
            self._topic_arns[topic] = arn
        return arn

    def _subscriptions(self, topic_arn: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        try:
            for page in self._sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
                found.extend(page.get("Subscriptions", []))
        except Exception as exc:
            if error_code(exc) in {"NotFound", "NotFoundException"}:
                raise QueueNotFoundError(f"no SNS topic {topic_arn}: run `videoconverter provision` first") from exc
            raise self._translate(exc) from exc
        return found

    def delete(self, topology: Topology) -> None:
        """Remove the topic and queues of ``topology`` (tests and tear-down; not part of the contract)."""
        for spec in topology.queues:
            for name in (spec.name, spec.dead_letter_queue):
                with contextlib.suppress(QueueNotFoundError):
                    self._call(self._sqs.delete_queue, QueueUrl=self._url(name))
                with self._lock:
                    self._queue_urls.pop(name, None)
        with contextlib.suppress(QueueNotFoundError):
            self._call(self._sns.delete_topic, TopicArn=self.topic_arn(topology.topic))
