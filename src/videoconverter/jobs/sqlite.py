"""The embedded job store: SQLite (WAL), shared safely by many processes. URL: ``sqlite://PATH``."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoconverter import sqlite_db as sqlite
from videoconverter.jobs.sql import SCHEMA_TEMPLATE, SqlJobStore, missing_columns
from videoconverter.registry import path_from_url

_TYPES = {"real": "REAL", "big_integer": "INTEGER", "serial_key": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_SCHEMA = SCHEMA_TEMPLATE.format_map(_TYPES)


class SQLiteJobStore(SqlJobStore):
    """URL: ``sqlite://PATH``."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)
            if self._missing_columns():  # a table of an earlier release: checked again under the write lock
                with sqlite.write_transaction(self._conn) as db:
                    for column in self._missing_columns():
                        db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")

    @classmethod
    def from_url(cls, url: str) -> SQLiteJobStore:
        """The store in the database file ``url`` names (``sqlite://PATH``), created if missing."""
        return cls(path_from_url(url))

    def _missing_columns(self) -> list[str]:
        return missing_columns({row["name"] for row in self._conn.execute("PRAGMA table_info(jobs)")}, _TYPES)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        with self._lock, sqlite.write_transaction(self._conn) as db:
            return db.execute(sql, tuple(params)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
