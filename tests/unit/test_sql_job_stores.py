"""What the SQLite and PostgreSQL job stores do beyond the contract: their listings read an index in order (the
plans, from EXPLAIN), and a database made by the previous version is migrated when it is opened.

The postgres cases need the PostgreSQL server of the contract tests (skipped without one, except in CI).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.contract.conftest import POSTGRES_URL, reachable
from videoconverter.jobs.base import ALL_JOBS, JobFilter, JobId, JobRecord, JobState
from videoconverter.jobs.sql import SqlJobStore
from videoconverter.jobs.sqlite import SQLiteJobStore
from videoconverter.jobs.timeline import Timeline
from videoconverter.logs import redact

#: The schema the previous version created (and nothing else): no counters, no version, one index by state.
VERSION_1 = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT NOT NULL, source_etag TEXT NOT NULL, rendition TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, created_at {real} NOT NULL, updated_at {real} NOT NULL,
    started_at {real}, finished_at {real}, progress_percent {real} NOT NULL DEFAULT 0,
    output_url TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', sequencer TEXT NOT NULL DEFAULT '', PRIMARY KEY (key, source_etag, rendition)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS job_logs (
    id {serial_key}, key TEXT NOT NULL, rendition TEXT NOT NULL, at {real} NOT NULL, level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_by_key ON job_logs (key, id);
INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at) VALUES
    ('old.mp4', 'e1', '720p', 'done', 1000, 1001), ('old.mp4', 'e1', '1080p', 'failed', 1000, 1002),
    ('new.mp4', 'e2', '720p', 'queued', 2000, 2000);
INSERT INTO job_logs (key, rendition, at, level, message) VALUES ('old.mp4', '720p', 1000.5, 'INFO', 'queued');
"""


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SqlJobStore]]:
    """A database as the previous version left it, and a way to open it with this version's store."""
    if request.param == "sqlite":
        path = tmp_path / "jobs.sqlite3"
        with sqlite3.connect(path) as conn:
            conn.executescript(VERSION_1.format(real="REAL", serial_key="INTEGER PRIMARY KEY AUTOINCREMENT"))
        yield lambda: SQLiteJobStore(path)
        return
    psycopg = _postgres()
    schema = f"vc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        for statement in filter(
            str.strip, VERSION_1.format(real="DOUBLE PRECISION", serial_key="BIGSERIAL PRIMARY KEY").split(";")
        ):
            conn.execute(statement)
    from videoconverter.jobs.postgres import PostgresJobStore

    yield lambda: PostgresJobStore(f"{POSTGRES_URL}?schema={schema}")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _postgres() -> Any:
    require_service(reachable(POSTGRES_URL, 5432), f"no PostgreSQL server at {redact(POSTGRES_URL)}")
    import psycopg

    return psycopg


def test_a_database_of_the_previous_version_is_migrated_on_open(old_database: Callable[[], SqlJobStore]) -> None:
    store = old_database()
    assert store.stats().jobs == {
        ("720p", JobState.DONE): 1,
        ("1080p", JobState.FAILED): 1,
        ("720p", JobState.QUEUED): 1,
    }
    assert [r.id.key for r in store.page(JobFilter(states=(JobState.QUEUED, JobState.DONE))).records] == [
        "new.mp4",
        "old.mp4",
    ]
    store.append_log("old.mp4", "720p", "INFO", "after the upgrade")
    assert [line.message for line in store.logs("old.mp4")] == ["queued", "after the upgrade"]
    store.start(JobId("new.mp4", "e2", "720p"), attempt=1)
    # The output's size, the quality search and the timeline, columns version 1 lacked: kept by finish and by
    # the bulk import.
    assert store.finish(JobId("old.mp4", "e1", "720p"), "s3://out/old.mp4", output_size=42).output_size == 42
    imported = JobRecord(
        JobId("imported.mp4", "e3", "720p"), JobState.DONE, 1, 3000, 3001, output_size=7, quality='{"outputs": []}'
    )
    imported = dataclasses.replace(imported, timeline=Timeline(uploaded=2999.5, received=2999.6, done=3001))
    store.import_records([imported])
    assert store.get(imported.id) == imported
    store.close()
    again = old_database()  # opening a current database changes nothing
    assert again.stats().jobs[("720p", JobState.RUNNING)] == 1 and ("720p", JobState.QUEUED) not in again.stats().jobs
    assert len(again.logs("old.mp4")) == 2
    again.close()


