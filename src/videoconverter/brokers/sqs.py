"""The AWS broker: ``aws://`` (optionally ``aws://?region=eu-west-1&endpoint_url=...``), an SNS topic fanning out
to one SQS queue per rendition, as in the original design.

How the broker contract maps onto SNS and SQS:

- ``declare`` creates, or brings into line, the topic, each queue and its dead-letter queue (a redrive policy
  with ``maxReceiveCount`` as the safety net), a queue policy letting only the topic send, and a subscription with
  raw message delivery, so a queue receives the S3 event itself rather than an SNS envelope.
- ``publish`` is one SNS publish. SNS gives every copy its own SQS id, so we send our own id as a message
  attribute (:data:`ID_ATTRIBUTE`) that every copy carries.
- ``receive`` long-polls (at most 20 s a call); ``receive_any`` over several queues takes turns, long-polling each
  for at most :data:`MULTI_QUEUE_WAIT_SECONDS` (SQS cannot wait on several queues at once, and polling them all in
  parallel would receive messages nobody wanted, each such receive counting towards ``maxReceiveCount``);
  ``attempt`` is SQS's ``ApproximateReceiveCount``, plus the
  deliveries before a delayed retry (:data:`EARLIER_ATTEMPTS_ATTRIBUTE`, since a delayed retry is a new message).
- ``extend`` is ``ChangeMessageVisibility``, within SQS's 12-hour ceiling from the receive; ``ack`` deletes.
- ``release(delay)`` with a delay of up to 15 min sends a delayed copy (``DelaySeconds``, counted as *delayed* by
  SQS) and deletes the original; longer delays keep the message invisible for that long instead (counted
  *in flight*).
- ``dead_letter`` sends a copy carrying the reason to the dead-letter queue, then deletes the original; a message
  moved by the redrive policy has no reason of ours and is reported as having hit the receive limit.
- ``dead_letters`` peeks by receiving the dead-letter queue's messages and making them visible again at once;
  ``redrive`` moves them back one by one (``StartMessageMoveTask`` would keep the SQS receive count and needs the
  queue's ARN permissions; a move by hand gives a fresh attempt count, as the contract asks). Redriving one message
  receives them all the same and makes the others visible again at once.

Stale receipts: SQS accepts an old receipt handle for some calls. Every lease this instance hands out is kept
with its deadline, and a receipt whose lease ran out (the message may be with another worker now) or was
settled is refused here, before SQS is asked. Receipts of other instances (a Lambda event's) are left to SQS.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from videoconverter.aws.clients import SNS_TOPIC_ARN, AwsLocation, error_code
from videoconverter.brokers.base import Capabilities, DeadLetter, Delivery, QueueDepth
from videoconverter.brokers.fairness import Rotation, queue_names
from videoconverter.brokers.sqs_messages import (
    DEAD_LETTERED_AT_ATTRIBUTE,
    EARLIER_ATTEMPTS_ATTRIBUTE,
    ID_ATTRIBUTE,
    MAX_BATCH_MESSAGES,
    MAX_DELAY_SECONDS,
    MAX_REASON_CHARACTERS,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
    MAX_WAIT_SECONDS,
    MULTI_QUEUE_WAIT_SECONDS,
    PEEK_VISIBILITY_SECONDS,
    QUEUE_MISSING_CODES,
    REASON_ATTRIBUTE,
    RECEIPT_REFUSED_CODES,
    REDRIVE_VISIBILITY_SECONDS,
    SENT_AT_ATTRIBUTE,
    SHORT_POLL_INTERVAL_SECONDS,
    SOURCE_QUEUE_ATTRIBUTE,
    SUBSCRIPTIONS_CHECK_SECONDS,
    dead_letter_id,
    dead_letter_of,
    delivery_of_message,
    string_attribute,
)
from videoconverter.brokers.sqs_topology import SqsTopology
from videoconverter.errors import BrokerUnavailableError, QueueNotFoundError, StaleReceiptError


@dataclass
class _Lease:
    deadline: float  # time.monotonic() after which the message may be with another worker
    settled: bool = False


class SQSBroker(SqsTopology):
    capabilities = Capabilities(topic_address=SNS_TOPIC_ARN, leases_outlive_holder=True)

    def __init__(self, location: AwsLocation) -> None:
        self.location = location
        self._sqs = location.client("sqs")
        self._sns = location.client("sns")
        self._lock = threading.Lock()
        self._queue_urls: dict[str, str] = {}
        self._topic_arns: dict[str, str] = {}
        self._dead_letter_queues: dict[str, str] = {}
        self._leases: dict[str, _Lease] = {}
        self._rotation = Rotation()
        self._subscribed_until: dict[str, float] = {}  # topic ARN -> until when its subscribers need no check
        self._account: tuple[str, str] | None = None  # (partition, account id), for topic ARNs

    @classmethod
    def from_url(cls, url: str) -> SQSBroker:
        """The broker at the location ``url`` names (``aws://?region=...&endpoint_url=...``); connects lazily."""
        return cls(AwsLocation.from_url(url))

    # --- sending --------------------------------------------------------------------------------------------

    def publish(self, topic: str, body: str) -> list[str]:
        topic_arn = self.topic_arn(topic)
        # Every job state change publishes an event: a topic seen with subscribers is not listed again for a while.
        with self._lock:
            checked = self._subscribed_until.get(topic_arn, 0.0) > time.monotonic()
        if not checked:
            if not any(s["SubscriptionArn"] != "PendingConfirmation" for s in self._subscriptions(topic_arn)):
                raise QueueNotFoundError(f"no queue is subscribed to topic {topic!r}: the message would be lost")
            with self._lock:
                self._subscribed_until[topic_arn] = time.monotonic() + SUBSCRIPTIONS_CHECK_SECONDS
        message_id = str(uuid.uuid4())
        attributes = {
            ID_ATTRIBUTE: string_attribute(message_id),
            SENT_AT_ATTRIBUTE: string_attribute(repr(time.time())),
        }
        self._call(self._sns.publish, TopicArn=topic_arn, Message=body, MessageAttributes=attributes)
        return [message_id]

    def send(self, queue: str, body: str) -> str:
        return self._send(queue, body, {})

    def _send(self, queue: str, body: str, extra: dict[str, str], delay_seconds: int = 0) -> str:
        message_id = extra.get(ID_ATTRIBUTE) or str(uuid.uuid4())
        attributes = {SENT_AT_ATTRIBUTE: repr(time.time()), **extra, ID_ATTRIBUTE: message_id}
        self._call(
            self._sqs.send_message,
            QueueUrl=self._url(queue),
            MessageBody=body,
            DelaySeconds=delay_seconds,
            MessageAttributes={name: string_attribute(value) for name, value in attributes.items()},
        )
        return message_id

    # --- receiving and settling -----------------------------------------------------------------------------

    def receive(
        self, queue: str, *, max_messages: int = 1, wait_seconds: float = 0.0, visibility_timeout_seconds: int = 30
    ) -> list[Delivery]:
        return self.receive_any(
            [queue],
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
        )

    def receive_any(
        self,
        queues: Sequence[str],
        *,
        max_messages: int = 1,
        wait_seconds: float = 0.0,
        visibility_timeout_seconds: int = 30,
    ) -> list[Delivery]:
        """One queue long-polls up to 20 s a call. Several take turns (:class:`Rotation`, least recently served
        first), each long-polled for at most :data:`MULTI_QUEUE_WAIT_SECONDS`, until ``wait_seconds`` end."""
        urls = {queue: self._url(queue) for queue in queue_names(queues)}
        longest_wait = MAX_WAIT_SECONDS if len(urls) == 1 else MULTI_QUEUE_WAIT_SECONDS
        visibility = max(0, min(int(visibility_timeout_seconds), MAX_VISIBILITY_TIMEOUT_SECONDS))
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            waited = False
            for queue in self._rotation.order(list(urls)):
                remaining = deadline - time.monotonic()
                # SQS waits whole seconds only: the last fraction of a second is polled without waiting.
                wait = min(longest_wait, int(remaining)) if remaining >= 1 else 0
                waited = waited or wait > 0
                asked_at = time.monotonic()
                messages = self._receive(urls[queue], min(max_messages, MAX_BATCH_MESSAGES), wait, visibility)
                if messages:
                    self._rotation.served(queue)
                    return [self._delivery(queue, message, asked_at + visibility) for message in messages]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if not waited:
                time.sleep(min(SHORT_POLL_INTERVAL_SECONDS, remaining))

    def _receive(self, url: str, count: int, wait: int, visibility: int) -> list[dict[str, Any]]:
        response = self._call(
            self._sqs.receive_message,
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            VisibilityTimeout=visibility,
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _delivery(self, queue: str, message: dict[str, Any], deadline: float) -> Delivery:
        delivery = delivery_of_message(queue, message)
        with self._lock:
            self._leases[delivery.receipt] = _Lease(deadline)
            self._forget_old_leases()
        return delivery

    def ack(self, delivery: Delivery) -> None:
        self._take_lease(delivery)
        self._call(self._sqs.delete_message, QueueUrl=self._url(delivery.queue), ReceiptHandle=delivery.receipt)

    def extend(self, delivery: Delivery, visibility_timeout_seconds: int) -> None:
        seconds = max(0, min(int(visibility_timeout_seconds), MAX_VISIBILITY_TIMEOUT_SECONDS))
        asked_at = time.monotonic()
        self._check_lease(delivery)
        self._change_visibility(delivery, seconds)
        with self._lock:
            lease = self._leases.get(delivery.receipt)
            if lease is not None:
                lease.deadline = asked_at + seconds

    def release(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        if 0 < delay_seconds <= MAX_DELAY_SECONDS:
            self._take_lease(delivery)
            extra = {
                ID_ATTRIBUTE: delivery.message_id,
                EARLIER_ATTEMPTS_ATTRIBUTE: str(delivery.attempt),
                SENT_AT_ATTRIBUTE: repr(delivery.sent_at),
            }
            self._send(delivery.queue, delivery.body, extra, delay_seconds=math.ceil(delay_seconds))
            self._call(self._sqs.delete_message, QueueUrl=self._url(delivery.queue), ReceiptHandle=delivery.receipt)
            return
        self._check_lease(delivery)
        self._change_visibility(delivery, min(math.ceil(max(0.0, delay_seconds)), MAX_VISIBILITY_TIMEOUT_SECONDS))
        self._take_lease(delivery)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._check_lease(delivery)
        extra = {
            ID_ATTRIBUTE: delivery.message_id,
            REASON_ATTRIBUTE: reason[:MAX_REASON_CHARACTERS] or "dead-lettered",
            SOURCE_QUEUE_ATTRIBUTE: delivery.queue,
            DEAD_LETTERED_AT_ATTRIBUTE: repr(time.time()),
            SENT_AT_ATTRIBUTE: repr(delivery.sent_at),
        }
        self._take_lease(delivery)
        self._send(self.dead_letter_queue(delivery.queue), delivery.body, extra)
        self._call(self._sqs.delete_message, QueueUrl=self._url(delivery.queue), ReceiptHandle=delivery.receipt)

    def _change_visibility(self, delivery: Delivery, seconds: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._url(delivery.queue), ReceiptHandle=delivery.receipt, VisibilityTimeout=seconds
            )
        except Exception as exc:
            if error_code(exc) in RECEIPT_REFUSED_CODES:
                raise StaleReceiptError(
                    f"message {delivery.message_id} on {delivery.queue}: SQS refused the receipt ({exc})"
                ) from exc
            raise self._translate(exc) from exc

    def _check_lease(self, delivery: Delivery) -> None:
        with self._lock:
            lease = self._leases.get(delivery.receipt)
            if lease is None:
                return  # not received here (e.g. a Lambda event's receipt): SQS decides
            if lease.settled or time.monotonic() > lease.deadline:
                raise StaleReceiptError(
                    f"message {delivery.message_id} on {delivery.queue}: its lease "
                    f"{'was settled' if lease.settled else 'ran out'}, so it may be with another worker now"
                )

    def _take_lease(self, delivery: Delivery) -> None:
        """Check the lease and mark it settled, so the receipt is refused from now on."""
        self._check_lease(delivery)
        with self._lock:
            lease = self._leases.get(delivery.receipt)
            if lease is not None:
                lease.settled = True

    def _forget_old_leases(self) -> None:
        """Drop leases long past their deadline (called with the lock held), so memory stays bounded."""
        if len(self._leases) < 10_000:
            return
        horizon = time.monotonic() - MAX_VISIBILITY_TIMEOUT_SECONDS
        for receipt in [r for r, lease in self._leases.items() if lease.deadline < horizon or lease.settled]:
            del self._leases[receipt]

    # --- dead letters and depth -----------------------------------------------------------------------------

    def dead_letter_queue(self, queue: str) -> str:
        """The name of ``queue``'s dead-letter queue, from its redrive policy."""
        with self._lock:
            known = self._dead_letter_queues.get(queue)
        if known:
            return known
        attributes = self._call(
            self._sqs.get_queue_attributes, QueueUrl=self._url(queue), AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
        if "RedrivePolicy" not in attributes:
            raise QueueNotFoundError(f"queue {queue!r} has no dead-letter queue: run `videoconverter provision`")
        name = str(json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]).rsplit(":", 1)[-1]
        with self._lock:
            self._dead_letter_queues[queue] = name
        return name

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        url = self._url(self.dead_letter_queue(queue))
        seen: dict[str, DeadLetter] = {}
        receipts: list[str] = []
        while len(seen) < limit:
            messages = self._receive(url, MAX_BATCH_MESSAGES, 1, PEEK_VISIBILITY_SECONDS)
            if not messages:
                break
            for message in messages:
                receipts.append(message["ReceiptHandle"])
                seen.setdefault(message["MessageId"], dead_letter_of(queue, message))
        for receipt in receipts:  # visible again at once: this was only a look
            self._call(self._sqs.change_message_visibility, QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
        return sorted(seen.values(), key=lambda letter: letter.dead_lettered_at)[:limit]

    def redrive(self, queue: str, message_id: str | None = None) -> int:
        """Each match is sent to ``queue``, then deleted from the dead-letter queue; the others received on the way
        are made visible again at once (as ``dead_letters`` peeks), or when their
        :data:`REDRIVE_VISIBILITY_SECONDS` end if this process dies first: at least once, nothing lost."""
        url = self._url(self.dead_letter_queue(queue))
        moved = 0
        skipped: list[str] = []
        try:
            while messages := self._receive(url, MAX_BATCH_MESSAGES, 1, REDRIVE_VISIBILITY_SECONDS):
                for message in messages:
                    letter_id = dead_letter_id(message)
                    if message_id is not None and letter_id != message_id:
                        skipped.append(message["ReceiptHandle"])
                        continue
                    self._send(queue, message["Body"], {ID_ATTRIBUTE: letter_id})
                    self._call(self._sqs.delete_message, QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    moved += 1
        finally:
            for receipt in skipped:
                self._call(
                    self._sqs.change_message_visibility, QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
        return moved

    def depth(self, queue: str) -> QueueDepth:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        found = self._call(self._sqs.get_queue_attributes, QueueUrl=self._url(queue), AttributeNames=names)
        counts = [int(found.get("Attributes", {}).get(name, 0)) for name in names]
        return QueueDepth(visible=counts[0], in_flight=counts[1], delayed=counts[2])

    def close(self) -> None:
        self._sqs.close()
        self._sns.close()

    # --- plumbing -------------------------------------------------------------------------------------------

    def _url(self, queue: str) -> str:
        with self._lock:
            known = self._queue_urls.get(queue)
        if known:
            return known
        url = str(self._call(self._sqs.get_queue_url, QueueName=queue)["QueueUrl"])
        with self._lock:
            self._queue_urls[queue] = url
        return url

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return operation(**kwargs)
        except Exception as exc:
            raise self._translate(exc, kwargs.get("QueueName") or kwargs.get("QueueUrl")) from exc

    def _translate(self, exc: Exception, queue: object = None) -> Exception:
        code = error_code(exc)
        if code in QUEUE_MISSING_CODES:
            return QueueNotFoundError(f"no SQS queue {queue!r}: run `videoconverter provision` first")
        if code in {"NotFound", "NotFoundException"}:
            return QueueNotFoundError(f"no SNS topic: {exc}; run `videoconverter provision` first")
        if not code and type(exc).__module__.startswith(("botocore", "urllib3")):
            where = self.location.endpoint_url or f"AWS in {self.location.region}"
            return BrokerUnavailableError(f"cannot reach SNS/SQS at {where}: {exc}")
        return exc
