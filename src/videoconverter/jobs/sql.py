"""The job store in portable SQL, shared by the SQLite and PostgreSQL job stores (the statements are the named
queries of :mod:`videoconverter.jobs.queries`).

Tables: ``jobs`` (one row a job), ``job_logs`` (their log lines), ``job_counters`` (per rendition: jobs by state,
kept by triggers; run-time histograms and failures by cause, kept by the transitions in the same transaction),
``job_log_counts`` (lines ever appended per key and rendition, for the cap) and ``job_store_meta`` (the schema
version). A database of an older version is migrated when a store opens it (:func:`migrate`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from videoconverter.jobs import base
from videoconverter.jobs import queries as q
from videoconverter.jobs.base import JobFilter, JobId, JobLogLine, JobPage, JobRecord, JobState, JobStats
from videoconverter.jobs.counters import (
    duration_counters,
    failure_counter,
    line_to_drop,
    stats_from,
    with_dropped_notes,
)
from videoconverter.jobs.paging import (
    PREFIX_END,
    Order,
    Position,
    check_limit,
    decode_cursor,
    newest_first,
    next_cursor,
    states_of,
)
from videoconverter.jobs.timeline import Timeline

#: How long :meth:`SqlJobStore.wait_for_change` sleeps where nothing wakes it.
POLL_SECONDS = 0.25
#: Runs one statement inside the current transaction and returns its cursor (``fetchall``, ``rowcount``).
Run = Callable[..., Any]


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases, filled into the named queries."""

    real: str
    big_integer: str
    serial_key: str
    key_bytes: str  # the key as byte-wise (code point) comparisons see it, for prefix ranges
    for_update: str  # locks the rows a transaction reads before it writes them
    triggers: tuple[str, ...]
    extra_indexes: tuple[str, ...] = ()

    def fill(self, sql: str) -> str:
        for name in ("real", "big_integer", "serial_key", "key_bytes", "for_update"):
            sql = sql.replace("{" + name + "}", getattr(self, name))
        return sql


def migrate(run: Run, dialect: Dialect, columns_of: Callable[[Run, str], set[str]]) -> None:
    """Bring the schema to :data:`~videoconverter.jobs.queries.SCHEMA_VERSION` inside the caller's transaction
    (which holds a lock that keeps other stores from migrating at once). Every step is idempotent; the state
    counters are counted from the records once, when the triggers that keep them appear. ``columns_of(run,
    table)``: the names of a table's columns, so that those of :data:`~videoconverter.jobs.queries.ADDED_COLUMNS`
    a table of an earlier release lacks are added, also at the current version (a table left without one by a
    release that recorded this version)."""
    run(q.CREATE_META)
    row = run(q.READ_VERSION).fetchone()
    current = row is not None and int(_first(row)) >= q.SCHEMA_VERSION
    if not current:
        for statement in (q.CREATE_JOBS, q.CREATE_JOB_LOGS, q.CREATE_COUNTERS, q.CREATE_LOG_COUNTS):
            run(dialect.fill(statement))
    for column in missing_columns(run, dialect, columns_of):
        run(column)
    if current:
        return
    for statement in (*q.INDEXES, *dialect.extra_indexes, *dialect.triggers, *q.RECOUNT):
        run(dialect.fill(statement))
    run(q.WRITE_VERSION, (str(q.SCHEMA_VERSION),))


def missing_columns(run: Run, dialect: Dialect, columns_of: Callable[[Run, str], set[str]]) -> list[str]:
    """The ``ALTER TABLE`` statements that add the columns of :data:`~videoconverter.jobs.queries.ADDED_COLUMNS`
    that the tables lack."""
    statements = []
    for table, columns in q.ADDED_COLUMNS.items():
        present = columns_of(run, table)
        statements += [
            q.ADD_COLUMN.format(table=table, column=dialect.fill(f"{name} {kind}"))
            for name, kind in columns.items()
            if name not in present
        ]
    return statements


