"""The PostgreSQL job store, for workers on many machines. URL: ``postgresql://USER:PASSWORD@HOST/DB``.

Optional extra ``videoconverter[postgres]`` (psycopg 3). ``?schema=NAME`` keeps the tables in their own schema
(created if needed); the other query parameters go to libpq. Each statement commits on its own.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from videoconverter.errors import ConfigError
from videoconverter.jobs.sql import SqlJobStore
from videoconverter.logs import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT NOT NULL,
    source_etag TEXT NOT NULL,
    rendition TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    progress_percent DOUBLE PRECISION NOT NULL DEFAULT 0,
    output_url TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    sequencer TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key, source_etag, rendition)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS job_logs (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    rendition TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_by_key ON job_logs (key, id);
"""
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresJobStore(SqlJobStore):
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", "")
        if schema and not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"jobs: schema {schema!r} must be lowercase letters, digits and _")
        dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise ConfigError(f"jobs: cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
        self._lock = threading.Lock()
        with self._lock, self._conn.transaction():
            if schema:
                self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                self._conn.execute(f'SET search_path TO "{schema}"')
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(statement)

    @classmethod
    def from_url(cls, url: str) -> PostgresJobStore:
        return cls(url)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._conn.execute(_placeholders(sql), tuple(params)).fetchall()

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        with self._lock:
            return self._conn.execute(_placeholders(sql), tuple(params)).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _placeholders(sql: str) -> str:
    """Portable ``?`` placeholders to psycopg's ``%s`` (our statements contain no literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")
