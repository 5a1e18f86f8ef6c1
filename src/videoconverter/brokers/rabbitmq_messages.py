"""How videoconverter's queues and messages look on RabbitMQ: queue arguments, headers, delays, dead letters.

Pure functions and constants, kept apart from the connection handling in :mod:`videoconverter.brokers.rabbitmq`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from videoconverter.brokers.base import DeadLetter, QueueSpec

#: Delays of a delayed release, rounded up to the next rung (the largest is SQS's largest message delay).
DELAY_LADDER_SECONDS = (1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 900)
CONSUMER_TIMEOUT_SECONDS = 24 * 3600
#: Dead-letter queues are peeked by taking messages and handing them back, which counts as a delivery on some
#: versions (and quorum queues default to a limit of 20 since 4.0): set one high enough never to be reached.
DEAD_LETTER_QUEUE_DELIVERY_LIMIT = 1_000_000_000
DEAD_LETTER_QUEUE_SUFFIX = "-dlq"  # the dead-letter queue of a queue this instance did not declare

PRIOR_DELIVERIES_HEADER = "x-videoconverter-prior-deliveries"
REASON_HEADER = "x-videoconverter-reason"
SOURCE_QUEUE_HEADER = "x-videoconverter-source-queue"
DEAD_LETTERED_AT_HEADER = "x-videoconverter-dead-lettered-at"
OWN_HEADER_PREFIX = "x-videoconverter-"


def delay_queue_name(queue: str, delay_seconds: int) -> str:
    return f"{queue}-delay-{delay_seconds}s"


def delay_rung(delay_seconds: float) -> int:
    """The delay queue's TTL for a release after ``delay_seconds``: the next rung up (or the top one)."""
    for rung in DELAY_LADDER_SECONDS:
        if delay_seconds <= rung:
            return rung
    return DELAY_LADDER_SECONDS[-1]


def attempt_of(headers: dict[str, Any] | None) -> int:
    """1 on the first delivery; counts the queue's redeliveries and those before a delayed retry."""
    headers = headers or {}
    return 1 + _int(headers.get("x-delivery-count")) + _int(headers.get(PRIOR_DELIVERIES_HEADER))


def _int(value: object) -> int:
    return int(value) if isinstance(value, (int, float, str)) and str(value).lstrip("-").isdigit() else 0


def work_queue_arguments(spec: QueueSpec) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": max(0, spec.max_receive_count - 1),
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": spec.dead_letter_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-consumer-timeout": CONSUMER_TIMEOUT_SECONDS * 1000,
        # Retention: an expired message is dead-lettered (reason "expired"), never dropped. A retry with
        # back-off is a new message with a fresh TTL, so the TTL cannot expire a job that is being retried.
        "x-message-ttl": spec.message_retention_seconds * 1000,
    }


def delay_queue_arguments(queue: str, delay_seconds: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": delay_seconds * 1000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_queue_arguments() -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DEAD_LETTER_QUEUE_DELIVERY_LIMIT,
    }


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def dead_letter_id(properties: Any) -> str:
    """The id ``dead_letters`` reports for a dead-lettered message, and ``redrive`` matches on."""
    return str(properties.message_id or "")


def redriven_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """The headers of a message moved back from its dead-letter queue (given the ones a copy keeps): no reason,
    and no deliveries before, so its attempt count starts again at 1."""
    moved = {k: v for k, v in headers.items() if k not in {REASON_HEADER, SOURCE_QUEUE_HEADER, DEAD_LETTERED_AT_HEADER}}
    moved[PRIOR_DELIVERIES_HEADER] = 0
    return moved


def dead_letter_from(queue: str, properties: Any, body: bytes) -> DeadLetter:
    """A dead letter from our headers, or from RabbitMQ's ``x-death`` when the delivery limit moved it."""
    headers = properties.headers or {}
    reason = headers.get(REASON_HEADER)
    source = headers.get(SOURCE_QUEUE_HEADER)
    at = headers.get(DEAD_LETTERED_AT_HEADER)
    deaths = headers.get("x-death") or []
    death = deaths[0] if deaths and isinstance(deaths[0], dict) else {}
    if reason is None:
        cause = death.get("reason", "unknown")
        reason = (
            "delivery_limit: delivered more often than the queue's limit without being acknowledged "
            "(workers crashed or timed out)"
            if cause == "delivery_limit"
            else f"dead-lettered by RabbitMQ: {cause}"
        )
    if at is None:
        when = death.get("time")
        at = when.timestamp() if isinstance(when, datetime) else properties.timestamp or 0.0
    dead_lettered_at = float(at) if isinstance(at, (int, float, str)) and _is_number(str(at)) else 0.0
    return DeadLetter(
        dead_letter_id(properties),
        body.decode("utf-8", errors="replace"),
        str(reason),
        str(source or death.get("queue") or queue),
        dead_lettered_at,
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
