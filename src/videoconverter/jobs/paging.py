"""What every job store shares to page: limits, opaque keyset cursors, filters applied to a record.

A cursor is the position of the last record of a page in the listing's order: its time (``created_at`` for
:meth:`~videoconverter.jobs.base.JobStore.page`, ``updated_at`` for ``changes``) and its identity, encoded as
URL-safe base64 of a JSON array. The next page starts strictly after it: a keyset, never an OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Iterable
from enum import StrEnum
from typing import NamedTuple

from videoconverter.errors import InvalidQueryError
from videoconverter.jobs.base import MAX_PAGE_SIZE, JobFilter, JobRecord, JobState

#: The highest code point: ``key < prefix + PREFIX_END`` bounds the keys that start with ``prefix``.
PREFIX_END = "\U0010ffff"


class Order(StrEnum):
    CREATED = "created"  # page(): newest first
    UPDATED = "updated"  # changes(): oldest change first


class Position(NamedTuple):
    """Where a record sits in a listing: its time, then its identity (the tie-breakers, in this order)."""

    at: float
    key: str
    source_etag: str
    rendition: str


def position(record: JobRecord, order: Order) -> Position:
    at = record.created_at if order is Order.CREATED else record.updated_at
    return Position(at, record.id.key, record.id.source_etag, record.id.rendition)


def check_limit(limit: int) -> int:
    """``limit`` if it is a valid page size, else InvalidQueryError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidQueryError(f"limit: expected a whole number from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    return limit


def encode_cursor(order: Order, at: Position) -> str:
    data = json.dumps([order.value, *at], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_cursor(order: Order, cursor: str) -> Position:
    """The position a cursor of a listing in ``order`` names. Raises InvalidQueryError when it is malformed."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        data = None
    if (
        isinstance(data, list)
        and len(data) == 5
        and data[0] == order.value
        and isinstance(data[1], (int, float))
        and not isinstance(data[1], bool)
        and all(isinstance(part, str) for part in data[2:])
    ):
        return Position(float(data[1]), data[2], data[3], data[4])
    raise InvalidQueryError(f"cursor: {cursor[:40]!r} is not a cursor of this listing (use a next_cursor as given)")


def next_cursor(records: list[JobRecord], limit: int, order: Order) -> str | None:
    """The cursor after the page ``records[:limit]``; None when ``records`` (fetched with one extra) ends there."""
    return encode_cursor(order, position(records[limit - 1], order)) if len(records) > limit else None


def matches(record: JobRecord, where: JobFilter) -> bool:
    return (
        (not where.states or record.state in where.states)
        and where.rendition in (None, record.id.rendition)
        and record.id.key.startswith(where.key_prefix)
    )


def newest_first(runs: Iterable[list[JobRecord]], limit: int) -> list[JobRecord]:
    """The first ``limit`` records of several runs that are each newest first, merged (ties as page() orders)."""
    merged = heapq.merge(*runs, key=lambda r: position(r, Order.CREATED), reverse=True)
    return [record for _, record in zip(range(limit), merged, strict=False)]


def states_of(where: JobFilter) -> tuple[JobState, ...]:
    """The states a listing reads, one index range each (all of them when the filter names none)."""
    return tuple(dict.fromkeys(where.states)) if where.states else tuple(JobState)


def parse_states(values: Iterable[str]) -> tuple[JobState, ...]:
    """States named as text (each value may list several, comma-separated). Raises InvalidQueryError."""
    states: list[JobState] = []
    for value in values:
        for name in filter(None, (part.strip() for part in value.split(","))):
            if name not in JobState._value2member_map_:
                known = ", ".join(s.value for s in JobState)
                raise InvalidQueryError(f"state: unknown state {name!r} (one of {known})")
            states.append(JobState(name))
    return tuple(dict.fromkeys(states))


def parse_limit(text: str | None, default: int) -> int:
    """A page size given as text (None: ``default``). Raises InvalidQueryError."""
    if text is None:
        return default
    try:
        return check_limit(int(text.strip()))
    except ValueError:
        raise InvalidQueryError(f"limit: expected a whole number from 1 to {MAX_PAGE_SIZE}, got {text!r}") from None
