"""SQLite connections shared by the embedded broker and job store: WAL, full sync, explicit write transactions."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from videoconverter.errors import ConfigError

BUSY_TIMEOUT_SECONDS = 30.0
SYNCHRONOUS = "FULL"


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a database that many processes and threads may share."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
        _use_wal(conn)
        # FULL: a committed ack or publish survives power loss, not only a process crash.
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open SQLite database {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a new database to WAL, waiting for the other processes that open it at the same moment.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once, without its busy handler,
    when another connection is opening the file too (`up` and a `ls` on a fresh data directory; CI saw `up` die so).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause_seconds = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(pause_seconds)  # a lock retry, as SQLite's own busy handler does
        pause_seconds = min(pause_seconds * 2, 0.1)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write cannot race."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
