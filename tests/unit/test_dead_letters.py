"""Dead letters with their jobs: which jobs a body stands for, and the worker's sweep for jobs the broker
dead-lettered itself (its pace, and that a failing look never stops a worker)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from videoconverter import dead_letters
from videoconverter.chunking.messages import ChunkMessage, Step
from videoconverter.config import load_config
from videoconverter.events import ObjectCreated, object_created_event
from videoconverter.jobs.base import JobId
from videoconverter.pipeline import Services, open_services, provision

UPLOAD = ObjectCreated("videoconverter-input", "a/clip.mp4", 10, "etag-1", "0001")


def event_body(*records: ObjectCreated) -> str:
    return json.dumps({"Records": [object_created_event(r)["Records"][0] for r in records]})


def test_an_s3_events_records_are_the_jobs_of_the_queues_rendition() -> None:
    other = ObjectCreated("videoconverter-input", "b.mp4", 10, "etag-2", "0002")
    assert dead_letters.jobs_of(event_body(UPLOAD, other), "720p") == [
        JobId("a/clip.mp4", "etag-1", "720p"),
        JobId("b.mp4", "etag-2", "720p"),
    ]


def test_a_piece_of_a_split_job_stands_for_the_job_it_belongs_to() -> None:
    piece = ChunkMessage(Step.VIDEO, "videoconverter-input", "a/clip.mp4", 10, "etag-1", "0001", "1080p", 2, 4, 3)
    assert dead_letters.jobs_of(piece.to_json(), "ignored") == [JobId("a/clip.mp4", "etag-1", "1080p")]
    assert dead_letters.keys_of(piece.to_json()) == ["a/clip.mp4"]


@pytest.mark.parametrize("body", ["not json", "{}", '{"Records": [{"eventName": "x"}]}', "[]"])
def test_a_malformed_body_stands_for_no_job(body: str) -> None:
    assert dead_letters.jobs_of(body, "720p") == []


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    path = tmp_path / "videoconverter.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    services = open_services(load_config(environ={}, path=path))
    provision(services)
    return services


def test_the_sweep_keeps_its_pace(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[int] = []
    monkeypatch.setattr(dead_letters, "fail_stranded", lambda s, renditions: looks.append(len(renditions)))
    clock = [100.0]
    monkeypatch.setattr(dead_letters.time, "monotonic", lambda: clock[0])
    sweep = dead_letters.Sweeper(svc, svc.config.renditions, interval_seconds=30)
    sweep()  # at once: a worker that starts finds what was stranded while none ran
    clock[0] += 29.9
    sweep()
    assert looks == [len(svc.config.renditions)]
    clock[0] += 0.1
    sweep()
    assert looks == [len(svc.config.renditions)] * 2


def test_a_sweep_that_fails_is_logged_and_the_worker_goes_on(
    svc: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> int:
        raise ConnectionError("the job store is down")

    monkeypatch.setattr(svc.jobs, "page", broken)
    with caplog.at_level(logging.WARNING, logger="videoconverter.dead_letters"):
        dead_letters.Sweeper(svc, svc.config.renditions, interval_seconds=30)()
    assert "could not look for jobs the broker dead-lettered" in caplog.text


def test_no_unfinished_job_at_its_last_attempt_means_no_look_at_the_dead_letter_queue(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendition = svc.config.renditions[0]
    job = JobId("a/clip.mp4", "etag-1", rendition.name)
    svc.jobs.enqueue(job)
    svc.jobs.start(job, svc.config.max_receive_count - 1)  # running, with an attempt left: the broker keeps it
    looked: list[str] = []
    monkeypatch.setattr(svc.broker, "dead_letters", lambda queue, limit=100: looked.append(queue) or [])
    assert dead_letters.fail_stranded(svc, [rendition]) == 0
    assert looked == []
    svc.jobs.start(job, svc.config.max_receive_count)
    assert dead_letters.fail_stranded(svc, [rendition]) == 0  # its message is not a dead letter: still running
    assert looked == [rendition.queue]
