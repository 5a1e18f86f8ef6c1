"""Faults on the embedded backends: every job ends done exactly once or dead-lettered with its reason."""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALSO_SPLIT, wait_until
from tests.integration.test_pipeline import IN, drain, job, slow_ffmpeg, start_worker, work_until
from videoconverter import dead_letters
from videoconverter.brokers.base import QueueSpec, Topology
from videoconverter.brokers.sqlite import SQLiteBroker
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg


def writes(svc: Services, key: str, rendition: str) -> int:
    return sum(1 for line in svc.jobs.logs(key) if line.rendition == rendition and line.message.startswith("wrote "))


@ALSO_SPLIT
def test_a_frozen_worker_past_its_lease_neither_acks_nor_overwrites(
    svc: Services, small_clip: Path, pipeline_config_path: Path, tmp_path: Path
) -> None:
    uploaded = svc.store.put_file(IN, "frozen.mp4", small_clip)
    # "smaller" has a fixed CRF: FFmpeg's first run is the encode (with chunking forced on: a piece's), not a
    # VMAF search's sample. So is it in the tests below.
    frozen = start_worker(pipeline_config_path, slow_ffmpeg(tmp_path, 2), "smaller", "--exit-when-idle")
    try:
        wait_until(lambda: (tmp_path / "ffmpeg.pid").exists(), 30, message="the first worker to start FFmpeg")
        frozen.send_signal(signal.SIGSTOP)
        # Lease (5 s) expires; a second worker gets the message again and finishes the job (split: the frozen
        # worker's piece, then the join).
        work_until(svc, "smaller", lambda: job(svc, "frozen.mp4", uploaded.etag, "smaller").state.terminal)
        record = job(svc, "frozen.mp4", uploaded.etag, "smaller")
        assert (record.state, record.attempts) == (JobState.DONE, 2)
        written = svc.store.head("videoconverter-output-smaller", "frozen.mp4")
        frozen.send_signal(signal.SIGCONT)
        assert frozen.wait(timeout=60) == 0
    finally:
        if frozen.poll() is None:
            frozen.send_signal(signal.SIGCONT)
            frozen.kill()
    after = svc.store.head("videoconverter-output-smaller", "frozen.mp4")
    assert written is not None and after is not None and after.last_modified == written.last_modified
    assert writes(svc, "frozen.mp4", "smaller") == 1
    assert any("lease lost" in line.message for line in svc.jobs.logs("frozen.mp4"))
    assert job(svc, "frozen.mp4", uploaded.etag, "smaller").state is JobState.DONE


