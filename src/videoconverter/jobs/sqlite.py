"""The embedded job store: SQLite (WAL), shared safely by many processes. URL: ``sqlite://PATH``.

A transition rings the database's doorbell (:mod:`videoconverter.brokers.doorbell`, as the SQLite broker does for
its messages), so a process waiting for jobs to change (``jobs --wait``) wakes at once instead of polling.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from videoconverter import sqlite_db as sqlite
from videoconverter.brokers.doorbell import Doorbell
from videoconverter.jobs import queries as q
from videoconverter.jobs.sql import Dialect, Run, SqlJobStore, migrate
from videoconverter.jobs.sql_pieces import SqlPieces
from videoconverter.registry import path_from_url

#: SQLite compares TEXT byte by byte (BINARY), so the primary key's index serves key prefixes as it is.
DIALECT = Dialect(
    real="REAL",
    big_integer="INTEGER",
    serial_key="INTEGER PRIMARY KEY AUTOINCREMENT",
    key_bytes="key",
    for_update="",  # BEGIN IMMEDIATE already holds the database's write lock
    triggers=q.SQLITE_TRIGGERS,
)


class SQLiteJobStore(SqlPieces, SqlJobStore):
    """URL: ``sqlite://PATH``. Opening a database of an earlier version migrates it."""

    dialect = DIALECT

    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path)
        self._lock = threading.Lock()
        with self._transaction() as run:
            migrate(run, DIALECT, _columns_of)
        self._doorbell = Doorbell(path)
        self._waiter = threading.local()  # whether this thread listens to the doorbell yet

    @classmethod
    def from_url(cls, url: str) -> SQLiteJobStore:
        """The store in the database file ``url`` names (``sqlite://PATH``), created if missing."""
        return cls(path_from_url(url))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    @contextlib.contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[Run]:
        with self._lock, _synchronous(self._conn, durable), sqlite.write_transaction(self._conn) as db:

            def run(sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
                return db.execute(sql, tuple(params))

            yield run

    def _insert_rows(self, run: Run, rows: list[tuple[Any, ...]]) -> None:
        self._conn.executemany(q.IMPORT_JOB, rows)

    def _changed(self) -> None:
        self._doorbell.ring()

    def wait_for_change(self, timeout_seconds: float) -> None:
        """Sleep until a job of this database changes state (any process's store rings), or the timeout.

        A change between the caller's last read and this call is not missed: this thread listens from its first
        call on (which returns at once, as a ring before it had nowhere to go), and a ring that comes while it
        is not waiting stays in its socket until the next call."""
        if not getattr(self._waiter, "listening", False):
            self._waiter.listening = True
            self._doorbell.arm()
            return
        self._doorbell.wait(timeout_seconds)
        self._doorbell.arm()  # what rang is read by the caller next

    def close(self) -> None:
        self._doorbell.close()
        with self._lock:
            self._conn.close()


def _columns_of(run: Run, table: str) -> set[str]:
    return {row["name"] for row in run(f"PRAGMA table_info({table})").fetchall()}


@contextlib.contextmanager
def _synchronous(conn: sqlite3.Connection, durable: bool) -> Iterator[None]:
    """A commit that is not ``durable`` skips the WAL's fsync (``synchronous=NORMAL``, for that commit only);
    the next durable commit syncs the WAL, these frames included."""
    if durable:
        yield
        return
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous={sqlite.SYNCHRONOUS}")
