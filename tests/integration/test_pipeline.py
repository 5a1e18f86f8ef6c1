"""The embedded pipeline end to end: upload -> topic -> queues -> workers with real FFmpeg -> outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ALSO_SPLIT, wait_until
from videoconverter.brokers.base import Delivery
from videoconverter.chunking.messages import chunk_message
from videoconverter.consumer import Settled
from videoconverter.events import ObjectCreated, object_created_event
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services
from videoconverter.transcode.probe import probe
from videoconverter.transcode.runner import ffmpeg_executable
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg
IN = "videoconverter-input"


def drain(svc: Services, ffmpeg: str | None = None) -> None:
    """Run one worker per rendition until its queue is empty (delayed retries included)."""
    for rendition in svc.config.renditions:
        Worker(svc, rendition, ffmpeg=ffmpeg).run(exit_when_idle=True)


def work_until(svc: Services, rendition: str, done: Callable[[], object], timeout_seconds: float = 60) -> None:
    """Run a worker of ``rendition`` until ``done()`` (a job's outcome, however many messages it takes: a split
    job is several; and on AMQP an idle queue cannot tell a message another worker holds), then stop it after
    its current message."""
    worker = Worker(svc, svc.config.rendition(rendition))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(done, timeout_seconds, message=f"the {rendition} worker's job")
    finally:
        worker.drain.set()
        thread.join(timeout=30)


def job(svc: Services, key: str, etag: str, rendition: str):
    record = svc.jobs.get(JobId(key, etag, rendition))
    assert record is not None, f"no job for {key} {rendition}"
    return record


def output_of(svc: Services, rendition: str, key: str, tmp_path: Path):
    local = tmp_path / f"out-{rendition}.mp4"
    info = svc.store.get_file(svc.config.rendition(rendition).output_bucket, key, local)
    return info, probe(local, svc.config.limits)


def slow_ffmpeg(tmp_path: Path, sleep_seconds: float, every_run: bool = False) -> str:
    """A stand-in for FFmpeg that writes its pid, waits, then runs the real one: a job longer than a lease. It
    waits on its first run only unless ``every_run``, as a job runs FFmpeg several times (a VMAF target's sample
    encodes first)."""
    script = tmp_path / "slow-ffmpeg"
    pid_file, slept = tmp_path / "ffmpeg.pid", tmp_path / "ffmpeg.slept"
    script.write_text(
        f"#!{sys.executable}\nimport os, sys, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"if {every_run} or not os.path.exists({str(slept)!r}):\n"
        f"    open({str(slept)!r}, 'w').close()\n"
        f"    time.sleep({sleep_seconds})\n"
        f"os.execv({ffmpeg_executable()!r}, [{ffmpeg_executable()!r}] + sys.argv[1:])\n"
    )
    script.chmod(0o755)
    return str(script)


def start_worker(config_path: Path, ffmpeg: str, *args: str) -> subprocess.Popen[bytes]:
    """`videoconverter worker ARGS` as its own process, on ``config_path``, running ``ffmpeg``."""
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config_path), "IMAGEIO_FFMPEG_EXE": ffmpeg}
    return subprocess.Popen(
        [sys.executable, "-m", "videoconverter", "worker", *args], env=env, stderr=subprocess.DEVNULL
    )


@ALSO_SPLIT
def test_an_upload_becomes_every_rendition(svc: Services, small_clip: Path, tmp_path: Path) -> None:
    uploaded = svc.store.put_file(IN, "holiday clip.mp4", small_clip)
    assert {r.state for r in svc.jobs.find("holiday clip.mp4")} == {JobState.QUEUED}
    drain(svc)
    for name, (width, height) in {"small": (214, 120), "smaller": (160, 90)}.items():
        record = job(svc, "holiday clip.mp4", uploaded.etag, name)
        assert (record.state, record.attempts, record.progress_percent) == (JobState.DONE, 1, 100)
        assert record.output_url == f"s3://{svc.config.rendition(name).output_bucket}/holiday clip.mp4"
        info, media = output_of(svc, name, "holiday clip.mp4", tmp_path)
        assert info.metadata["source-etag"] == uploaded.etag
        assert media.display_size == (width, height) and media.has_audio and media.video_codec == "h264"
    logs = [line.message for line in svc.jobs.logs("holiday clip.mp4")]
    assert any("probed: 320x180" in m for m in logs) and any(m.startswith("done:") for m in logs)
    assert all(svc.broker.depth(r.queue).total == 0 for r in svc.config.renditions)


def test_a_redelivered_event_is_acked_without_converting_again(svc: Services, small_clip: Path, tmp_path: Path) -> None:
    uploaded = svc.store.put_file(IN, "twice.mp4", small_clip)
    drain(svc)
    first = svc.store.head("videoconverter-output-small", "twice.mp4")
    event = ObjectCreated(IN, "twice.mp4", uploaded.size, uploaded.etag, "00FF")
    svc.broker.publish(svc.config.topic, json.dumps(object_created_event(event)))
    drain(svc)
    again = svc.store.head("videoconverter-output-small", "twice.mp4")
    assert first is not None and again is not None and again.last_modified == first.last_modified
    assert "already existed" in job(svc, "twice.mp4", uploaded.etag, "small").note


def test_not_a_video_is_dead_lettered_at_once_with_the_reason(svc: Services, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    uploaded = svc.store.put_file(IN, "notes.mp4", text)
    drain(svc)
    record = job(svc, "notes.mp4", uploaded.etag, "small")
    assert (record.state, record.attempts) == (JobState.FAILED, 1)
    assert "not a readable video" in record.error
    letters = svc.broker.dead_letters(svc.config.rendition("small").queue)
    assert len(letters) == 1 and "not a readable video" in letters[0].reason
    assert svc.store.head("videoconverter-output-small", "notes.mp4") is None


def test_malformed_messages_are_dead_lettered_and_the_worker_goes_on(svc: Services, small_clip: Path) -> None:
    svc.broker.send(svc.config.rendition("small").queue, "{not json")
    svc.broker.send(svc.config.rendition("small").queue, json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    uploaded = svc.store.put_file(IN, "after.mp4", small_clip)
    Worker(svc, svc.config.rendition("small")).run(exit_when_idle=True)
    assert job(svc, "after.mp4", uploaded.etag, "small").state is JobState.DONE
    reasons = [d.reason for d in svc.broker.dead_letters(svc.config.rendition("small").queue)]
    assert len(reasons) == 1 and reasons[0].startswith("malformed message")


def test_transient_failures_retry_then_dead_letter_then_redrive_succeeds(svc: Services, small_clip: Path) -> None:
    uploaded = svc.store.put_file(IN, "flaky.mp4", small_clip)
    small = svc.config.rendition("small")
    Worker(svc, small, ffmpeg="/nonexistent/ffmpeg").run(exit_when_idle=True)
    record = job(svc, "flaky.mp4", uploaded.etag, "small")
    assert (record.state, record.attempts) == (JobState.FAILED, svc.config.max_receive_count)
    assert record.error.startswith(f"gave up after {svc.config.max_receive_count} attempts")
    assert svc.broker.redrive(small.queue) == 1
    assert svc.jobs.requeue_failed(rendition="small") == 1
    Worker(svc, small).run(exit_when_idle=True)
    assert job(svc, "flaky.mp4", uploaded.etag, "small").state is JobState.DONE


def test_an_event_for_replaced_content_does_not_overwrite_the_newer_output(
    svc: Services, small_clip: Path, other_clip: Path, tmp_path: Path
) -> None:
    old = svc.store.put_file(IN, "same.mp4", small_clip)
    new = svc.store.put_file(IN, "same.mp4", other_clip)  # replaced before any worker ran
    drain(svc)
    assert "superseded" in job(svc, "same.mp4", old.etag, "small").note
    assert job(svc, "same.mp4", old.etag, "small").output_url == ""
    assert job(svc, "same.mp4", new.etag, "small").state is JobState.DONE
    info, media = output_of(svc, "small", "same.mp4", tmp_path)
    assert info.metadata["source-etag"] == new.etag and not media.has_audio
    # A late duplicate of the old event, with an older sequencer, changes nothing either.
    late = ObjectCreated(IN, "same.mp4", old.size, old.etag, "0001")
    svc.broker.publish(svc.config.topic, json.dumps(object_created_event(late)))
    drain(svc)
    assert svc.store.head("videoconverter-output-small", "same.mp4").metadata["source-etag"] == new.etag  # type: ignore[union-attr]


def test_a_job_longer_than_its_lease_runs_once_thanks_to_heartbeats(
    svc: Services, small_clip: Path, tmp_path: Path
) -> None:
    assert svc.config.visibility_timeout_seconds == 5
    uploaded = svc.store.put_file(IN, "long.mp4", small_clip)
    small = svc.config.rendition("small")
    rival_deliveries: list[Delivery] = []

    def rival() -> None:  # another worker polling the same queue the whole time
        handler = Worker(svc, small)
        while not done.is_set():
            for delivery in svc.broker.receive(small.queue, wait_seconds=0.5, visibility_timeout_seconds=5):
                rival_deliveries.append(delivery)
                handler.handle(delivery)  # with chunking forced on: the pieces and the join, queued by the split

    done = threading.Event()
    worker = threading.Thread(target=Worker(svc, small, ffmpeg=slow_ffmpeg(tmp_path, 8)).run, args=(1,))
    worker.start()
    wait_until(
        lambda: job(svc, "long.mp4", uploaded.etag, "small").state is JobState.RUNNING,
        20,
        message="the worker to take the job",
    )
    thread = threading.Thread(target=rival)
    thread.start()
    try:
        worker.join(timeout=60)
        wait_until(lambda: job(svc, "long.mp4", uploaded.etag, "small").state.terminal, 60, message="the job")
    finally:
        done.set()
        thread.join()
    record = job(svc, "long.mp4", uploaded.etag, "small")
    assert (record.state, record.attempts) == (JobState.DONE, 1)
    # The event was never delivered again; a split job's pieces are new messages, each delivered once.
    assert [d for d in rival_deliveries if chunk_message(d.body) is None] == []
    assert all(d.attempt == 1 for d in rival_deliveries)


def test_a_duplicate_event_leased_while_its_job_runs_is_dropped_not_converted_again(
    svc: Services, small_clip: Path, tmp_path: Path
) -> None:
    uploaded = svc.store.put_file(IN, "dup.mp4", small_clip)  # its event, and a second copy (S3 may send two)
    event = ObjectCreated(IN, "dup.mp4", uploaded.size, uploaded.etag, "00FF")
    svc.broker.publish(svc.config.topic, json.dumps(object_created_event(event)))
    smaller = svc.config.rendition("smaller")  # a fixed CRF: one FFmpeg run
    first = threading.Thread(target=Worker(svc, smaller, ffmpeg=slow_ffmpeg(tmp_path, 4)).run, args=(1,))
    first.start()
    try:
        wait_until(lambda: (tmp_path / "ffmpeg.pid").exists(), 20, message="the first copy's FFmpeg to start")
        [copy] = svc.broker.receive(smaller.queue, wait_seconds=5, visibility_timeout_seconds=5)
        settled = Worker(svc, smaller, ffmpeg=str(tmp_path / "no-ffmpeg-here")).handle(copy)
    finally:
        first.join(timeout=60)
    assert settled.how is Settled.ACKED  # dropped at once, while the first copy's FFmpeg still ran
    record = job(svc, "dup.mp4", uploaded.etag, "smaller")
    assert (record.state, record.attempts) == (JobState.DONE, 1) and record.holder != copy.message_id
    logs = [line.message for line in svc.jobs.logs("dup.mp4")]
    assert any(m.startswith(f"duplicate event (message {copy.message_id})") for m in logs)
    assert [m for m in logs if m.startswith("attempt 1 started")] == [f"attempt 1 started on {smaller.queue}"]
    assert svc.broker.depth(smaller.queue).total == 0


@ALSO_SPLIT
def test_stopping_a_worker_mid_job_hands_the_job_back(svc: Services, small_clip: Path, tmp_path: Path) -> None:
    uploaded = svc.store.put_file(IN, "stop.mp4", small_clip)
    smaller = svc.config.rendition("smaller")  # a fixed CRF: see test_faults
    stop = threading.Event()
    worker = Worker(svc, smaller, stop=stop, ffmpeg=slow_ffmpeg(tmp_path, 60))
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: (tmp_path / "ffmpeg.pid").exists(), 20, message="FFmpeg to start (a split job's: a piece's)")
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    record = job(svc, "stop.mp4", uploaded.etag, "smaller")
    assert record.state is JobState.QUEUED and "handed back" in record.error
    Worker(svc, smaller).run(exit_when_idle=True)
    record = job(svc, "stop.mp4", uploaded.etag, "smaller")
    assert (record.state, record.attempts) == (JobState.DONE, 2)


def test_reconcile_queues_files_that_arrived_without_an_event(svc: Services, small_clip: Path) -> None:
    if svc.config.storage_url.startswith("file://"):  # copied into the bucket folder by hand
        bucket_dir = Path(svc.config.storage_url.removeprefix("file://")) / IN
        (bucket_dir / "dropped.MP4").write_bytes(small_clip.read_bytes())
        (bucket_dir / "ignored.txt").write_text("not an input")
    else:  # on S3: uploaded by another tool while the bucket notification was off
        import boto3

        s3 = boto3.client("s3")
        saved = s3.get_bucket_notification_configuration(Bucket=IN)
        s3.put_bucket_notification_configuration(Bucket=IN, NotificationConfiguration={})
        s3.put_object(Bucket=IN, Key="dropped.MP4", Body=small_clip.read_bytes())
        s3.put_object(Bucket=IN, Key="ignored.txt", Body=b"not an input")
        s3.put_bucket_notification_configuration(
            Bucket=IN, NotificationConfiguration={k: v for k, v in saved.items() if k.endswith("Configurations")}
        )
        for rendition in svc.config.renditions:  # the s3:TestEvent of turning them on again
            for delivery in svc.broker.receive(rendition.queue, max_messages=10, wait_seconds=2):
                assert "s3:TestEvent" in delivery.body
                svc.broker.ack(delivery)
    assert svc.ingest.reconcile(svc.store) == 1
    assert svc.ingest.reconcile(svc.store) == 0
    drain(svc)
    assert {r.state for r in svc.jobs.find("dropped.MP4")} == {JobState.DONE}


@ALSO_SPLIT
def test_a_worker_killed_mid_job_loses_nothing_and_leaves_no_ffmpeg(
    svc: Services, small_clip: Path, pipeline_config_path: Path, tmp_path: Path
) -> None:
    uploaded = svc.store.put_file(IN, "killed.mp4", small_clip)
    victim = start_worker(pipeline_config_path, slow_ffmpeg(tmp_path, 60), "smaller")  # a fixed CRF: see test_faults
    pid_file = tmp_path / "ffmpeg.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, message="FFmpeg to start")
    ffmpeg_pid = int(pid_file.read_text())
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    def gone() -> bool:
        try:
            os.kill(ffmpeg_pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{ffmpeg_pid}/stat") as stat:  # a zombie awaiting its reaper is gone too
            return stat.read().split(")")[-1].split()[0] == "Z"

    wait_until(gone, 10, message="the orphaned FFmpeg to die")
    # After the lease (5 s) expires, or the server saw the connection drop.
    work_until(svc, "smaller", lambda: job(svc, "killed.mp4", uploaded.etag, "smaller").state.terminal)
    record = job(svc, "killed.mp4", uploaded.etag, "smaller")
    assert (record.state, record.attempts) == (JobState.DONE, 2)