@ALSO_SPLIT
def test_a_hanging_ffmpeg_is_killed_retried_then_dead_lettered(svc: Services, small_clip: Path, tmp_path: Path) -> None:
    uploaded = svc.store.put_file(IN, "hang.mp4", small_clip)
    limits = dataclasses.replace(svc.config.limits, transcode_timeout_seconds=1.5)
    impatient = dataclasses.replace(svc, config=dataclasses.replace(svc.config, limits=limits))
    Worker(impatient, svc.config.rendition("smaller"), ffmpeg=slow_ffmpeg(tmp_path, 3600, every_run=True)).run(
        exit_when_idle=True
    )
    record = job(svc, "hang.mp4", uploaded.etag, "smaller")
    assert (record.state, record.attempts) == (JobState.FAILED, svc.config.max_receive_count)
    assert "ran past the 2 s limit" in record.error
    assert [d.reason for d in svc.broker.dead_letters(svc.config.rendition("smaller").queue)] == [record.error]
    pid = int((tmp_path / "ffmpeg.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@ALSO_SPLIT
def test_a_failed_output_write_leaves_nothing_and_the_retry_succeeds(
    svc: Services, small_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded = svc.store.put_file(IN, "diskfull.mp4", small_clip)
    real_put_stream = svc.store.put_stream
    failures = []

    class FullDisk(io.RawIOBase):
        """Yields some bytes, then fails as a full disk would, mid-write."""

        def __init__(self) -> None:
            self.sent = False

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.sent:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.sent = True
            buffer[:1000] = b"x" * 1000
            return 1000

    small = svc.config.rendition("small")
    worker = Worker(svc, small)

    def put_file(bucket: str, key: str, source: Path, metadata: Any = None, progress: Any = None) -> Any:
        if bucket.startswith("videoconverter-output") and not failures:  # a split job's first piece, if split
            failures.append(key)
            worker.drain.set()  # stop after this message
            return real_put_stream(bucket, key, io.BufferedReader(FullDisk()), metadata)
        with open(source, "rb") as stream:
            return real_put_stream(bucket, key, stream, metadata)

    monkeypatch.setattr(svc.store, "put_file", put_file)
    worker.run(exit_when_idle=True)
    assert len(failures) == 1
    record = job(svc, "diskfull.mp4", uploaded.etag, "small")
    assert record.state is JobState.QUEUED and "No space left" in record.error
    assert svc.store.head(small.output_bucket, "diskfull.mp4") is None
    if svc.config.storage_url.startswith("file://"):
        assert list((Path(svc.config.storage_url.removeprefix("file://")) / ".tmp").iterdir()) == []
    else:  # no multipart upload left open on S3
        import boto3

        assert boto3.client("s3").list_multipart_uploads(Bucket=small.output_bucket).get("Uploads", []) == []
    Worker(svc, small).run(exit_when_idle=True)
    record = job(svc, "diskfull.mp4", uploaded.etag, "small")
    assert (record.state, record.attempts) == (JobState.DONE, 2)
    assert svc.store.head(small.output_bucket, "diskfull.mp4") is not None


def test_uploads_are_accepted_while_every_worker_is_down(svc: Services, small_clip: Path) -> None:
    uploaded = [svc.store.put_file(IN, f"while-down-{i}.mp4", small_clip) for i in range(4)]
    assert all(svc.broker.depth(r.queue).visible == 4 for r in svc.config.renditions)
    drain(svc)
    for info in uploaded:
        assert {r.state for r in svc.jobs.find(info.key)} == {JobState.DONE}
        assert all(writes(svc, info.key, r.name) == 1 for r in svc.config.renditions)


PUBLISHER = """
import sys
from pathlib import Path
from videoconverter.brokers.sqlite import SQLiteBroker
broker = SQLiteBroker(Path(sys.argv[1]))
for i in range(100000):
    broker.publish("t", f"m{i}")
    print(f"m{i}", flush=True)
"""

CONSUMER = """
import sys
from pathlib import Path
from videoconverter.brokers.sqlite import SQLiteBroker
broker = SQLiteBroker(Path(sys.argv[1]))
while True:
    for delivery in broker.receive("q", wait_seconds=1, visibility_timeout_seconds=2):
        broker.ack(delivery)
        print(delivery.body, flush=True)
"""


def _run_then_kill(script: str, db: Path, lines_before_kill: int) -> list[str]:
    process = subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    seen = [process.stdout.readline().strip() for _ in range(lines_before_kill)]
    process.send_signal(signal.SIGKILL)
    # Read the rest through the same buffered file: communicate(timeout=...) reads the raw pipe and would drop the
    # lines readline() had already buffered (CI lost two of them so).
    rest = process.stdout.read()
    process.wait(timeout=30)
    return seen + rest.split()


def test_killing_sqlite_writers_mid_commit_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "broker.sqlite3"
    broker = SQLiteBroker(db)
    broker.declare(Topology("t", (QueueSpec("q", "q-dlq", 3600, 5),)))
    published = _run_then_kill(PUBLISHER, db, 300)  # killed while publishing as fast as it can
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert broker.depth("q").total >= len(published)  # every confirmed publish is there
    acked = _run_then_kill(CONSUMER, db, 100)  # killed while acking as fast as it can
    rest = []
    while got := broker.receive("q", max_messages=50, wait_seconds=3, visibility_timeout_seconds=60):
        for delivery in got:
            broker.ack(delivery)
            rest.append(delivery.body)
    assert not set(acked) & set(rest), "an acknowledged message came back"
    assert len(acked) == len(set(acked)) and len(rest) == len(set(rest)), "a message was delivered twice"
    missing = set(published) - set(acked) - set(rest)
    assert len(missing) <= 1, f"lost {missing}"  # at most the one acked in the instant before its print
    broker.close()


def test_a_job_with_a_malformed_key_in_its_event_is_dead_lettered(svc: Services) -> None:
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": IN}, "object": {"key": "..%2F..%2Fetc%2Fpasswd.mp4", "size": 1, "eTag": "x"}},
            }
        ]
    }
    svc.broker.publish(svc.config.topic, json.dumps(event))
    drain(svc)
    reasons = [d.reason for d in svc.broker.dead_letters(svc.config.rendition("small").queue)]
    assert len(reasons) == 1 and "'..'" in reasons[0]
    assert job(svc, "../../etc/passwd.mp4", "x", "small").state is JobState.FAILED


