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
from videoconverter.jobs.sql import SCHEMA_TEMPLATE, SqlJobStore, missing_columns
from videoconverter.logs import redact

_TYPES = {"real": "DOUBLE PRECISION", "big_integer": "BIGINT", "serial_key": "BIGSERIAL PRIMARY KEY"}
_SCHEMA = SCHEMA_TEMPLATE.format_map(_TYPES)
_COLUMNS = (
    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'jobs'"
)
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
            # A table of an earlier release: looked at first, so that an up-to-date one is not locked to alter it.
            present = {row["column_name"] for row in self._conn.execute(_COLUMNS).fetchall()}
            for column in missing_columns(present, _TYPES):
                self._conn.execute(f"ALTER TABLE jobs ADD COLUMN IF NOT EXISTS {column}")

    @classmethod
    def from_url(cls, url: str) -> PostgresJobStore:
        """The store in the database ``url`` names (see the module docstring), its tables created if missing."""
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
