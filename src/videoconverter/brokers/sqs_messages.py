"""The SQS broker's messages: SQS's limits, our message attributes, what a delivery and a dead letter say.

Every message this broker sends carries its own attributes (prefix ``vc-``): the id every copy of a publish
shares, the deliveries before a delayed retry, the first send time, and for a dead letter its reason, source
queue and time. Messages S3 or SNS sent without them fall back to SQS's own attributes. A message reads the
same whether the broker received it (:func:`delivery_of_message`) or Lambda's SQS trigger passed it in an event
(:func:`delivery_of_record`), which spells the same fields in camel case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from videoconverter.brokers.base import DeadLetter, Delivery, QueueSpec
from videoconverter.errors import InvalidEventError

MAX_WAIT_SECONDS = 20  # SQS's longest long poll
#: A receive from several queues long-polls each in turn for this long: a message on another queue waits at most
#: this much times the number of other queues (SQS waits whole seconds: 1 is the shortest wait that is not a poll).
MULTI_QUEUE_WAIT_SECONDS = 1
MAX_BATCH_MESSAGES = 10
MAX_VISIBILITY_TIMEOUT_SECONDS = 12 * 3600
MAX_DELAY_SECONDS = 15 * 60
MAX_RETENTION_SECONDS = 14 * 24 * 3600
#: A standard dead-letter queue keeps a message's original enqueue time, so it must keep messages longer than its
#: source queue: the source keeps at most this much less than the dead-letter queue's 14 days.
DEAD_LETTER_RETENTION_MARGIN_SECONDS = 2 * 24 * 3600
MAX_REASON_CHARACTERS = 4000
PEEK_VISIBILITY_SECONDS = 10
#: How long a redrive holds the dead-letter queue's messages it received: ample time to move one.
REDRIVE_VISIBILITY_SECONDS = 60
SHORT_POLL_INTERVAL_SECONDS = 0.2
SUBSCRIPTIONS_CHECK_SECONDS = 60.0  # how long a topic seen with subscribers is trusted to keep them

ID_ATTRIBUTE = "vc-message-id"
EARLIER_ATTEMPTS_ATTRIBUTE = "vc-earlier-attempts"
SENT_AT_ATTRIBUTE = "vc-sent-at"
REASON_ATTRIBUTE = "vc-dead-letter-reason"
SOURCE_QUEUE_ATTRIBUTE = "vc-source-queue"
DEAD_LETTERED_AT_ATTRIBUTE = "vc-dead-lettered-at"

QUEUE_MISSING_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
RECEIPT_REFUSED_CODES = {
    "ReceiptHandleIsInvalid",
    "InvalidParameterValue",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
    "InvalidReceiptHandle",
}


def source_retention_seconds(spec: QueueSpec) -> int:
    """The retention of a source queue: as configured, but shorter than its dead-letter queue's 14 days."""
    return max(60, min(spec.message_retention_seconds, MAX_RETENTION_SECONDS - DEAD_LETTER_RETENTION_MARGIN_SECONDS))


def string_attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def our_attributes(
    message: Mapping[str, Any], field: str = "MessageAttributes", value: str = "StringValue"
) -> dict[str, str]:
    """The message's attributes of this broker (prefix ``vc-``), by name."""
    return {
        name: str(attribute.get(value, ""))
        for name, attribute in (message.get(field) or {}).items()
        if name.startswith("vc-") and isinstance(attribute, Mapping)
    }


def delivery_of_message(queue: str, message: Mapping[str, Any]) -> Delivery:
    """The :class:`Delivery` a message that ``ReceiveMessage`` returned stands for."""
    return _delivery(
        queue, our_attributes(message), message.get("Attributes") or {},
        message["MessageId"], message["Body"], message["ReceiptHandle"],
    )  # fmt: skip


def delivery_of_record(record: Mapping[str, Any]) -> Delivery:
    """The :class:`Delivery` a record of a Lambda SQS event stands for: the same as :func:`delivery_of_message`
    gives for the message. Raises ``InvalidEventError`` for anything else."""
    try:
        return _delivery(
            str(record["eventSourceARN"]).rsplit(":", 1)[-1],
            our_attributes(record, "messageAttributes", "stringValue"),
            record.get("attributes") or {},
            str(record["messageId"]), str(record["body"]), str(record["receiptHandle"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidEventError(f"not an SQS record: {exc!r}") from exc


def _delivery(
    queue: str, ours: Mapping[str, str], system: Mapping[str, Any], message_id: str, body: str, receipt: str
) -> Delivery:
    return Delivery(
        queue=queue,
        message_id=ours.get(ID_ATTRIBUTE) or message_id,
        body=body,
        receipt=receipt,
        attempt=int(ours.get(EARLIER_ATTEMPTS_ATTRIBUTE, "0")) + int(system.get("ApproximateReceiveCount", 1)),
        sent_at=float(ours.get(SENT_AT_ATTRIBUTE) or int(system.get("SentTimestamp", 0)) / 1000),
    )


def dead_letter_id(message: dict[str, Any]) -> str:
    """The id ``dead_letters`` reports for a dead-letter queue's message, and ``redrive`` matches on."""
    return our_attributes(message).get(ID_ATTRIBUTE) or str(message["MessageId"])


def dead_letter_of(queue: str, message: dict[str, Any]) -> DeadLetter:
    attributes = our_attributes(message)
    system = message.get("Attributes", {})
    sent_at = int(system.get("SentTimestamp", 0)) / 1000
    reason = attributes.get(REASON_ATTRIBUTE) or (
        "received more often than the queue's receive limit (maxReceiveCount) allows without being settled: "
        "every worker that took it died or lost its lease"
    )
    return DeadLetter(
        message_id=dead_letter_id(message),
        body=message["Body"],
        reason=reason,
        source_queue=attributes.get(SOURCE_QUEUE_ATTRIBUTE, queue),
        dead_lettered_at=float(attributes.get(DEAD_LETTERED_AT_ATTRIBUTE) or sent_at),
    )