class SqlJobStore:
    """The job store's logic in portable SQL; subclasses connect, run statements and name their dialect."""

    dialect: Dialect

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run a query and return its rows (mappings by column name)."""
        raise NotImplementedError

    def _transaction(self, durable: bool = True) -> contextlib.AbstractContextManager[Run]:
        """A committed-on-exit transaction (rolled back on error) whose ``run(sql, params)`` runs statements.

        Not ``durable``: its commit does not wait for the disk (a power cut may lose it, and only the last such
        commits; a crash of the process loses none, and a later durable commit makes them durable too). For
        what nothing depends on: log lines and progress, written many times a job."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _write(self, sql: str, params: Sequence[Any], durable: bool = True) -> int:
        with self._transaction(durable) as run:
            return int(run(sql, params).rowcount)

    @contextlib.contextmanager
    def _transition(self) -> Iterator[Run]:
        """A transaction that changes jobs' states: once it is committed, :meth:`_changed` tells waiters."""
        with self._transaction() as run:
            yield run
        self._changed()

    def _changed(self) -> None:
        """Wake the processes in :meth:`wait_for_change` (a store that cannot reach them does nothing)."""

    def wait_for_change(self, timeout_seconds: float) -> None:
        """A short poll: this store is not told when others change jobs."""
        time.sleep(max(0.0, min(timeout_seconds, POLL_SECONDS)))

    # --- transitions ----------------------------------------------------------------------------------------

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        now = time.time()
        with self._transition() as run:
            run(q.ENQUEUE, (*_key(job_id), now, now, sequencer))
            return _current(run, job_id)

    def start(self, job_id: JobId, attempt: int, holder: str = "", fresh_seconds: float = 0.0) -> JobRecord:
        now = time.time()
        with self._transition() as run:
            run(q.START, (*_key(job_id), attempt, now, now, now, holder, now - fresh_seconds))
            return _current(run, job_id)

    def progress(self, job_id: JobId, percent: float) -> None:
        self._write(q.PROGRESS, (max(0.0, min(100.0, percent)), time.time(), *_key(job_id)), durable=False)

    def finish(
        self,
        job_id: JobId,
        output_url: str,
        note: str = "",
        output_size: int | None = None,
        quality: str = "",
        timeline: Timeline | None = None,
    ) -> JobRecord:
        now = time.time()
        stamped = (timeline or Timeline()).with_stamp("done", now).to_text()
        with self._transition() as run:
            before = run(self.dialect.fill(q.GET_FOR_UPDATE), _key(job_id)).fetchone()
            run(q.FINISH, (output_url, note, output_size, quality or None, stamped, now, now, *_key(job_id)))
            if before is not None and before["state"] == JobState.RUNNING and before["started_at"] is not None:
                _add(run, job_id.rendition, duration_counters(now - before["started_at"]))
            return _current(run, job_id)

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        with self._transition() as run:
            run(q.RETRY, (error, stderr_tail, _text(timeline), time.time(), *_key(job_id)))
            return _current(run, job_id)

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        now = time.time()
        with self._transition() as run:
            before = run(self.dialect.fill(q.GET_FOR_UPDATE), _key(job_id)).fetchone()
            run(q.FAIL, (*_key(job_id), now, now, now, error, stderr_tail, _text(timeline)))
            if before is None or before["state"] != JobState.FAILED:
                _add(run, job_id.rendition, [(failure_counter(error), 1)])
            return _current(run, job_id)

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        sql, params = q.REQUEUE_FAILED, list[Any]([time.time()])
        if key is not None:
            sql, params = f"{sql} AND key = ?", [*params, key]
        if rendition is not None:
            sql, params = f"{sql} AND rendition = ?", [*params, rendition]
        with self._transition() as run:
            return int(run(sql, params).rowcount)

    # --- reads ----------------------------------------------------------------------------------------------

    def get(self, job_id: JobId) -> JobRecord | None:
        rows = self._rows(q.GET, _key(job_id))
        return _record(rows[0]) if rows else None

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        conditions, params = ["1 = 1"], list[Any]()
        if key is not None:
            conditions, params = [q.OF_KEY], [key]
        if states:
            conditions.append(q.IN_STATES.format(marks=", ".join("?" for _ in states)))
            params.extend(s.value for s in states)
        rows = self._rows(q.SELECT_JOBS + " AND ".join(conditions) + q.FIND_ORDER, params)
        return [_record(r) for r in rows]

    def page(
        self, where: JobFilter = base.ALL_JOBS, limit: int = base.DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> JobPage:
        limit = check_limit(limit)
        after = decode_cursor(Order.CREATED, cursor) if cursor else None
        if where.key_prefix:  # one range of the key index, sorted: as long as the jobs under the prefix
            conditions = [self.dialect.fill(q.UNDER_PREFIX)]
            params: list[Any] = [where.key_prefix, where.key_prefix + PREFIX_END]
            if where.states:
                conditions.append(q.FILTER_STATES.format(marks=", ".join("?" for _ in where.states)))
                params.extend(s.value for s in where.states)
            if where.rendition is not None:
                conditions, params = [*conditions, q.FILTER_RENDITION], [*params, where.rendition]
            runs = [self._newest(conditions, params, after, limit + 1)]
        elif where.states or where.rendition is not None:  # one index range per state, merged
            runs = [
                self._newest(
                    [q.IN_STATE] + ([q.OF_RENDITION] if where.rendition is not None else []),
                    [state.value] + ([where.rendition] if where.rendition is not None else []),
                    after,
                    limit + 1,
                )
                for state in states_of(where)
            ]
        else:
            runs = [self._newest([], [], after, limit + 1)]
        records = newest_first(runs, limit + 1)
        return JobPage(records[:limit], next_cursor(records, limit, Order.CREATED))

    def changes(self, since: float, limit: int = base.DEFAULT_PAGE_SIZE, cursor: str | None = None) -> JobPage:
        limit = check_limit(limit)
        conditions, params = [q.UPDATED_SINCE], list[Any]([since])
        if cursor:
            after = decode_cursor(Order.UPDATED, cursor)
            conditions, params = [*conditions, q.UPDATED_AFTER], [*params, after.at, *after]
        sql = q.SELECT_JOBS + " AND ".join(conditions) + q.OLDEST_CHANGE_FIRST
        records = [_record(r) for r in self._rows(sql, [*params, limit + 1])]
        return JobPage(records[:limit], next_cursor(records, limit, Order.UPDATED))

    def stats(self) -> JobStats:
        return stats_from((r["rendition"], r["name"], r["value"]) for r in self._rows(q.READ_COUNTERS))

    def _newest(self, conditions: list[str], params: list[Any], after: Position | None, limit: int) -> list[JobRecord]:
        if after is not None:
            conditions, params = [*conditions, q.CREATED_BEFORE], [*params, after.at, *after]
        sql = q.SELECT_JOBS + (" AND ".join(conditions) or "1 = 1") + q.NEWEST_FIRST
        return [_record(r) for r in self._rows(sql, [*params, limit])]

    # --- retention and log lines ------------------------------------------------------------------------------

    def prune(self, before: float, batch_size: int = base.PRUNE_BATCH_SIZE) -> int:
        """Walk the jobs last updated before ``before`` in update order (a keyset, so jobs that stay are read
        once) and delete the finished ones, one transaction per batch."""
        at, deleted = Position(-1.0, "", "", ""), 0
        while rows := self._rows(q.PRUNE_CANDIDATES, (before, at.at, *at, batch_size)):
            last = rows[-1]
            at = Position(last["updated_at"], last["key"], last["source_etag"], last["rendition"])
            finished = [r for r in rows if r["state"] in (JobState.DONE, JobState.FAILED)]
            if finished:
                with self._transaction() as run:
                    for r in finished:
                        deleted += run(q.PRUNE_JOB, (r["key"], r["source_etag"], r["rendition"], before)).rowcount
                    for key, rendition in dict.fromkeys((r["key"], r["rendition"]) for r in finished):
                        run(q.PRUNE_LOG_LINES, (key, rendition, before))
                        run(q.PRUNE_LOG_COUNT, (key, rendition, key, rendition))
        return deleted

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        with self._transaction(durable=False) as run:
            appended = int(_first(run(q.COUNT_LOG_LINE, (key, rendition)).fetchone()))
            run(q.APPEND_LOG, (key, rendition, time.time(), level, message, appended))
            drop = line_to_drop(appended)
            if drop is not None:
                run(q.DROP_LOG_LINE, (key, rendition, drop))

    def logs(self, key: str) -> list[JobLogLine]:
        rows = self._rows(q.LOGS, (key,))
        lines = [(r["seq"], JobLogLine(r["key"], r["rendition"], r["at"], r["level"], r["message"])) for r in rows]
        appended = {r["rendition"]: int(r["appended"]) for r in self._rows(q.LOG_COUNTS, (key,))}
        return with_dropped_notes(lines, appended)

    # --- bulk import ------------------------------------------------------------------------------------------

    def import_records(self, records: Iterable[JobRecord]) -> int:
        """Insert finished or pending records as they are (existing ones are left alone), in one transaction,
        counting their run times and failures as the transitions would have; return how many were given.
        For benchmarks and moving a history from another store."""
        counted: dict[tuple[str, str], float] = {}
        rows = []
        for r in records:
            rows.append(_row(r))
            if r.state is JobState.DONE and r.started_at is not None and r.finished_at is not None:
                for name, value in duration_counters(r.finished_at - r.started_at):
                    counted[(r.id.rendition, name)] = counted.get((r.id.rendition, name), 0) + value
            elif r.state is JobState.FAILED:
                name = failure_counter(r.error)
                counted[(r.id.rendition, name)] = counted.get((r.id.rendition, name), 0) + 1
        with self._transaction() as run:
            self._insert_rows(run, rows)
            for (rendition, name), value in counted.items():
                run(q.ADD_TO_COUNTER, (rendition, name, value))
        return len(rows)

    def _insert_rows(self, run: Run, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            run(q.IMPORT_JOB, row)


def _key(job_id: JobId) -> tuple[str, str, str]:
    return (job_id.key, job_id.source_etag, job_id.rendition)


def _first(row: Any) -> Any:
    return row[0] if not isinstance(row, dict) else next(iter(row.values()))


def _add(run: Run, rendition: str, increments: Iterable[tuple[str, float]]) -> None:
    for name, value in increments:
        run(q.ADD_TO_COUNTER, (rendition, name, value))


def _current(run: Run, job_id: JobId) -> JobRecord:
    row = run(q.GET, _key(job_id)).fetchone()
    if row is None:
        raise LookupError(f"job {job_id} has no record")
    return _record(row)


def _row(r: JobRecord) -> tuple[Any, ...]:
    """A record as the values of :data:`~videoconverter.jobs.queries.JOB_COLUMNS`."""
    return (
        *_key(r.id),
        r.state.value,
        r.attempts,
        r.created_at,
        r.updated_at,
        r.started_at,
        r.finished_at,
        r.progress_percent,
        r.output_url,
        r.error,
        r.stderr_tail,
        r.note,
        r.sequencer,
        r.output_size,
        r.quality or None,
        r.timeline.to_text() or None,
    )


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
        timeline=Timeline.from_text(row["timeline"]),
        pieces_planned=row["pieces_planned"] or 0,
        pieces_done=len([index for index in (row["pieces_done"] or "").split(",") if index]),  # see sql_pieces
        holder=row["holder"] or "",
    )


def _text(timeline: Timeline | None) -> str | None:
    """A timeline as its column's value; None (SQL NULL) when none was given or it knows no stage."""
    return (timeline.to_text() or None) if timeline is not None else None
