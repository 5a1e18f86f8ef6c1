"""The embedded broker: topic, queues and dead-letter queues in one SQLite database (WAL).

Many processes may share the file. Every state change is one ``BEGIN IMMEDIATE`` transaction, so a message is
never leased twice: the receipt changes on every delivery and a stale one is refused. Dead-lettered messages
keep their retention from the moment they were dead-lettered (SQS counts from the original send instead, and
so needs a longer retention on the DLQ).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from videoconverter import sqlite_db as sqlite
from videoconverter.brokers.base import (
    Capabilities,
    ClientPublishedTopics,
    DeadLetter,
    Delivery,
    QueueDepth,
    QueueSpec,
    Topology,
)
from videoconverter.brokers.doorbell import Doorbell
from videoconverter.brokers.fairness import queue_names
from videoconverter.errors import QueueNotFoundError, StaleReceiptError
from videoconverter.registry import path_from_url

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    dead_letter_queue TEXT,           -- NULL for a dead-letter queue itself
    retention_seconds INTEGER NOT NULL,
    max_receive_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL, queue TEXT NOT NULL, PRIMARY KEY (topic, queue)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,                     -- set while leased; changes on every delivery
    source_queue TEXT,                -- for dead letters: where the message came from
    reason TEXT,
    dead_lettered_at REAL
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, id);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (queue, sent_at);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_receipt ON messages (receipt);
"""

EXPIRY_INTERVAL_SECONDS = 60.0
MAX_IDLE_WAIT_SECONDS = 5.0  # re-check now and then even without a ring, e.g. after a clock jump


