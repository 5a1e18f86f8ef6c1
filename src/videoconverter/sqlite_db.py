"""SQLite connections shared by the embedded broker and job store: WAL, full sync, explicit write transactions."""

from __future__ import annotations

import contextlib
import sqlite3
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
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed ack or publish survives power loss, not only a process crash.
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open SQLite database {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    return conn


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
