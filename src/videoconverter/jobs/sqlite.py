"""The embedded job store: SQLite (WAL), shared safely by many processes. URL: ``sqlite://PATH``."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from videoconverter import sqlite_db as sqlite
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

    @classmethod
    def from_url(cls, url: str) -> SQLiteJobStore:
        """The store in the database file ``url`` names (``sqlite://PATH``), created if missing."""
        return cls(path_from_url(url))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Run]:
        with self._lock, sqlite.write_transaction(self._conn) as db:

            def run(sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
                return db.execute(sql, tuple(params))

            yield run

    def _insert_rows(self, run: Run, rows: list[tuple[Any, ...]]) -> None:
        self._conn.executemany(q.IMPORT_JOB, rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _columns_of(run: Run, table: str) -> set[str]:
    return {row["name"] for row in run(f"PRAGMA table_info({table})").fetchall()}
