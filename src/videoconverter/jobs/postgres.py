"""The PostgreSQL job store, for workers on many machines. URL: ``postgresql://USER:PASSWORD@HOST/DB``.

Optional extra ``videoconverter[postgres]`` (psycopg 3). ``?schema=NAME`` keeps the tables in their own schema
(created if needed); the other query parameters go to libpq. Each statement commits on its own, or with the
others of its transition. Opening a database of an earlier version migrates it, under an advisory lock.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from videoconverter.errors import ConfigError
from videoconverter.jobs import queries as q
from videoconverter.jobs.sql import Dialect, Run, SqlJobStore, migrate
from videoconverter.jobs.sql_pieces import SqlPieces
from videoconverter.logs import redact

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Serialises schema set-up and migration between stores opening the same database at once.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('videoconverter.jobs.schema'))"
#: The database's collation may sort linguistically: prefix ranges compare the key byte by byte ("C").
DIALECT = Dialect(
    real="DOUBLE PRECISION",
    big_integer="BIGINT",
    serial_key="BIGSERIAL PRIMARY KEY",
    key_bytes='(key COLLATE "C")',
    for_update=" FOR UPDATE",
    triggers=q.POSTGRES_TRIGGERS,
    extra_indexes=('CREATE INDEX IF NOT EXISTS jobs_by_key_bytes ON jobs ((key COLLATE "C"))',),
)
_COPY_JOBS = f"COPY jobs_import ({', '.join(q.JOB_COLUMNS)}) FROM STDIN"
_COLUMNS = "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?"


class PostgresJobStore(SqlPieces, SqlJobStore):
    dialect = DIALECT

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
        if schema:
            self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._conn.execute(f'SET search_path TO "{schema}"')
        with self._transaction() as run:
            run(_MIGRATION_LOCK)
            migrate(run, DIALECT, _columns_of)

    @classmethod
    def from_url(cls, url: str) -> PostgresJobStore:
        """The store in the database ``url`` names (see the module docstring), its tables created if missing."""
        return cls(url)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(_placeholders(sql), tuple(params)).fetchall()

    @contextlib.contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[Run]:
        with self._lock, self._conn.transaction():

            def run(sql: str, params: Sequence[Any] | None = None) -> Any:
                if params is None:  # DDL and fixed statements: no placeholders to translate
                    return self._conn.execute(sql)
                return self._conn.execute(_placeholders(sql), tuple(params))

            if not durable:  # the commit returns before the WAL is flushed (a power cut may lose it, never half)
                run("SET LOCAL synchronous_commit = off")
            yield run

    def _insert_rows(self, run: Run, rows: list[tuple[Any, ...]]) -> None:
        """COPY into a temporary table, then one INSERT: the counting triggers fire once for the whole import."""
        run("CREATE TEMPORARY TABLE jobs_import (LIKE jobs) ON COMMIT DROP")
        with self._conn.cursor().copy(_COPY_JOBS) as copy:
            for row in rows:
                copy.write_row(row)
        run("INSERT INTO jobs SELECT * FROM jobs_import ON CONFLICT (key, source_etag, rendition) DO NOTHING")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _columns_of(run: Run, table: str) -> set[str]:
    return {row["column_name"] for row in run(_COLUMNS, (table,)).fetchall()}


def _placeholders(sql: str) -> Any:
    """Portable ``?`` placeholders to psycopg's ``%s`` (our statements contain no literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")
