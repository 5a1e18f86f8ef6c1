"""The SQL of the SQLite and PostgreSQL job stores, as named queries (one place to read, EXPLAIN and review).

Statements use ``?`` placeholders and SQL both databases run; ``{real}``, ``{big_integer}``, ``{serial_key}``,
``{key_bytes}`` (the key compared byte by byte, as prefix ranges need) and ``{for_update}`` are filled in per dialect by
:mod:`videoconverter.jobs.sql`. None contains a literal ``?`` or ``%``. Counting triggers differ per dialect and
live at the end.
"""

from __future__ import annotations

#: Bumped when the schema changes; an older database is migrated on open (see ``sql.migrate``).
SCHEMA_VERSION = 4

# --- schema -------------------------------------------------------------------------------------------------

CREATE_META = "CREATE TABLE IF NOT EXISTS job_store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
READ_VERSION = "SELECT value FROM job_store_meta WHERE name = 'schema_version'"
WRITE_VERSION = (
    "INSERT INTO job_store_meta (name, value) VALUES ('schema_version', ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
CREATE_JOBS = """
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
    quality TEXT,
    timeline TEXT,
    PRIMARY KEY (key, source_etag, rendition)
)"""
CREATE_JOB_LOGS = """
CREATE TABLE IF NOT EXISTS job_logs (
    id {serial_key},
    key TEXT NOT NULL,
    rendition TEXT NOT NULL,
    at {real} NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
)"""
#: Columns that a table of an earlier version lacks, added by the migration: table -> column -> type.
#: ``jobs.output_size``: the output's bytes when the job finished (NULL: unknown); ``jobs.quality`` (version 3): a
#: VMAF target's search as JSON text (NULL: none); ``jobs.timeline`` (version 4): the latest attempt's stage times
#: as JSON text (``jobs/timeline.py``; NULL: none); ``job_logs.seq``: the line's number within its key and
#: rendition (NULL for lines kept before).
ADDED_COLUMNS = {
    "jobs": {
        "output_size": "{big_integer}",
        "quality": "TEXT",
        "timeline": "TEXT",
        "pieces_planned": "INTEGER",
        "pieces_done": "TEXT",
        "holder": "TEXT",
    },
    "job_logs": {"seq": "INTEGER"},
}
ADD_COLUMN = "ALTER TABLE {table} ADD COLUMN {column}"
CREATE_COUNTERS = """
CREATE TABLE IF NOT EXISTS job_counters (
    rendition TEXT NOT NULL,
    name TEXT NOT NULL,
    value {real} NOT NULL DEFAULT 0,
    PRIMARY KEY (rendition, name)
)"""
CREATE_LOG_COUNTS = """
CREATE TABLE IF NOT EXISTS job_log_counts (
    key TEXT NOT NULL,
    rendition TEXT NOT NULL,
    appended INTEGER NOT NULL,
    PRIMARY KEY (key, rendition)
)"""
#: Every listing reads one of these in order (the primary key serves a key's jobs and, in SQLite, prefixes).
INDEXES = (
    "CREATE INDEX IF NOT EXISTS job_logs_by_key ON job_logs (key, id)",
    "CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at, key, source_etag, rendition)",
    "CREATE INDEX IF NOT EXISTS jobs_by_state_created ON jobs (state, created_at, key, source_etag, rendition)",
    "CREATE INDEX IF NOT EXISTS jobs_by_rendition_state ON jobs (rendition, state, created_at, key, source_etag)",
    "CREATE INDEX IF NOT EXISTS jobs_by_updated ON jobs (updated_at, key, source_etag, rendition)",
    "DROP INDEX IF EXISTS jobs_by_state",  # version 1's, superseded by jobs_by_state_created
)
#: The state counters from the records, once, when a database gains its counting triggers.
RECOUNT = (
    "DELETE FROM job_counters WHERE substr(name, 1, 6) = 'state:'",
    "INSERT INTO job_counters (rendition, name, value) "
    "SELECT rendition, 'state:' || state, COUNT(*) FROM jobs GROUP BY rendition, state",
)

# --- transitions --------------------------------------------------------------------------------------------

ID = "key = ? AND source_etag = ? AND rendition = ?"
GET = f"SELECT * FROM jobs WHERE {ID}"
GET_FOR_UPDATE = f"SELECT state, started_at FROM jobs WHERE {ID}{{for_update}}"
ENQUEUE = (
    "INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at, sequencer) "
    "VALUES (?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT (key, source_etag, rendition) DO NOTHING"
)
#: The last parameter is the time before which a running job's holder counts as gone (see JobStore.start).
START = (
    "INSERT INTO jobs (key, source_etag, rendition, state, attempts, created_at, updated_at, started_at, holder)"
    " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?) ON CONFLICT (key, source_etag, rendition) DO UPDATE SET "
    "state = 'running', attempts = CASE WHEN jobs.attempts > excluded.attempts THEN jobs.attempts "
    "ELSE excluded.attempts END, updated_at = excluded.updated_at, "
    "started_at = excluded.started_at, progress_percent = 0, timeline = NULL, holder = excluded.holder "
    "WHERE excluded.holder = '' OR jobs.state <> 'running' OR COALESCE(jobs.holder, '') IN ('', excluded.holder) "
    "OR jobs.updated_at < ?"
)
PROGRESS = f"UPDATE jobs SET progress_percent = ?, updated_at = ? WHERE {ID} AND state = 'running'"
FINISH = (
    "UPDATE jobs SET state = 'done', progress_percent = 100, output_url = ?, note = ?, output_size = ?, "
    f"quality = ?, timeline = ?, error = '', updated_at = ?, finished_at = ? WHERE {ID}"
)
#: A NULL timeline leaves the stored one (the caller knew none).
RETRY = (
    "UPDATE jobs SET state = 'queued', error = ?, stderr_tail = ?, timeline = COALESCE(?, timeline), "
    f"updated_at = ? WHERE {ID}"
)
FAIL = (
    "INSERT INTO jobs (key, source_etag, rendition, state, created_at, updated_at, finished_at, error, "
    "stderr_tail, timeline) VALUES (?, ?, ?, 'failed', ?, ?, ?, ?, ?, ?) ON CONFLICT (key, source_etag, rendition) "
    "DO UPDATE SET state = 'failed', updated_at = excluded.updated_at, finished_at = excluded.finished_at,"
    " error = excluded.error, stderr_tail = excluded.stderr_tail, timeline = COALESCE(excluded.timeline, jobs.timeline)"
)
REQUEUE_FAILED = "UPDATE jobs SET state = 'queued', updated_at = ?, finished_at = NULL WHERE state = 'failed'"
ADD_TO_COUNTER = (
    "INSERT INTO job_counters (rendition, name, value) VALUES (?, ?, ?) "
    "ON CONFLICT (rendition, name) DO UPDATE SET value = job_counters.value + excluded.value"
)
READ_COUNTERS = "SELECT rendition, name, value FROM job_counters"

# --- listings: SELECT_JOBS + conditions + an order --------------------------------------------------------

SELECT_JOBS = "SELECT * FROM jobs WHERE "
FIND_ORDER = " ORDER BY created_at DESC, key, rendition"
IN_STATE = "state = ?"
IN_STATES = "state IN ({marks})"
OF_RENDITION = "rendition = ?"
OF_KEY = "key = ?"
UNDER_PREFIX = "{key_bytes} >= ? AND {key_bytes} < ?"
#: Beside a key prefix, state and rendition are filters, not index ranges (``|| ''`` keeps the planner on the
#: key's range: a rare prefix in a common state must not walk the whole state).
FILTER_STATES = "state || '' IN ({marks})"
FILTER_RENDITION = "rendition || '' = ?"
#: Keyset conditions: the first term bounds the index range, the row value breaks ties exactly.
CREATED_BEFORE = "created_at <= ? AND (created_at, key, source_etag, rendition) < (?, ?, ?, ?)"
NEWEST_FIRST = " ORDER BY created_at DESC, key DESC, source_etag DESC, rendition DESC LIMIT ?"
UPDATED_SINCE = "updated_at >= ?"
UPDATED_AFTER = "updated_at >= ? AND (updated_at, key, source_etag, rendition) > (?, ?, ?, ?)"
OLDEST_CHANGE_FIRST = " ORDER BY updated_at, key, source_etag, rendition LIMIT ?"

# --- retention ----------------------------------------------------------------------------------------------

PRUNE_CANDIDATES = (
    "SELECT key, source_etag, rendition, state, updated_at FROM jobs WHERE updated_at < ? AND "
    f"{UPDATED_AFTER} ORDER BY updated_at, key, source_etag, rendition LIMIT ?"
)
PRUNE_JOB = f"DELETE FROM jobs WHERE {ID} AND state IN ('done', 'failed') AND updated_at < ?"
PRUNE_LOG_LINES = "DELETE FROM job_logs WHERE key = ? AND rendition = ? AND at < ?"
PRUNE_LOG_COUNT = (
    "DELETE FROM job_log_counts WHERE key = ? AND rendition = ? "
    "AND NOT EXISTS (SELECT 1 FROM job_logs WHERE key = ? AND rendition = ?)"
)

# --- log lines ----------------------------------------------------------------------------------------------

COUNT_LOG_LINE = (
    "INSERT INTO job_log_counts (key, rendition, appended) VALUES (?, ?, 1) ON CONFLICT (key, rendition) "
    "DO UPDATE SET appended = job_log_counts.appended + 1 RETURNING appended"
)
APPEND_LOG = "INSERT INTO job_logs (key, rendition, at, level, message, seq) VALUES (?, ?, ?, ?, ?, ?)"
DROP_LOG_LINE = "DELETE FROM job_logs WHERE key = ? AND rendition = ? AND seq = ?"
LOGS = "SELECT key, rendition, at, level, message, seq FROM job_logs WHERE key = ? ORDER BY id"
LOG_COUNTS = "SELECT rendition, appended FROM job_log_counts WHERE key = ?"

# --- bulk import (benchmarks, migrations from elsewhere) -----------------------------------------------------

JOB_COLUMNS = (
    "key",
    "source_etag",
    "rendition",
    "state",
    "attempts",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "progress_percent",
    "output_url",
    "error",
    "stderr_tail",
    "note",
    "sequencer",
    "output_size",
    "quality",
    "timeline",
)
IMPORT_JOB = (
    f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' for _ in JOB_COLUMNS)}) "
    "ON CONFLICT (key, source_etag, rendition) DO NOTHING"
)

# --- the state counters, kept by triggers: exact whichever process (or version) writes ---------------------

SQLITE_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counters (rendition, name, value) VALUES (NEW.rendition, 'state:' || NEW.state, 1)
        ON CONFLICT (rendition, name) DO UPDATE SET value = value + 1;
END""",
    """CREATE TRIGGER IF NOT EXISTS jobs_count_update AFTER UPDATE OF state ON jobs
WHEN OLD.state <> NEW.state BEGIN
    INSERT INTO job_counters (rendition, name, value) VALUES (OLD.rendition, 'state:' || OLD.state, -1)
        ON CONFLICT (rendition, name) DO UPDATE SET value = value - 1;
    INSERT INTO job_counters (rendition, name, value) VALUES (NEW.rendition, 'state:' || NEW.state, 1)
        ON CONFLICT (rendition, name) DO UPDATE SET value = value + 1;
END""",
    """CREATE TRIGGER IF NOT EXISTS jobs_count_delete AFTER DELETE ON jobs BEGIN
    INSERT INTO job_counters (rendition, name, value) VALUES (OLD.rendition, 'state:' || OLD.state, -1)
        ON CONFLICT (rendition, name) DO UPDATE SET value = value - 1;
END""",
)

#: Statement-level, over transition tables: a statement's counter rows are updated once, in one order (so
#: concurrent transactions never wait on each other's counters in a cycle), after its job rows are locked.
_PG_COUNT = """CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO job_counters AS c (rendition, name, value)
    SELECT rendition, name, SUM(delta) FROM ({deltas}) AS d
    GROUP BY rendition, name HAVING SUM(delta) <> 0 ORDER BY rendition, name
    ON CONFLICT (rendition, name) DO UPDATE SET value = c.value + excluded.value;
    RETURN NULL;
END $$"""
_PG_NEW = "SELECT rendition, 'state:' || state AS name, 1 AS delta FROM new_rows"
_PG_OLD = "SELECT rendition, 'state:' || state AS name, -1 AS delta FROM old_rows"
_PG_TRIGGER = (
    "CREATE TRIGGER {name} AFTER {event} ON jobs REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
)
POSTGRES_TRIGGERS = tuple(
    statement
    for name, event, tables, deltas in (
        ("jobs_count_insert", "INSERT", "NEW TABLE AS new_rows", _PG_NEW),
        (
            "jobs_count_update",
            "UPDATE",
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            f"{_PG_NEW} UNION ALL {_PG_OLD}",
        ),
        ("jobs_count_delete", "DELETE", "OLD TABLE AS old_rows", _PG_OLD),
    )
    for statement in (
        _PG_COUNT.format(name=name, deltas=deltas),
        f"DROP TRIGGER IF EXISTS {name} ON jobs",
        _PG_TRIGGER.format(name=name, event=event, tables=tables),
    )
)
