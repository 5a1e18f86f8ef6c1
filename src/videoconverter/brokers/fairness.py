"""Receiving from several queues fairly: the queue names a ``receive_any`` takes, and the order to try them in.

SQLite picks the oldest visible message over all the queues in one query and needs no order. SQS and RabbitMQ
cannot look into several queues at once, so they try one queue after another, starting each time with the queue
served least recently (:class:`Rotation`): with every queue full, successive receives alternate between them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence


def queue_names(queues: Sequence[str]) -> tuple[str, ...]:
    """The distinct names in ``queues``, in their order. Raises ValueError when there is none, TypeError for a
    bare string (a string is a sequence of one-letter names, never what the caller meant)."""
    if isinstance(queues, str):
        raise TypeError(f"receive_any takes a sequence of queue names, not the string {queues!r}")
    names = tuple(dict.fromkeys(queues))
    if not names:
        raise ValueError("receive_any needs at least one queue")
    return names


class Rotation:
    """Which of several queues to try first: the one served least recently (never served: first, in the caller's
    order). Thread-safe; one per broker instance, so every receive of the instance takes its turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ticks = itertools.count(1)
        self._served_at: dict[str, int] = {}  # queue -> tick of its last delivery; bounded by the queues named

    def order(self, queues: Sequence[str]) -> list[str]:
        with self._lock:
            return sorted(queues, key=lambda queue: self._served_at.get(queue, 0))  # sorted() is stable

    def served(self, queue: str) -> None:
        with self._lock:
            self._served_at[queue] = next(self._ticks)
