"""The embedded job store: SQLite (WAL), shared safely by many processes. URL: ``sqlite://PATH``."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoconverter import sqlite
from videoconverter.jobs.sql import SqlJobStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT NOT NULL,
    source_etag TEXT NOT NULL,
    rendition TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress_percent REAL NOT NULL DEFAULT 0,
    output_url TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    sequencer TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key, source_etag, rendition)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS job_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    rendition TEXT NOT NULL,
    at REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_by_key ON job_logs (key, id);
"""


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