# --- the plans of every listing -------------------------------------------------------------------------------


def _listings(store: SqlJobStore, now: float) -> list[tuple[str, list[Any]]]:
    """Run each listing twice (the first page and the next) and return the statements the store ran."""
    ran: list[tuple[str, list[Any]]] = []
    rows = store._rows

    def recording(sql: str, params: Any = ()) -> list[Any]:
        ran.append((sql, list(params)))
        return rows(sql, params)

    store._rows = recording  # type: ignore[method-assign]
    for where in (
        ALL_JOBS,
        JobFilter(states=(JobState.FAILED,)),
        JobFilter(states=(JobState.QUEUED, JobState.RUNNING)),
        JobFilter(rendition="720p"),
        JobFilter(states=(JobState.DONE,), rendition="1080p"),
    ):
        store.page(where, 5, store.page(where, 5).next_cursor)
    store.changes(now - 100, 5, store.changes(now - 100, 5).next_cursor)
    store.changes(now + 1, 5)  # the live poller when nothing changed
    store._rows = rows  # type: ignore[method-assign]
    return ran


def _history(store: SqlJobStore, now: float, uploads: int = 400) -> None:
    store.import_records(
        JobRecord(
            JobId(f"u{i:05d}.mp4", "e", r),
            JobState.DONE,
            1,
            now - 1000 + i,
            now - 999 + i,
            now - 1000 + i,
            now - 999 + i,
        )
        for i in range(uploads)
        for r in ("720p", "1080p")
    )


def test_sqlite_listings_search_an_index_in_order(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    now = time.time()
    _history(store, now)
    for sql, params in _listings(store, now):
        plan = [row["detail"] for row in store._conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        assert all("USING INDEX" in step and "TEMP B-TREE" not in step for step in plan), (sql, plan)
    explained = "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE key >= ? AND key < ? AND state || '' IN (?)"
    key_prefix = [row["detail"] for row in store._conn.execute(explained, ("u0001", "u0002", "done"))]
    assert key_prefix == ["SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 (key>? AND key<?)"]
    store.close()


def test_postgres_listings_scan_an_index_in_order() -> None:
    psycopg = _postgres()
    from videoconverter.jobs.postgres import PostgresJobStore, _placeholders

    schema = f"vc_test_{uuid.uuid4().hex[:12]}"
    store = PostgresJobStore(f"{POSTGRES_URL}?schema={schema}")
    try:
        now = time.time()
        _history(store, now)
        store._conn.execute("ANALYZE jobs")
        store._conn.execute("SET enable_seqscan = off")  # a small table: show what the indexes serve
        for sql, params in _listings(store, now):
            plan = "\n".join(row["QUERY PLAN"] for row in store._conn.execute("EXPLAIN " + _placeholders(sql), params))
            assert "Index Scan" in plan and "Sort" not in plan and "Seq Scan" not in plan, (sql, plan)
    finally:
        store.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_sqlite_commits_log_lines_and_progress_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """Log lines and progress skip the WAL's fsync (synchronous=NORMAL for their commit only); transitions keep
    FULL, which makes the lines before them durable too."""
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    ran: list[str] = []
    store._conn.set_trace_callback(ran.append)
    job = JobId("a.mp4", "e", "720p")
    store.start(job, attempt=1)
    store.append_log("a.mp4", "720p", "INFO", "a line")
    store.progress(job, 50.0)
    store.finish(job, "s3://out/a.mp4")
    store._conn.set_trace_callback(None)
    synchronous = [(i, s) for i, s in enumerate(ran) if s.startswith("PRAGMA synchronous")]
    assert [s for _, s in synchronous] == ["PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"] * 2
    writes = [i for i, s in enumerate(ran) if s.startswith(("INSERT INTO job_logs", "UPDATE jobs SET progress"))]
    pairs = [(synchronous[k][0], synchronous[k + 1][0]) for k in (0, 2)]
    assert all(any(low < i < high for low, high in pairs) for i in writes) and len(writes) == 2
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again for what follows
    store.close()