def test_events_for_missing_objects_are_dead_lettered_and_other_events_ignored(svc: Services) -> None:
    gone = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": IN}, "object": {"key": "deleted+meanwhile.mp4", "size": 10, "eTag": "abc"}},
            }
        ]
    }
    removed = {
        "Records": [{"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": IN}, "object": {"key": "old.mp4"}}}]
    }
    svc.broker.publish(svc.config.topic, json.dumps(gone))
    svc.broker.publish(svc.config.topic, json.dumps(removed))
    drain(svc)
    for rendition in svc.config.renditions:
        reasons = [d.reason for d in svc.broker.dead_letters(rendition.queue)]
        assert len(reasons) == 1 and "no longer exists" in reasons[0]
        assert svc.broker.depth(rendition.queue).total == 0
    assert job(svc, "deleted meanwhile.mp4", "abc", "small").state is JobState.FAILED
    assert svc.jobs.find("old.mp4") == []


@ALSO_SPLIT
def test_a_job_whose_every_worker_died_is_failed_with_the_brokers_reason(svc: Services, small_clip: Path) -> None:
    """Each worker that took the message died before settling it (its lease handed back, as `up`'s supervisor
    does), max_receive_count times: the broker dead-letters it itself, and a worker's sweep fails the job, which
    would otherwise stay running for ever (and `jobs --wait` with it); a redrive then converts it."""
    uploaded = svc.store.put_file(IN, "every-worker-died.mp4", small_clip)
    rendition = next(r for r in svc.config.renditions if r.name == "smaller")
    worker = Worker(svc, rendition)
    for attempt in range(1, svc.config.max_receive_count + 1):
        (delivery,) = svc.broker.receive(rendition.queue, wait_seconds=5, visibility_timeout_seconds=30)
        assert delivery.attempt == attempt
        svc.jobs.start(JobId("every-worker-died.mp4", uploaded.etag, "smaller"), attempt)  # as the worker does
        svc.broker.release(delivery)  # the worker died here
    assert job(svc, "every-worker-died.mp4", uploaded.etag, "smaller").state is JobState.RUNNING
    assert worker.run(exit_when_idle=True) == 0  # the broker dead-letters it: no worker sees it again
    record = job(svc, "every-worker-died.mp4", uploaded.etag, "smaller")
    assert record.state is JobState.FAILED
    assert record.error.startswith("dead-lettered by the broker:"), record.error
    assert any("dead-lettered by the broker" in line.message for line in svc.jobs.logs("every-worker-died.mp4"))
    assert len(svc.broker.dead_letters(rendition.queue)) == 1
    redriven = dead_letters.redrive(svc, [rendition])
    assert redriven == [{"rendition": "smaller", "redriven": 1, "jobs_requeued": 1}]
    work_until(svc, "smaller", lambda: job(svc, "every-worker-died.mp4", uploaded.etag, "smaller").state.terminal)
    assert job(svc, "every-worker-died.mp4", uploaded.etag, "smaller").state is JobState.DONE
