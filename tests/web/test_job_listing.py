"""The jobs listing, /metrics and the live poller against a history: pages and cursors, filters, clear 400s,
the exposition format the scraper asks for, and reads that never walk the history."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from videoconverter.jobs.base import JobId, JobPage, JobRecord, JobState
from videoconverter.web.live import LiveJobs

HOUR = 3600.0
SOURCE = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def client(client: Any, auth: dict[str, str]) -> Any:
    """The app's client, with the API token on every request (the server of these tests has one)."""
    client.headers.update(auth)
    return client


def seed_history(client: Any, uploads: int = 30) -> None:
    """Finished uploads of an hour ago, through the store's bulk path (both renditions done)."""
    long_ago = time.time() - HOUR
    client.svc.jobs.inner.import_records(
        JobRecord(
            JobId(f"old/{i:03d}.mp4", "e", r),
            JobState.DONE,
            1,
            long_ago + i,
            long_ago + i + 2,
            long_ago + i,
            long_ago + i + 2,
        )
        for i in range(uploads)
        for r in ("small", "smaller")
    )


def test_jobs_are_listed_a_page_at_a_time_newest_first(client: Any) -> None:
    seed_history(client, 5)
    jobs = client.svc.jobs
    jobs.start(JobId("new/a.mp4", "e", "small"), 1)
    jobs.fail(JobId("new/b.mp4", "e", "smaller"), "the upload is not a readable video file")
    first = client.get("/api/jobs", params={"limit": 4}).json()
    assert [j["key"] for j in first["jobs"]][:2] == ["new/b.mp4", "new/a.mp4"] and first["total"] == 12
    assert first["jobs"][0]["cause"] == "not_a_video" and first["limit"] == 4
    keys, cursor = [], None
    while True:
        page = client.get("/api/jobs", params={"limit": 5, **({"cursor": cursor} if cursor else {})}).json()
        keys += [(j["key"], j["rendition"]) for j in page["jobs"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(keys) == len(set(keys)) == 12
    assert client.get("/api/jobs").json()["limit"] == 100


@pytest.mark.parametrize(
    ("params", "expected", "total"),
    [
        ({"state": "failed"}, ["new/b.mp4"], 1),
        ({"state": ["running", "failed"]}, ["new/b.mp4", "new/a.mp4"], 2),
        ({"state": "running,failed"}, ["new/b.mp4", "new/a.mp4"], 2),
        ({"rendition": "smaller", "state": "failed"}, ["new/b.mp4"], 1),
        ({"key_prefix": "new/"}, ["new/b.mp4", "new/a.mp4"], None),
        ({"key_prefix": "old/001", "rendition": "small"}, ["old/001.mp4"], None),
        ({"key_prefix": "nothing/"}, [], None),
    ],
)
def test_jobs_filter_by_state_rendition_and_key_prefix(
    client: Any, params: dict[str, Any], expected: list[str], total: int | None
) -> None:
    seed_history(client, 3)
    client.svc.jobs.start(JobId("new/a.mp4", "e", "small"), 1)
    client.svc.jobs.fail(JobId("new/b.mp4", "e", "smaller"), "not a video")
    listed = client.get("/api/jobs", params=params).json()
    assert ([j["key"] for j in listed["jobs"]], listed["total"]) == (expected, total)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ4IjoxfQ"}, "cursor"),
        ({"state": "finished"}, "state"),
        ({"state": "done,bogus"}, "state"),
        ({"rendition": "4k"}, "rendition"),
        ({"offset": 10}, "offset"),
    ],
)
def test_bad_listing_queries_get_a_clear_400(client: Any, params: dict[str, Any], field: str) -> None:
    reply = client.get("/api/jobs", params=params)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_query" and error["message"].startswith(f"{field}:"), error


def test_metrics_come_from_counters_in_the_format_asked_for(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_history(client, 4)
    client.svc.jobs.fail(JobId("bad.mp4", "e", "small"), "the upload is not a readable video file")
    for name in ("find", "page", "changes"):
        monkeypatch.setattr(client.svc.jobs, name, lambda *a, **k: pytest.fail("a scrape read job records"))
    text = client.get("/metrics")
    assert text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    body = text.text
    assert 'videoconverter_jobs{rendition="small",state="done"} 4.0' in body
    assert 'videoconverter_jobs{rendition="small",state="failed"} 1.0' in body
    assert 'videoconverter_job_duration_seconds_bucket{le="1.0",rendition="small"} 0.0' in body  # each ran 2 s
    assert 'videoconverter_job_duration_seconds_bucket{le="5.0",rendition="small"} 4.0' in body
    assert 'videoconverter_job_duration_seconds_count{rendition="smaller"} 4.0' in body
    assert 'videoconverter_job_failures_total{cause="not_a_video",rendition="small"} 1.0' in body
    assert "# TYPE videoconverter_job_failures_total counter" in body
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert openmetrics.text.rstrip().endswith("# EOF")
    assert "# TYPE videoconverter_job_failures counter" in openmetrics.text


def test_metrics_add_the_workers_of_a_multiprocess_directory(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under `videoconverter up`, whose workers write their metrics into the directory it sets."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    script = "from videoconverter import telemetry; telemetry.ffmpeg_ran('small', 3.0, 90)"
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": SOURCE})
    body = client.get("/metrics").text
    assert 'videoconverter_worker_ffmpeg_seconds_total{rendition="small"} 3.0' in body
    assert 'videoconverter_worker_frames_per_second{rendition="small"} 30.0' in body
    assert "videoconverter_jobs{" in body  # beside the pipeline's own


def test_the_live_poller_reads_only_what_changed(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_history(client, 40)
    jobs = client.svc.jobs
    read: list[JobRecord] = []
    changes = jobs.changes

    def spy(since: float, limit: int = 100, cursor: str | None = None) -> JobPage:
        page = changes(since, limit, cursor)
        read.extend(page.records)
        return page

    monkeypatch.setattr(jobs, "changes", spy)
    monkeypatch.setattr(jobs, "find", lambda *a, **k: pytest.fail("the poller read the history"))
    live = LiveJobs(client.svc)

    async def scenario() -> list[list[str]]:
        frames: asyncio.Queue[str | None] = asyncio.Queue()
        live._subscribers.add(frames)
        sent = []
        for change in (None, JobId("new.mp4", "e", "small"), None):
            read.clear()
            if change is not None:
                jobs.start(change, 1)
            await live._poll()
            batch = []
            while not frames.empty():
                frame = frames.get_nowait() or ""
                if frame.startswith("event: jobs"):
                    batch += [j["key"] for j in json.loads(frame.split("data: ", 1)[1])["jobs"]]
            sent.append(batch)
            assert len(read) <= 1, read  # nothing, or the one job that changed: never the 80 of the history
        return sent

    assert asyncio.run(scenario()) == [[], ["new.mp4"], []]
