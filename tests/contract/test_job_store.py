"""The job store contract: every backend passes these tests unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import uuid

import pytest

from videoconverter.errors import InvalidQueryError
from videoconverter.jobs import counters, open_job_store
from videoconverter.jobs.base import (
    ALL_JOBS,
    MAX_PAGE_SIZE,
    JobFilter,
    JobId,
    JobPage,
    JobRecord,
    JobState,
    JobStore,
)
from videoconverter.jobs.timeline import STAGES, Timeline, iso_time

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
        "timeline",  # the latest attempt's stage times (ISO-8601), or null
        "timeline_seconds",  # the same as seconds after the upload, or null
        "pieces",  # chunking: {"done": N, "planned": M}, or null for a job converted whole
    }
    assert (shown["state"], shown["error"], shown["output"], shown["quality"]) == ("failed", "not a video", None, None)
    assert (shown["timeline"], shown["timeline_seconds"]) == (None, None)


def test_finish_keeps_a_vmaf_searchs_choices_as_json(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    quality = json.dumps({"samples": [], "search_seconds": 1.5, "outputs": [{"name": "720p", "crf": 24}]})
    done = job_store.finish(JOB, "s3://out/holiday.mp4", note="720p: CRF 24 for VMAF 95", quality=quality)
    assert done.quality == quality
    stored = job_store.get(JOB)
    assert stored is not None and stored.as_json()["quality"] == json.loads(quality)
    assert job_store.finish(JOB, "s3://out/holiday.mp4").as_json()["quality"] is None  # a fixed CRF: none


UPLOADED = 1_764_650_000.125  # 2025-12-02T04:33:20.125Z
TIMELINE = Timeline(
    uploaded=UPLOADED,
    published=UPLOADED + 0.004,
    received=UPLOADED + 0.021,
    downloaded=UPLOADED + 0.05,
    probed=UPLOADED + 0.08,
    ffmpeg_started=UPLOADED + 0.082,
    ffmpeg_finished=UPLOADED + 12.4,
    written=UPLOADED + 12.6,
)


def test_finish_keeps_the_timeline_with_done_stamped_as_finished(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    done = job_store.finish(JOB, "s3://out/holiday.mp4", timeline=TIMELINE)
    stored = job_store.get(JOB)
    assert stored is not None and stored.timeline == done.timeline
    assert done.timeline == dataclasses.replace(TIMELINE, done=done.finished_at)
    shown = stored.as_json()
    assert shown["timeline"] == {
        "uploaded": "2025-12-02T04:33:20.125Z",
        "published": "2025-12-02T04:33:20.129Z",
        "received": "2025-12-02T04:33:20.146Z",
        "downloaded": "2025-12-02T04:33:20.175Z",
        "probed": "2025-12-02T04:33:20.205Z",
        "ffmpeg_started": "2025-12-02T04:33:20.207Z",
        "ffmpeg_finished": "2025-12-02T04:33:32.525Z",
        "written": "2025-12-02T04:33:32.725Z",
        "done": iso_time(done.finished_at or 0.0),
    }
    seconds = shown["timeline_seconds"]
    assert isinstance(seconds, dict) and list(seconds) == list(STAGES)
    assert (seconds["uploaded"], seconds["received"], seconds["ffmpeg_finished"]) == (0.0, 0.021, 12.4)


def test_a_new_attempt_starts_without_the_last_ones_timeline(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    failed_attempt = Timeline(uploaded=UPLOADED, received=UPLOADED + 0.02, downloaded=UPLOADED + 0.05)
    retried = job_store.retry(JOB, "FFmpeg failed (exit code 1)", timeline=failed_attempt)
    assert retried.timeline == failed_attempt  # what the failed attempt reached stays until the next starts
    assert job_store.retry(JOB, "again", timeline=None).timeline == failed_attempt  # None: the stored one stays
    assert job_store.start(JOB, attempt=2).timeline == Timeline()
    assert job_store.fail(JOB, "gave up", timeline=TIMELINE).timeline == TIMELINE
    assert job_store.fail(JOB, "gave up").timeline == TIMELINE


def test_a_job_done_without_stages_has_only_its_done_time(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    done = job_store.finish(JOB, "s3://out/holiday.mp4")
    assert done.timeline == Timeline(done=done.finished_at)
    assert done.as_json()["timeline_seconds"] is None  # seconds after the upload: its time unknown


# --- paged, filtered reads ------------------------------------------------------------------------------------


def _all_pages(job_store: JobStore, where: JobFilter, limit: int) -> list[list[JobRecord]]:
    pages, cursor = [], None
    while True:
        page = job_store.page(where, limit, cursor)
        pages.append(page.records)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def _newest_first(records: list[JobRecord]) -> list[JobId]:
    return [r.id for r in sorted(records, key=lambda r: r.created_at, reverse=True)]


def test_pages_are_newest_first_and_a_cursor_continues_after_the_last(job_store: JobStore) -> None:
    jobs = [JobId(f"clip-{i}.mp4", "e", "720p") for i in range(7)]
    made = [job_store.enqueue(job) for job in jobs]
    pages = _all_pages(job_store, ALL_JOBS, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r.id for page in pages for r in page] == _newest_first(made)
    assert len(_all_pages(job_store, ALL_JOBS, 7)) == 1  # a page that ends the listing has no cursor
    assert job_store.page(ALL_JOBS, 500).records == job_store.page().records
    assert job_store.page(JobFilter(key_prefix="nothing/")) == JobPage([], None)


def test_pages_filter_by_state_rendition_and_key_prefix(job_store: JobStore) -> None:
    made = {
        "a": job_store.enqueue(JobId("holiday/a.mp4", "e", "720p")),
        "b": job_store.start(JobId("holiday/b.mp4", "e", "1080p"), attempt=1),
        "c": job_store.fail(JobId("holidays.mp4", "e", "720p"), "not a video"),
        "d": job_store.enqueue(JobId("Holiday/d.mp4", "e", "720p")),
        "e": job_store.fail(JobId("café/e.mp4", "e", "1080p"), "not a video"),
        "f": job_store.start(JobId("holiday/a.mp4", "e", "1080p"), attempt=1),
    }
    cases = {
        JobFilter(states=(JobState.FAILED,)): "ec",
        JobFilter(states=(JobState.QUEUED, JobState.RUNNING)): "fdba",
        JobFilter(rendition="720p"): "dca",
        JobFilter(states=(JobState.RUNNING,), rendition="1080p"): "fb",
        JobFilter(key_prefix="holiday/"): "fba",
        JobFilter(key_prefix="holiday"): "fcba",
        JobFilter(key_prefix="café/"): "e",
        JobFilter(key_prefix="holiday", states=(JobState.RUNNING,), rendition="1080p"): "fb",
        JobFilter(states=(JobState.DONE,)): "",
    }
    for where, expected in cases.items():
        for limit in (1, 2, 500):
            listed = [r.id for page in _all_pages(job_store, where, limit) for r in page]
            assert listed == [made[name].id for name in expected], (where, limit)


def test_bad_limits_and_cursors_are_refused(job_store: JobStore) -> None:
    job_store.enqueue(JOB)
    for limit in (0, -1, MAX_PAGE_SIZE + 1):
        with pytest.raises(InvalidQueryError, match="limit"):
            job_store.page(ALL_JOBS, limit)
        with pytest.raises(InvalidQueryError, match="limit"):
            job_store.changes(0.0, limit)
    changes_cursor = job_store.changes(0.0, 1, None)
    assert changes_cursor.next_cursor is None  # one job: nothing follows
    job_store.enqueue(JobId("other.mp4", "e", "720p"))
    from_changes = job_store.changes(0.0, 1).next_cursor
    assert from_changes is not None
    for bad in ("garbage", "", "eyJ4IjoxfQ", from_changes):
        with pytest.raises(InvalidQueryError, match="cursor"):
            job_store.page(ALL_JOBS, 10, bad or "=")
    with pytest.raises(InvalidQueryError, match="cursor"):
        job_store.changes(0.0, 10, job_store.page(ALL_JOBS, 1).next_cursor)


def test_changes_are_the_jobs_updated_since_a_time_oldest_change_first(job_store: JobStore) -> None:
    first, second, third = (JobId(f"{name}.mp4", "e", "720p") for name in ("first", "second", "third"))
    for job in (first, second, third):
        job_store.enqueue(job)
    time.sleep(0.01)
    since = time.time()
    assert job_store.changes(since) == JobPage([], None)  # nothing changed: nothing read
    time.sleep(0.01)
    job_store.start(third, attempt=1)
    job_store.start(first, attempt=1)
    job_store.progress(third, 50)
    job_store.progress(second, 50)  # not running: no change
    assert [r.id for r in job_store.changes(since).records] == [first, third]
    page = job_store.changes(since, 1)
    assert [r.id for r in page.records] == [first] and page.next_cursor
    rest = job_store.changes(since, 1, page.next_cursor)
    assert [r.id for r in rest.records] == [third] and rest.next_cursor is None
    assert rest.records[0].progress_percent == 50
    assert job_store.changes(time.time() + 60).records == []


def test_stats_count_jobs_by_state_and_keep_run_times_and_failures(job_store: JobStore) -> None:
    fine, bad, waiting = (JobId(f"{name}.mp4", "e", "720p") for name in ("fine", "bad", "waiting"))
    other = JobId("fine.mp4", "e", "1080p")
    for job in (fine, bad, waiting, other):
        job_store.enqueue(job)
    assert job_store.stats().jobs == {("720p", JobState.QUEUED): 3, ("1080p", JobState.QUEUED): 1}
    job_store.start(fine, attempt=1)
    job_store.finish(fine, "s3://out/fine.mp4")
    job_store.start(bad, attempt=1)
    job_store.fail(bad, "the upload is not a readable video file")
    job_store.fail(bad, "the upload is not a readable video file")  # already failed: counted once
    job_store.fail(JobId("never.mp4", "e", "1080p"), "FFmpeg failed (exit code 1)")
    stats = job_store.stats()
    assert stats.jobs == {
        ("720p", JobState.DONE): 1,
        ("720p", JobState.FAILED): 1,
        ("720p", JobState.QUEUED): 1,
        ("1080p", JobState.QUEUED): 1,
        ("1080p", JobState.FAILED): 1,
    }
    assert stats.failures == {("720p", "not_a_video"): 1, ("1080p", "ffmpeg_crashed"): 1}
    durations = stats.durations["720p"]
    assert durations.count == 1 and 0 <= durations.sum_seconds < 60
    assert durations.cumulative()[-1] == (math.inf, 1) and durations.cumulative()[0] == (1.0, 1)
    assert "1080p" not in stats.durations
    assert stats.total(JobFilter(rendition="720p")) == 3
    assert stats.total(JobFilter(states=(JobState.FAILED,))) == 2
    assert stats.total(JobFilter(key_prefix="fine")) is None
    assert job_store.requeue_failed() == 2
    after = job_store.stats()
    assert (after.jobs[("720p", JobState.QUEUED)], after.jobs.get(("720p", JobState.FAILED), 0)) == (2, 0)
    assert after.failures == stats.failures  # cumulative: a redrive does not undo a failure


def test_prune_deletes_finished_jobs_updated_before_a_time_with_their_log_lines(job_store: JobStore) -> None:
    done, failed, stuck = (JobId(f"{name}.mp4", "e", "720p") for name in ("done", "failed", "stuck"))
    job_store.start(done, attempt=1)
    job_store.finish(done, "s3://out/done.mp4")
    job_store.fail(failed, "not a video")
    job_store.enqueue(stuck)
    for job in (done, failed, stuck):
        job_store.append_log(job.key, job.rendition, "INFO", "old line")
    time.sleep(0.01)
    cutoff = time.time()
    time.sleep(0.01)
    job_store.append_log(done.key, "1080p", "INFO", "another rendition's line")
    fresh = JobId("fresh.mp4", "e", "720p")
    job_store.fail(fresh, "not a video")
    assert job_store.prune(cutoff, batch_size=1) == 2
    assert job_store.get(done) is None and job_store.get(failed) is None
    assert job_store.get(stuck) is not None and job_store.get(fresh) is not None
    assert [line.message for line in job_store.logs(done.key)] == ["another rendition's line"]
    assert job_store.logs(failed.key) == [] and len(job_store.logs(stuck.key)) == 1
    assert job_store.stats().jobs == {("720p", JobState.QUEUED): 1, ("720p", JobState.FAILED): 1}
    assert job_store.prune(cutoff) == 0
    job_store.append_log(failed.key, failed.rendition, "INFO", "after the prune")
    assert [line.message for line in job_store.logs(failed.key)] == ["after the prune"]


def test_log_lines_are_capped_to_the_first_and_the_last(job_store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counters, "LOG_HEAD_LINES", 2)
    monkeypatch.setattr(counters, "LOG_TAIL_LINES", 3)
    for i in range(1, 9):
        job_store.append_log("loop.mp4", "720p", "INFO", f"line {i}")
    job_store.append_log("loop.mp4", "1080p", "INFO", "the other rendition")
    messages = [line.message for line in job_store.logs("loop.mp4")]
    assert messages[:2] == ["line 1", "line 2"]
    assert messages[2].startswith("3 log line(s) dropped here")
    assert messages[3:] == ["line 6", "line 7", "line 8", "the other rendition"]


def test_pieces_are_counted_once_each_and_shown_as_done_of_planned(job_store: JobStore) -> None:
    job_store.start(JOB, attempt=1)
    with pytest.raises(LookupError):
        job_store.piece_done(JOB, 0)  # no plan yet
    job_store.plan_pieces(JOB, 3)
    first = job_store.piece_done(JOB, 2)
    assert (first.done, first.planned, first.newly, first.completes) == (1, 3, True, False)
    again = job_store.piece_done(JOB, 2)  # a redelivered piece
    assert (again.done, again.newly, again.completes) == (1, False, False)
    job_store.piece_done(JOB, 0)
    record = job_store.get(JOB)
    assert record is not None and (record.pieces_done, record.pieces_planned) == (2, 3)
    assert record.as_json()["pieces"] == {"done": 2, "planned": 3}
    assert 60 < record.progress_percent < 100  # the share of pieces done, short of the join
    last = job_store.piece_done(JOB, 1)
    assert (last.done, last.planned, last.completes) == (3, 3, True)
    job_store.plan_pieces(JOB, 3)  # planned again (a redelivered job event): what was counted stays counted
    assert job_store.piece_done(JOB, 1).completes is False
    with pytest.raises(LookupError):
        job_store.plan_pieces(JobId("never.mp4", "e", "720p"), 2)


def test_concurrent_completions_of_a_jobs_pieces_have_exactly_one_winner(
    job_store_url: str, request: pytest.FixtureRequest
) -> None:
    if job_store_url.startswith("dynamodb://"):  # DynamoDB applies an item's writes one at a time; moto, serial
        serial = request.getfixturevalue("serial_moto_server")
        job_store_url = serial.url("dynamodb", f"vc-test-{uuid.uuid4().hex[:12]}")
    pieces = 8
    stores = [open_job_store(job_store_url) for _ in range(4)]  # four workers, each with its own connection
    try:
        stores[0].start(JOB, attempt=1)
        stores[0].plan_pieces(JOB, pieces)
        counts = []
        lock = threading.Lock()
        gate = threading.Barrier(len(stores))

        def worker(number: int) -> None:
            gate.wait()  # every worker counts its pieces at the same moment, each piece twice
            for piece in [*range(number, pieces, len(stores)), *range(number, pieces, len(stores))]:
                count = stores[number].piece_done(JOB, piece)
                with lock:
                    counts.append(count)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [c.completes for c in counts].count(True) == 1
        assert sum(c.newly for c in counts) == pieces and max(c.done for c in counts) == pieces
        record = stores[0].get(JOB)
        assert record is not None and (record.pieces_done, record.pieces_planned) == (pieces, pieces)
    finally:
        for store in stores:
            store.close()


def test_a_job_running_for_one_message_is_not_claimed_by_another(job_store: JobStore) -> None:
    job_store.enqueue(JOB)
    first = job_store.start(JOB, attempt=1, holder="message-1", fresh_seconds=60)
    assert (first.state, first.holder) == (JobState.RUNNING, "message-1")
    job_store.progress(JOB, 40)
    duplicate = job_store.start(JOB, attempt=1, holder="message-2", fresh_seconds=60)
    assert (duplicate.state, duplicate.holder, duplicate.progress_percent) == (JobState.RUNNING, "message-1", 40)
    again = job_store.start(JOB, attempt=2, holder="message-1", fresh_seconds=60)  # its lease lost: delivered again
    assert (again.holder, again.attempts, again.progress_percent) == ("message-1", 2, 0)
    quiet = job_store.start(JOB, attempt=1, holder="message-2", fresh_seconds=0)  # the holder gone quiet
    assert (quiet.holder, quiet.attempts) == ("message-2", 2)
    unclaimed = job_store.start(JOB, attempt=3)  # no holder named: running whoever held it (a split job's piece)
    assert (unclaimed.holder, unclaimed.attempts) == ("", 3)
    assert job_store.start(JOB, attempt=3, holder="message-3", fresh_seconds=60).holder == "message-3"
    job_store.finish(JOB, "s3://out/holiday.mp4")
    after = job_store.start(JOB, attempt=4, holder="message-4", fresh_seconds=60)  # done: any message may run it
    assert (after.state, after.holder) == (JobState.RUNNING, "message-4")


def test_concurrent_claims_of_a_job_have_exactly_one_winner(job_store_url: str, request: pytest.FixtureRequest) -> None:
    if job_store_url.startswith("dynamodb://"):  # as for the pieces: moto's server applies writes one at a time
        serial = request.getfixturevalue("serial_moto_server")
        job_store_url = serial.url("dynamodb", f"vc-test-{uuid.uuid4().hex[:12]}")
    stores = [open_job_store(job_store_url) for _ in range(4)]  # four workers, each leased a copy of the event
    try:
        stores[0].enqueue(JOB)
        claims: dict[str, JobRecord] = {}
        gate = threading.Barrier(len(stores))

        def worker(number: int) -> None:
            gate.wait()
            claims[f"message-{number}"] = stores[number].start(JOB, 1, f"message-{number}", fresh_seconds=60)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [holder for holder, record in claims.items() if record.holder == holder]
        assert len(claims) == len(stores) and len(winners) == 1
        assert {record.holder for record in claims.values()} == set(winners)  # the losers were told who won
        stored = stores[0].get(JOB)
        assert stored is not None and (stored.state, stored.holder) == (JobState.RUNNING, winners[0])
    finally:
        for store in stores:
            store.close()
