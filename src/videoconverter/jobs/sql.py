"""The job store in portable SQL, shared by the SQLite and PostgreSQL job stores: one table of jobs, one of
their log lines. Statements use ``?`` placeholders and SQL that both databases run."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from videoconverter.jobs.base import JobId, JobLogLine, JobRecord, JobState

#: The tables, with the types that differ between dialects left as ``{real}``, ``{big_integer}`` and
#: ``{serial_key}``. A column added since the first release is in :data:`ADDED_COLUMNS` too.
SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT NOT NULL,
    source_etag TEXT NOT NULL,
    rendition TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    started_at {real},
    finished_at {real},
    progress_percent {real} NOT NULL DEFAULT 0,
    output_url TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    stderr_tail TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    sequencer TEXT NOT NULL DEFAULT '',
    output_size {big_integer},
    PRIMARY KEY (key, source_etag, rendition)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS job_logs (
    id {serial_key},
    key TEXT NOT NULL,
    rendition TEXT NOT NULL,
    at {real} NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_by_key ON job_logs (key, id);
"""
#: Columns of ``jobs`` that a table created by an earlier release lacks: name -> type (as in the template).
ADDED_COLUMNS = {"output_size": "{big_integer}"}
_ID = "key = ? AND source_etag = ? AND rendition = ?"

# --- quality per title: the VMAF search's choices, one JSON text column (JobRecord.quality) ------------------
#: Added on open to every ``jobs`` table, new or earlier (ALTER TABLE ... ADD COLUMN): NULL until a job with a
#: VMAF target finishes.
QUALITY_COLUMNS = {"quality": "TEXT"}


def missing_columns(present: Collection[str], types: Mapping[str, str]) -> list[str]:
    """The ``ADD COLUMN`` definitions that bring a ``jobs`` table with the columns ``present`` up to date
    (``types``: the dialect's types for the template's placeholders)."""
    added = {**ADDED_COLUMNS, **QUALITY_COLUMNS}
    return [f"{name} {kind.format_map(types)}" for name, kind in added.items() if name not in present]


class SqlJobStore:
    """The job store's logic in portable SQL (``?`` placeholders); subclasses connect and run statements."""

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run a query and return its rows (mappings by column name)."""
        raise NotImplementedError

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement in its own committed transaction and return the rows it changed."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        now = time.time()
        self._write(
            "INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at, sequencer) "
            "VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (key, source_etag, rendition) DO NOTHING",
            (*_key(job_id), now, now, sequencer),
        )
        return self._get_or_raise(job_id)

    def start(self, job_id: JobId, attempt: int) -> JobRecord:
        now = time.time()
        self._write(
            "INSERT INTO jobs (key, source_etag, rendition, state, attempts, created_at, updated_at, started_at)"
            " VALUES (?, ?, ?, 'running', ?, ?, ?, ?) ON CONFLICT (key, source_etag, rendition) DO UPDATE SET "
            "state = 'running', attempts = CASE WHEN jobs.attempts > excluded.attempts THEN jobs.attempts "
            "ELSE excluded.attempts END, updated_at = excluded.updated_at, "
            "started_at = excluded.started_at, progress_percent = 0",
            (*_key(job_id), attempt, now, now, now),
        )
        return self._get_or_raise(job_id)

    def progress(self, job_id: JobId, percent: float) -> None:
        self._write(
            f"UPDATE jobs SET progress_percent = ?, updated_at = ? WHERE {_ID} AND state = 'running'",
            (max(0.0, min(100.0, percent)), time.time(), *_key(job_id)),
        )

    def finish(
        self, job_id: JobId, output_url: str, note: str = "", output_size: int | None = None, quality: str = ""
    ) -> JobRecord:
        now = time.time()
        self._write(
            f"UPDATE jobs SET state = 'done', progress_percent = 100, output_url = ?, note = ?, output_size = ?, "
            f"quality = ?, error = '', updated_at = ?, finished_at = ? WHERE {_ID}",
            (output_url, note, output_size, quality or None, now, now, *_key(job_id)),
        )
        return self._get_or_raise(job_id)

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "") -> JobRecord:
        self._write(
            f"UPDATE jobs SET state = 'queued', error = ?, stderr_tail = ?, updated_at = ? WHERE {_ID}",
            (error, stderr_tail, time.time(), *_key(job_id)),
        )
        return self._get_or_raise(job_id)

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "") -> JobRecord:
        now = time.time()
        self._write(
            "INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at, finished_at, error, "
            "stderr_tail) VALUES (?, ?, ?, 'failed', ?, ?, ?, ?, ?) ON CONFLICT (key, source_etag, rendition) "
            "DO UPDATE SET state = 'failed', updated_at = excluded.updated_at, finished_at = excluded.finished_at,"
            " error = excluded.error, stderr_tail = excluded.stderr_tail",
            (*_key(job_id), now, now, now, error, stderr_tail),
        )
        return self._get_or_raise(job_id)

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        sql = "UPDATE jobs SET state = 'queued', updated_at = ?, finished_at = NULL WHERE state = 'failed'"
        params: list[Any] = [time.time()]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        if rendition is not None:
            sql += " AND rendition = ?"
            params.append(rendition)
        return self._write(sql, tuple(params))

    def get(self, job_id: JobId) -> JobRecord | None:
        rows = self._rows(f"SELECT * FROM jobs WHERE {_ID}", _key(job_id))
        return _record(rows[0]) if rows else None

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        sql = "SELECT * FROM jobs WHERE 1 = 1"
        params: list[Any] = []
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        if states:
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            params.extend(s.value for s in states)
        return [_record(r) for r in self._rows(sql + " ORDER BY created_at DESC, key, rendition", params)]

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        self._write(
            "INSERT INTO job_logs (key, rendition, at, level, message) VALUES (?, ?, ?, ?, ?)",
            (key, rendition, time.time(), level, message),
        )

    def logs(self, key: str) -> list[JobLogLine]:
        rows = self._rows("SELECT * FROM job_logs WHERE key = ? ORDER BY id", (key,))
        return [JobLogLine(r["key"], r["rendition"], r["at"], r["level"], r["message"]) for r in rows]

    def _get_or_raise(self, job_id: JobId) -> JobRecord:
        record = self.get(job_id)
        if record is None:
            raise LookupError(f"job {job_id} vanished while being updated")
        return record


def _key(job_id: JobId) -> tuple[str, str, str]:
    return (job_id.key, job_id.source_etag, job_id.rendition)


def _record(row: Any) -> JobRecord:
    return JobRecord(
        id=JobId(row["key"], row["source_etag"], row["rendition"]),
        state=JobState(row["state"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress_percent=row["progress_percent"],
        output_url=row["output_url"],
        error=row["error"],
        stderr_tail=row["stderr_tail"],
        note=row["note"],
        sequencer=row["sequencer"],
        output_size=row["output_size"],
        quality=row["quality"] or "",
    )
