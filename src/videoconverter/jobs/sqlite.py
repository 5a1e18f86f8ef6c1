"""The embedded job store: SQLite (WAL), shared safely by many processes. URL: ``sqlite://PATH``."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoconverter import sqlite_db as sqlite
from videoconverter.jobs.sql import SCHEMA_TEMPLATE, SqlJobStore

_SCHEMA = SCHEMA_TEMPLATE.format(real="REAL", serial_key="INTEGER PRIMARY KEY AUTOINCREMENT")


class SQLiteJobStore(SqlJobStore):
    """URL: ``sqlite://PATH``."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        with self._lock, sqlite.write_transaction(self._conn) as db:
            return db.execute(sql, tuple(params)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
