"""Scaling in never interrupts a transcode: a worker asked to drain finishes its job, then stops."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.test_pipeline import IN, job, slow_ffmpeg
from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import open_services, provision
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg


def test_a_draining_worker_finishes_its_job_then_stops(
    tiny_config_path: Path, small_clip: Path, tmp_path: Path
) -> None:
    svc = open_services(load_config(environ={}, path=tiny_config_path))
    try:
        provision(svc)
        first = svc.store.put_file(IN, "first.mp4", small_clip)
        svc.store.put_file(IN, "second.mp4", small_clip)
        drain = threading.Event()
        worker = Worker(svc, svc.config.rendition("small"), ffmpeg=slow_ffmpeg(tmp_path, 1.5), drain=drain)
        handled: list[int] = []
        thread = threading.Thread(target=lambda: handled.append(worker.run()))
        thread.start()
        wait_until(lambda: (tmp_path / "ffmpeg.pid").exists(), 30, message="FFmpeg to start on the first job")
        drain.set()  # what SIGUSR1 from `up --workers auto` does, mid-transcode
        thread.join(timeout=60)
        assert not thread.is_alive() and handled == [1]
        assert job(svc, "first.mp4", first.etag, "small").state is JobState.DONE  # finished, not handed back
        second = [r for r in svc.jobs.find("second.mp4") if r.id.rendition == "small"]
        assert [r.state for r in second] == [JobState.QUEUED]  # left for another worker
    finally:
        svc.close()