class SQLiteBroker(ClientPublishedTopics):
    """URL: ``sqlite://PATH``."""

    capabilities = Capabilities(leases_outlive_holder=True)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite.connect(path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)
        self._doorbell = Doorbell(path)
        self._specs: dict[str, QueueSpec] = {}
        self._last_expiry = 0.0

    @classmethod
    def from_url(cls, url: str) -> SQLiteBroker:
        """The broker in the database file ``url`` names (``sqlite://PATH``), created if missing."""
        return cls(path_from_url(url))

    # --- topology ---------------------------------------------------------------------------------------

    def declare(self, topology: Topology) -> None:
        with self._lock, sqlite.write_transaction(self._conn) as db:
            db.execute("INSERT OR IGNORE INTO topics (name) VALUES (?)", (topology.topic,))
            for spec in topology.queues:
                db.execute(
                    "INSERT INTO queues VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "dead_letter_queue=excluded.dead_letter_queue, retention_seconds=excluded.retention_seconds,"
                    " max_receive_count=excluded.max_receive_count",
                    (spec.name, spec.dead_letter_queue, spec.message_retention_seconds, spec.max_receive_count),
                )
                db.execute(
                    "INSERT OR IGNORE INTO queues VALUES (?, NULL, ?, ?)",
                    (spec.dead_letter_queue, spec.message_retention_seconds, spec.max_receive_count),
                )
                db.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?)", (topology.topic, spec.name))
        self._specs.clear()

    def _spec(self, queue: str) -> QueueSpec:
        spec = self._specs.get(queue)
        if spec is None:
            with self._lock:
                row = self._conn.execute("SELECT * FROM queues WHERE name = ?", (queue,)).fetchone()
            if row is None:
                raise QueueNotFoundError(f"queue {queue!r} does not exist: run `videoconverter provision` first")
            spec = QueueSpec(
                row["name"], row["dead_letter_queue"] or "", row["retention_seconds"], row["max_receive_count"]
            )
            self._specs[queue] = spec
        return spec

    # --- sending ----------------------------------------------------------------------------------------

    def publish(self, topic: str, body: str) -> list[str]:
        with self._lock, sqlite.write_transaction(self._conn) as db:
            if db.execute("SELECT 1 FROM topics WHERE name = ?", (topic,)).fetchone() is None:
                raise QueueNotFoundError(f"topic {topic!r} does not exist: run `videoconverter provision` first")
            queues = [r[0] for r in db.execute("SELECT queue FROM subscriptions WHERE topic = ?", (topic,))]
            if not queues:
                raise QueueNotFoundError(f"topic {topic!r} has no subscribed queue: the message would be lost")
            ids = [self._insert(db, queue, body) for queue in queues]
        self._doorbell.ring()
        return ids

    def send(self, queue: str, body: str) -> str:
        self._spec(queue)
        with self._lock, sqlite.write_transaction(self._conn) as db:
            message_id = self._insert(db, queue, body)
        self._doorbell.ring()
        return message_id

    @staticmethod
    def _insert(db: sqlite3.Connection, queue: str, body: str) -> str:
        message_id = str(uuid.uuid4())
        now = time.time()
        db.execute(
            "INSERT INTO messages (message_id, queue, body, sent_at, visible_at) VALUES (?, ?, ?, ?, ?)",
            (message_id, queue, body, now, now),
        )
        return message_id

    # --- receiving --------------------------------------------------------------------------------------

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
        """The oldest visible messages over all of ``queues`` (by when they became visible), in one transaction."""
        specs = {name: self._spec(name) for name in queue_names(queues)}
        deadline = time.monotonic() + wait_seconds
        while True:
            self._doorbell.arm()
            deliveries = self._claim(specs, max_messages, visibility_timeout_seconds)
            remaining = deadline - time.monotonic()
            if deliveries or remaining <= 0:
                return deliveries
            self._doorbell.wait(min(remaining, self._seconds_until_next_visible(specs), MAX_IDLE_WAIT_SECONDS))

    def _claim(
        self, specs: Mapping[str, QueueSpec], max_messages: int, visibility_timeout_seconds: int
    ) -> list[Delivery]:
        now = time.time()
        among = f"queue IN ({', '.join('?' * len(specs))})"
        with self._lock:
            ready = self._conn.execute(  # a read first: idle polls never take the write lock
                f"SELECT 1 FROM messages WHERE {among} AND visible_at <= ? LIMIT 1", (*specs, now)
            ).fetchone()
            if ready is None and now - self._last_expiry < EXPIRY_INTERVAL_SECONDS:
                return []
            with sqlite.write_transaction(self._conn) as db:
                if now - self._last_expiry >= EXPIRY_INTERVAL_SECONDS:
                    self._expire(db, now)
                rows = db.execute(
                    "SELECT id, queue, message_id, body, receive_count, sent_at FROM messages "
                    f"WHERE {among} AND visible_at <= ? ORDER BY visible_at, id LIMIT ?",
                    (*specs, now, max_messages),
                ).fetchall()
                deliveries = []
                for row in rows:
                    spec = specs[row["queue"]]
                    if spec.dead_letter_queue and row["receive_count"] >= spec.max_receive_count:
                        reason = (
                            f"received {row['receive_count']} times without being acknowledged "
                            "(workers crashed or timed out)"
                        )
                        self._move_to_dead_letters(db, "id = ?", row["id"], spec, reason, now)
                        continue
                    receipt = uuid.uuid4().hex
                    db.execute(
                        "UPDATE messages SET receipt = ?, visible_at = ?, receive_count = receive_count + 1"
                        " WHERE id = ?",
                        (receipt, now + visibility_timeout_seconds, row["id"]),
                    )
                    deliveries.append(
                        Delivery(
                            spec.name, row["message_id"], row["body"], receipt, row["receive_count"] + 1, row["sent_at"]
                        )
                    )
        return deliveries

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "DELETE FROM messages WHERE sent_at < ? - (SELECT retention_seconds FROM queues "
            "WHERE queues.name = messages.queue)",
            (now,),
        )
        self._last_expiry = now

    def _seconds_until_next_visible(self, specs: Mapping[str, QueueSpec]) -> float:
        among = ", ".join("?" * len(specs))
        with self._lock:
            row = self._conn.execute(
                f"SELECT MIN(visible_at) FROM messages WHERE queue IN ({among})", tuple(specs)
            ).fetchone()
        if row[0] is None:
            return MAX_IDLE_WAIT_SECONDS
        return max(0.0, float(row[0]) - time.time())

    # --- settling ---------------------------------------------------------------------------------------

    def ack(self, delivery: Delivery) -> None:
        self._settle(delivery, "DELETE FROM messages WHERE receipt = ?", (delivery.receipt,))

    def extend(self, delivery: Delivery, visibility_timeout_seconds: int) -> None:
        self._settle(
            delivery,
            "UPDATE messages SET visible_at = ? WHERE receipt = ?",
            (time.time() + visibility_timeout_seconds, delivery.receipt),
        )

    def release(self, delivery: Delivery, delay_seconds: float = 0.0) -> None:
        self._settle(
            delivery,
            "UPDATE messages SET visible_at = ?, receipt = NULL WHERE receipt = ?",
            (time.time() + delay_seconds, delivery.receipt),
        )
        self._doorbell.ring()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        spec = self._spec(delivery.queue)
        with self._lock, sqlite.write_transaction(self._conn) as db:
            if not self._move_to_dead_letters(db, "receipt = ?", delivery.receipt, spec, reason, time.time()):
                raise StaleReceiptError(f"message {delivery.message_id} was delivered again: not dead-lettered")

    def _settle(self, delivery: Delivery, sql: str, params: tuple[object, ...]) -> None:
        with self._lock, sqlite.write_transaction(self._conn) as db:
            if db.execute(sql, params).rowcount == 0:
                raise StaleReceiptError(
                    f"message {delivery.message_id} on {delivery.queue} was delivered again or is gone; "
                    "this worker no longer owns it"
                )

    @staticmethod
    def _move_to_dead_letters(
        db: sqlite3.Connection, where: str, value: object, spec: QueueSpec, reason: str, now: float
    ) -> bool:
        cursor = db.execute(
            "UPDATE messages SET queue = ?, source_queue = ?, reason = ?, dead_lettered_at = ?, sent_at = ?, "
            f"visible_at = ?, receipt = NULL, receive_count = 0 WHERE {where}",
            (spec.dead_letter_queue, spec.name, reason, now, now, now, value),
        )
        return cursor.rowcount > 0

    # --- dead letters and inspection --------------------------------------------------------------------

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        spec = self._spec(queue)
        with self._lock:
            rows = self._conn.execute(
                "SELECT message_id, body, reason, source_queue, dead_lettered_at FROM messages "
                "WHERE queue = ? ORDER BY id LIMIT ?",
                (spec.dead_letter_queue, limit),
            ).fetchall()
        return [
            DeadLetter(
                r["message_id"], r["body"], r["reason"] or "", r["source_queue"] or queue, r["dead_lettered_at"] or 0.0
            )
            for r in rows
        ]

    def redrive(self, queue: str, message_id: str | None = None) -> int:
        spec = self._spec(queue)
        now = time.time()
        with self._lock, sqlite.write_transaction(self._conn) as db:
            moved = db.execute(
                "UPDATE messages SET queue = ?, source_queue = NULL, reason = NULL, dead_lettered_at = NULL, "
                "sent_at = ?, visible_at = ?, receipt = NULL, receive_count = 0 "
                "WHERE queue = ? AND (? IS NULL OR message_id = ?)",
                (spec.name, now, now, spec.dead_letter_queue, message_id, message_id),
            ).rowcount
        if moved:
            self._doorbell.ring()
        return moved

    def depth(self, queue: str) -> QueueDepth:
        self._spec(queue)
        with self._lock:
            row = self._conn.execute(
                "SELECT COALESCE(SUM(visible_at <= :now), 0), "
                "COALESCE(SUM(visible_at > :now AND receipt IS NOT NULL), 0), "
                "COALESCE(SUM(visible_at > :now AND receipt IS NULL), 0) FROM messages WHERE queue = :queue",
                {"now": time.time(), "queue": queue},
            ).fetchone()
        return QueueDepth(row[0], row[1], row[2])

    def close(self) -> None:
        self._doorbell.close()
        with self._lock:
            self._conn.close()
