"""`[jobs] retention_days`: what `up` prunes, and its thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from videoconverter.jobs.base import JobId, JobRecord, JobState, JobStore
from videoconverter.jobs.retention import DAY_SECONDS, Pruner, prune_older_than
from videoconverter.jobs.sqlite import SQLiteJobStore


def _history(store: SQLiteJobStore) -> None:
    now = time.time()
    store.import_records(
        [
            JobRecord(JobId("old.mp4", "e", "720p"), JobState.DONE, 1, now - 9 * DAY_SECONDS, now - 8 * DAY_SECONDS),
            JobRecord(
                JobId("old-bad.mp4", "e", "720p"), JobState.FAILED, 1, now - 9 * DAY_SECONDS, now - 8 * DAY_SECONDS
            ),
            JobRecord(
                JobId("old-queued.mp4", "e", "720p"), JobState.QUEUED, 0, now - 9 * DAY_SECONDS, now - 8 * DAY_SECONDS
            ),
            JobRecord(JobId("recent.mp4", "e", "720p"), JobState.DONE, 1, now - 2 * DAY_SECONDS, now - DAY_SECONDS),
        ]
    )


def test_finished_jobs_older_than_the_retention_are_pruned(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    _history(store)
    assert prune_older_than(store, 0) == 0  # 0 keeps every job
    assert prune_older_than(store, 30) == 0
    assert prune_older_than(store, 7) == 2
    assert sorted(r.id.key for r in store.find()) == ["old-queued.mp4", "recent.mp4"]
    store.close()


def test_the_pruner_prunes_at_start_and_stops_with_up(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    _history(SQLiteJobStore(path))
    stop = threading.Event()

    @contextlib.contextmanager
    def open_jobs() -> Iterator[JobStore]:
        store = SQLiteJobStore(path)
        yield store
        store.close()

    pruner = Pruner(open_jobs, 7, stop, every_seconds=0.05).start()
    deadline = time.monotonic() + 10
    while pruner.pruned < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    pruner.join(5)
    assert pruner.pruned == 2
