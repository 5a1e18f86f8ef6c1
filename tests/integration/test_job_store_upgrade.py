"""A job table created by an earlier release (without ``output_size``, ``quality`` or ``timeline``) is brought up to
date when it opens."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tests.conftest import require_service
from tests.contract.conftest import POSTGRES_URL, reachable
from videoconverter.jobs import open_job_store
from videoconverter.jobs import queries as q
from videoconverter.jobs.base import JobId
from videoconverter.jobs.timeline import Timeline

JOB = JobId("holiday.mp4", "etag1", "720p")
#: The schema before output_size was added (the tables of version 1).
EARLIER_SCHEMA = ";".join((q.CREATE_JOBS.replace("    output_size {big_integer},\n", ""), q.CREATE_JOB_LOGS)) + ";"


def test_an_earlier_sqlite_table_gains_the_output_size(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(EARLIER_SCHEMA.format(real="REAL", serial_key="INTEGER PRIMARY KEY AUTOINCREMENT"))
        conn.execute(
            "INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at) "
            "VALUES ('holiday.mp4', 'etag1', '720p', 'running', 1, 1)"
        )
    conn.close()
    for _ in range(2):  # the second open finds the column there
        store = open_job_store(f"sqlite://{path}")
        assert store.finish(JOB, "s3://out/holiday.mp4", output_size=1234).output_size == 1234
        store.close()


def test_an_earlier_postgres_table_gains_the_output_size() -> None:
    require_service(reachable(POSTGRES_URL, 5432), "no PostgreSQL server")
    import psycopg

    schema = f"vc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        earlier = EARLIER_SCHEMA.format(real="DOUBLE PRECISION", serial_key="BIGSERIAL PRIMARY KEY")
        for statement in filter(str.strip, earlier.split(";")):
            conn.execute(statement)
    try:
        for _ in range(2):
            store = open_job_store(f"{POSTGRES_URL}?schema={schema}")
            store.start(JOB, attempt=1)
            assert store.finish(JOB, "s3://out/holiday.mp4", output_size=1234).output_size == 1234
            store.close()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_an_earlier_sqlite_table_gains_the_quality_column(tmp_path: Path) -> None:
    """Quality per title: the ``quality`` JSON column is added on open, to a table of any earlier release."""
    path = tmp_path / "jobs.sqlite3"
    store = open_job_store(f"sqlite://{path}")  # today's table, without the column: as an earlier release left it
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE jobs DROP COLUMN quality")
        conn.execute("INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at) "
                     "VALUES ('holiday.mp4', 'etag1', '720p', 'running', 1, 1)")  # fmt: skip
    conn.close()
    for _ in range(2):  # the second open finds the column there
        store = open_job_store(f"sqlite://{path}")
        assert store.finish(JOB, "s3://out/holiday.mp4", quality='{"outputs": []}').quality == '{"outputs": []}'
        store.close()


def test_an_earlier_sqlite_table_gains_the_timeline_column(tmp_path: Path) -> None:
    """Version 3's table had no ``timeline``: opening it adds the column (and records version 4); a table left
    without it at version 4 gains it too."""
    path = tmp_path / "jobs.sqlite3"
    open_job_store(f"sqlite://{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at) "
                     "VALUES ('holiday.mp4', 'etag1', '720p', 'running', 1, 1)")  # fmt: skip
    conn.close()
    for version in ("3", "4"):  # as version 3 left it; then as a release that recorded 4 without the column
        with sqlite3.connect(path) as conn:
            conn.execute("ALTER TABLE jobs DROP COLUMN timeline")
            conn.execute("UPDATE job_store_meta SET value = ? WHERE name = 'schema_version'", (version,))
        conn.close()
        store = open_job_store(f"sqlite://{path}")
        done = store.finish(JOB, "s3://out/holiday.mp4", timeline=Timeline(uploaded=1.0, received=1.5))
        assert (done.timeline.uploaded, done.timeline.received, done.timeline.done) == (1.0, 1.5, done.finished_at)
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM job_store_meta WHERE name = 'schema_version'").fetchone() == ("4",)
    conn.close()


def test_an_earlier_postgres_table_gains_the_timeline_column() -> None:
    require_service(reachable(POSTGRES_URL, 5432), "no PostgreSQL server")
    import psycopg

    schema = f"vc_test_{uuid.uuid4().hex[:12]}"
    url = f"{POSTGRES_URL}?schema={schema}"
    open_job_store(url).close()
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {schema}")
            conn.execute("ALTER TABLE jobs DROP COLUMN timeline")
            conn.execute("UPDATE job_store_meta SET value = '3' WHERE name = 'schema_version'")
        for _ in range(2):  # the second open finds the column there
            store = open_job_store(url)
            store.start(JOB, attempt=1)
            done = store.finish(JOB, "s3://out/holiday.mp4", timeline=Timeline(uploaded=1.0))
            assert (done.timeline.uploaded, done.timeline.done) == (1.0, done.finished_at)
            store.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {schema}")
            version = conn.execute("SELECT value FROM job_store_meta WHERE name = 'schema_version'").fetchone()
        assert version == (str(q.SCHEMA_VERSION),) == ("4",)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
