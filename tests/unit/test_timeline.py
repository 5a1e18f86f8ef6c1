"""A job's timeline: its stored JSON text, its ``--json`` shapes and the summary line of the job's log."""

from __future__ import annotations

import threading
import time

from videoconverter.jobs.timeline import STAGES, Timeline, TimelineRecorder, iso_time, parse_iso_time

UPLOADED = 1_764_650_000.125


def test_the_stored_text_round_trips_and_damage_reads_as_nothing_known() -> None:
    timeline = Timeline(uploaded=UPLOADED, received=UPLOADED + 0.5, done=UPLOADED + 13)
    assert Timeline.from_text(timeline.to_text()) == timeline
    assert Timeline().to_text() == ""
    for damaged in ("", None, "not json", "[1, 2]", '{"uploaded": "yesterday", "nonsense": 1}', '{"done": NaN}'):
        assert Timeline.from_text(damaged) == Timeline()
    assert Timeline.from_text('{"probed": 5, "later_stage": 6}') == Timeline(probed=5.0)  # unknown stages: left out


def test_times_are_iso_utc_with_milliseconds_as_s3_writes_them() -> None:
    assert iso_time(UPLOADED) == "2025-12-02T04:33:20.125Z"
    assert parse_iso_time("2025-12-02T04:33:20.125Z") == UPLOADED
    assert parse_iso_time("2025-12-02T04:33:20.125") == UPLOADED  # no zone: UTC
    assert parse_iso_time("") is None and parse_iso_time("soon") is None


def test_the_json_shapes_are_in_stage_order_and_relative_to_the_upload() -> None:
    timeline = Timeline(done=UPLOADED + 2, uploaded=UPLOADED, probed=UPLOADED + 0.0304)
    assert list(timeline.as_json() or {}) == ["uploaded", "probed", "done"]
    assert timeline.seconds_since_upload() == {"uploaded": 0.0, "probed": 0.03, "done": 2.0}
    assert Timeline(done=UPLOADED).seconds_since_upload() is None
    assert Timeline().as_json() is None


def test_the_summary_names_each_span_by_the_stage_it_ends_at() -> None:
    at = dict(zip(STAGES, (0.0, 0.004, 0.021, 0.05, 0.08, 0.082, 12.4, 12.6, 12.61), strict=True))
    timeline = Timeline(**{stage: UPLOADED + seconds for stage, seconds in at.items()})
    assert timeline.summary() == (
        "timeline: publish 0.004 s, queue 0.017 s, download 0.029 s, probe 0.030 s, prepare 0.002 s, "
        "FFmpeg 12.3 s, write 0.200 s, record 0.010 s (upload to done 12.6 s)"
    )
    skipped = Timeline(uploaded=UPLOADED, received=UPLOADED + 0.02, done=UPLOADED + 0.03)  # found done already
    assert skipped.summary() == "timeline: queue 0.020 s, record 0.010 s (upload to done 0.030 s)"


def test_the_recorder_keeps_the_first_start_and_the_last_end_of_runs_side_by_side() -> None:
    recorder = TimelineRecorder(Timeline(uploaded=UPLOADED))
    barrier = threading.Barrier(4)

    def rung(index: int) -> None:
        barrier.wait()
        recorder.first("ffmpeg_started", UPLOADED + 1 + index)
        recorder.stamp("ffmpeg_finished")

    threads = [threading.Thread(target=rung, args=(i,)) for i in range(4)]
    before = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timeline = recorder.timeline()
    assert timeline.uploaded == UPLOADED
    assert timeline.ffmpeg_started in {UPLOADED + 1 + i for i in range(4)}  # whichever came first, kept
    assert timeline.ffmpeg_finished is not None and before <= timeline.ffmpeg_finished <= time.time()
