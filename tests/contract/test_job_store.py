"""The job store contract: every backend passes these tests unchanged."""

from __future__ import annotations

import json

from videoconverter.jobs.base import JobId, JobState, JobStore

JOB = JobId("holiday.mp4", "etag1", "720p")


def test_enqueue_creates_a_queued_record_once(job_store: JobStore) -> None:
    record = job_store.enqueue(JOB, sequencer="0A")
    assert (record.state, record.attempts, record.sequencer) == (JobState.QUEUED, 0, "0A")
    job_store.start(JOB, attempt=1)
    again = job_store.enqueue(JOB, sequencer="0A")
    assert again.state is JobState.RUNNING  # a late enqueue never rewinds a job


def test_a_job_runs_to_done_with_progress_and_output(job_store: JobStore) -> None:
    job_store.enqueue(JOB)
    running = job_store.start(JOB, attempt=1)
    assert running.state is JobState.RUNNING and running.attempts == 1 and running.started_at
    job_store.progress(JOB, 42.5)
    current = job_store.get(JOB)
    assert current is not None and current.progress_percent == 42.5
    done = job_store.finish(JOB, "s3://out/holiday.mp4", note="kept its size")
    assert done.state is JobState.DONE and done.state.terminal
    assert (done.output_url, done.note, done.progress_percent) == ("s3://out/holiday.mp4", "kept its size", 100)
    assert done.finished_at is not None and done.finished_at >= done.created_at


def test_finish_keeps_the_output_size_the_worker_wrote(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    done = job_store.finish(JOB, "s3://out/holiday.mp4", output_size=5_000_000_000)  # more than 32 bits hold
    assert done.output_size == 5_000_000_000
    stored = job_store.get(JOB)
    assert stored is not None and stored.output_size == 5_000_000_000
    superseded = JobId("holiday.mp4", "etag0", "720p")
    job_store.start(superseded, attempt=1)
    assert job_store.finish(superseded, "", note="superseded").output_size is None  # nothing written
    assert job_store.finish(JOB, "s3://out/holiday.mp4").output_size is None  # done again: the size unknown


def test_start_creates_the_record_when_the_enqueue_was_missed(job_store: JobStore) -> None:
    record = job_store.start(JOB, attempt=3)
    assert (record.state, record.attempts) == (JobState.RUNNING, 3)


def test_retry_then_fail_keep_the_error_and_stderr(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    retried = job_store.retry(JOB, "FFmpeg failed (exit code 1)", "moov atom not found")
    assert retried.state is JobState.QUEUED and not retried.state.terminal
    assert retried.error == "FFmpeg failed (exit code 1)"
    job_store.start(JOB, attempt=2)
    failed = job_store.fail(JOB, "gave up after 2 attempts", "moov atom not found")
    assert failed.state is JobState.FAILED and failed.state.terminal
    assert (failed.attempts, failed.error, failed.stderr_tail) == (2, "gave up after 2 attempts", "moov atom not found")


def test_fail_without_a_record_creates_one(job_store: JobStore) -> None:
    failed = job_store.fail(JOB, "not a video")
    assert failed.state is JobState.FAILED and failed.error == "not a video"


def test_progress_is_ignored_unless_running(job_store: JobStore) -> None:
    job_store.enqueue(JOB)
    job_store.progress(JOB, 50)
    record = job_store.get(JOB)
    assert record is not None and record.progress_percent == 0


def test_requeue_failed_by_rendition(job_store: JobStore) -> None:
    other = JobId("holiday.mp4", "etag1", "1080p")
    job_store.fail(JOB, "boom")
    job_store.fail(other, "boom")
    assert job_store.requeue_failed(rendition="720p") == 1
    assert job_store.get(JOB).state is JobState.QUEUED  # type: ignore[union-attr]
    assert job_store.get(other).state is JobState.FAILED  # type: ignore[union-attr]
    assert job_store.requeue_failed() == 1


def test_find_filters_by_key_and_state(job_store: JobStore) -> None:
    job_store.enqueue(JobId("a.mp4", "e1", "720p"))
    job_store.enqueue(JobId("a.mp4", "e1", "1080p"))
    job_store.enqueue(JobId("b.mp4", "e2", "720p"))
    job_store.fail(JobId("b.mp4", "e2", "720p"), "bad")
    assert {r.id.rendition for r in job_store.find("a.mp4")} == {"720p", "1080p"}
    assert [r.id.key for r in job_store.find(states=[JobState.FAILED])] == ["b.mp4"]
    assert len(job_store.find()) == 3
    assert job_store.find("missing.mp4") == []
    assert job_store.get(JobId("a.mp4", "other-etag", "720p")) is None


def test_a_new_upload_of_the_same_key_is_a_new_job(job_store: JobStore) -> None:
    job_store.enqueue(JobId("a.mp4", "old", "720p"))
    job_store.finish(JobId("a.mp4", "old", "720p"), "s3://out/a.mp4")
    fresh = job_store.enqueue(JobId("a.mp4", "new", "720p"))
    assert fresh.state is JobState.QUEUED
    assert len(job_store.find("a.mp4")) == 2


def test_log_lines_are_kept_in_order_per_key(job_store: JobStore) -> None:
    job_store.append_log("a.mp4", "720p", "INFO", "queued")
    job_store.append_log("b.mp4", "720p", "INFO", "other key")
    job_store.append_log("a.mp4", "1080p", "ERROR", "not a video")
    lines = job_store.logs("a.mp4")
    assert [(line.rendition, line.level, line.message) for line in lines] == [
        ("720p", "INFO", "queued"),
        ("1080p", "ERROR", "not a video"),
    ]
    assert lines[0].at <= lines[1].at
    assert job_store.logs("nothing.mp4") == []


def test_as_json_has_the_documented_fields(job_store: JobStore) -> None:
    record = job_store.fail(JOB, "not a video")
    shown = record.as_json()
    assert set(shown) == {
        "key",
        "source_etag",
        "rendition",
        "state",
        "attempts",
        "progress_percent",
        "output",
        "error",
        "stderr_tail",
        "note",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "quality",  # quality per title: the VMAF search, or null
    }
    assert (shown["state"], shown["error"], shown["output"], shown["quality"]) == ("failed", "not a video", None, None)


def test_finish_keeps_a_vmaf_searchs_choices_as_json(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    quality = json.dumps({"samples": [], "search_seconds": 1.5, "outputs": [{"name": "720p", "crf": 24}]})
    done = job_store.finish(JOB, "s3://out/holiday.mp4", note="720p: CRF 24 for VMAF 95", quality=quality)
    assert done.quality == quality
    stored = job_store.get(JOB)
    assert stored is not None and stored.as_json()["quality"] == json.loads(quality)
    assert job_store.finish(JOB, "s3://out/holiday.mp4").as_json()["quality"] is None  # a fixed CRF: none
