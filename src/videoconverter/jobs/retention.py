"""Retention (``[jobs] retention_days``): ``videoconverter up`` deletes finished and failed jobs, with their log
lines, once they are older than that, at start and every :data:`PRUNE_EVERY_SECONDS`, in small transactions
(:meth:`~videoconverter.jobs.base.JobStore.prune`). 0 days keeps every job."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from videoconverter.jobs.base import JobStore

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 3600.0
DAY_SECONDS = 86_400


def prune_older_than(jobs: JobStore, retention_days: int, now: float | None = None) -> int:
    """Delete the finished and failed jobs last updated more than ``retention_days`` ago; return how many."""
    if retention_days <= 0:
        return 0
    return jobs.prune((time.time() if now is None else now) - retention_days * DAY_SECONDS)


class Pruner:
    """A daemon thread that prunes at start and then every :data:`PRUNE_EVERY_SECONDS` until ``stop`` is set.
    ``open_jobs`` opens the job store it uses (and closes it on exit)."""

    def __init__(
        self,
        open_jobs: Callable[[], AbstractContextManager[JobStore]],
        retention_days: int,
        stop: threading.Event,
        every_seconds: float = PRUNE_EVERY_SECONDS,
    ) -> None:
        self._open = open_jobs
        self._days = retention_days
        self._stop = stop
        self._every = every_seconds
        self.pruned = 0  # jobs deleted so far
        self._thread = threading.Thread(target=self._run, name="videoconverter-retention", daemon=True)

    def start(self) -> Pruner:
        self._thread.start()
        return self

    def join(self, timeout_seconds: float) -> None:
        self._thread.join(timeout_seconds)

    def _run(self) -> None:
        try:
            with self._open() as jobs:
                while not self._stop.is_set():
                    count = prune_older_than(jobs, self._days)
                    self.pruned += count
                    if count:
                        log.info("retention: deleted %d job(s) finished more than %d day(s) ago", count, self._days)
                    self._stop.wait(self._every)
        except Exception:  # retention saves space: a failure is logged and never stops the workers
            log.warning("retention: pruning the job store failed", exc_info=True)
