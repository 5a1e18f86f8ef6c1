"""`jobs --wait` on the embedded job store wakes when a job changes, from any process, instead of polling.

Each wait below is given far longer than the test allows it (a poll would sleep it out), and must return within a
deadline after another store (as another process would) records the change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from videoconverter.cli import jobs as cli_jobs
from videoconverter.config import Config
from videoconverter.jobs.base import JobId, JobRecord
from videoconverter.jobs.sqlite import SQLiteJobStore
from videoconverter.pipeline import Services, open_services, provision

LONG_SECONDS = 60.0  # what the waits are allowed: a wait that sleeps it out fails the test's deadline
PROMPT_SECONDS = 2.0  # how soon after the change a wait must return, on a loaded 2-core machine


@pytest.fixture
def svc(tiny_config: Config) -> Iterator[Services]:
    opened = open_services(tiny_config)
    provision(opened)
    yield opened
    opened.close()


def test_a_waiter_wakes_when_another_store_of_the_database_records_a_change(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    waiter, worker = SQLiteJobStore(path), SQLiteJobStore(path)
    job = JobId("clip.mp4", "e", "720p")
    worker.start(job, attempt=1)
    try:
        listening, woke = threading.Event(), threading.Event()

        def wait() -> None:
            waiter.wait_for_change(0.0)  # this thread listens from here on
            listening.set()
            waiter.wait_for_change(LONG_SECONDS)
            woke.set()

        thread = threading.Thread(target=wait)
        thread.start()
        assert listening.wait(PROMPT_SECONDS)
        worker.progress(job, 50.0)  # not a change of state: no ring
        assert not woke.wait(0.3)
        changed = time.monotonic()
        worker.finish(job, "s3://out/clip.mp4")
        assert woke.wait(PROMPT_SECONDS), "the wait slept on after the job was finished"
        assert time.monotonic() - changed < PROMPT_SECONDS
        thread.join()
        waiter.wait_for_change(0.0)  # the main thread listens too, from here on
        worker.retry(job, "a change between two waits")  # rings while nobody waits: kept for the next wait
        started = time.monotonic()
        waiter.wait_for_change(LONG_SECONDS)
        assert time.monotonic() - started < PROMPT_SECONDS
    finally:
        waiter.close()
        worker.close()


def test_jobs_wait_returns_as_soon_as_the_last_job_is_done(
    svc: Services, tiny_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_jobs, "CHANGE_POLL_SECONDS", LONG_SECONDS)  # only a ring can wake it in time
    monkeypatch.setattr(cli_jobs, "QUEUE_POLL_SECONDS", LONG_SECONDS)
    jobs = [JobId("clip.mp4", "e", r.name) for r in tiny_config.renditions]
    worker = SQLiteJobStore(tiny_config.data_dir / "jobs.sqlite3")
    for job in jobs:
        worker.start(job, attempt=1)
    waited: list[tuple[list[JobRecord], bool]] = []
    returned = threading.Event()

    def wait() -> None:
        records, finished, _ = cli_jobs._wait_for_jobs(svc, "clip.mp4", LONG_SECONDS)
        waited.append((records, finished))
        returned.set()

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        worker.finish(jobs[0], "s3://out/clip.mp4")
        assert not returned.wait(0.3)  # one job still running
        done = time.monotonic()
        worker.finish(jobs[1], "s3://out/clip.mp4")
        assert returned.wait(PROMPT_SECONDS), "jobs --wait slept on after the last job was done"
        assert time.monotonic() - done < PROMPT_SECONDS
    finally:
        for job in jobs:  # never leave the thread waiting a minute
            worker.finish(job, "")
        thread.join()
        worker.close()
    records, finished = waited[0]
    assert finished and {r.state.value for r in records} == {"done"}
