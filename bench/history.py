"""What a read costs after a long history: seed N finished uploads, then time the reads the dashboard, the API,
Prometheus and the CLI make.

For each job store (SQLite, and PostgreSQL when its server answers) and each size, a fresh store is seeded through
its bulk path (``import_records``: one transaction per chunk; the counting triggers and the run-time and failure
counters fill in as the transitions would have) with N uploads of two renditions each, one a second going back
in time, every one done except one upload in ten whose second rendition failed (so that even 1,000 uploads
fill a page of failed jobs, and every size reads the same page). Then, with the embedded
broker and file store around it, each read is run ``--repeat`` times and its median printed:

- first page: ``GET /api/jobs`` (the newest 100 jobs), through the FastAPI app;
- one key: ``GET /api/jobs/{key}`` (the job page of an upload from the middle of the history);
- by state: ``GET /api/jobs?state=failed`` (a page of failed jobs);
- /metrics: ``GET /metrics`` (queue depths, counters);
- live poll: what the dashboard's poller does once a second, with nothing changed (changes since, queue depths);
- jobs --wait: the command's work with nothing pending (the pending query, the queue depths, the newest page).

Target: each at most 50 ms at 1,000,000 uploads, and at most 2x its 1,000-upload figure.

    .venv/bin/python bench/history.py                       # 1,000 / 100,000 / 1,000,000 uploads
    .venv/bin/python bench/history.py --sizes 1000,100000   # quicker
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from videoconverter.cli.jobs import _wait_for_jobs
from videoconverter.config import load_config
from videoconverter.jobs.base import ALL_JOBS, JobId, JobRecord, JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.web.app import create_app
from videoconverter.web.live import LiveJobs, queue_depths

RENDITIONS = ("720p", "1080p")
CHUNK_UPLOADS = 50_000
TARGET_MS = 50.0
POSTGRES_URL = os.environ.get("VIDEOCONVERTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
READS = ("first page", "one key", "by state", "/metrics", "live poll", "jobs --wait")


def history(uploads: int, now: float) -> Iterator[list[JobRecord]]:
    """The seeded records, a chunk at a time: upload i was made i seconds before ``now`` and ran 20 s."""
    for start in range(0, uploads, CHUNK_UPLOADS):
        chunk = []
        for i in range(start, min(uploads, start + CHUNK_UPLOADS)):
            created = now - 3600 - i
            for rendition in RENDITIONS:
                failed = i % 10 == 0 and rendition == RENDITIONS[1]
                chunk.append(
                    JobRecord(
                        JobId(f"uploads/{i:07d}.mp4", f"etag{i}", rendition),
                        JobState.FAILED if failed else JobState.DONE,
                        1,
                        created,
                        created + 21,
                        created + 1,
                        created + 21,
                        0.0 if failed else 100.0,
                        "" if failed else f"s3://videoconverter-output-{rendition}/uploads/{i:07d}.mp4",
                        "the upload is not a readable video file" if failed else "",
                    )
                )
        yield chunk


@contextlib.contextmanager
def job_store_url(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite://{workdir / 'jobs.sqlite3'}"
        return
    import psycopg

    schema = f"vc_bench_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def median_ms(read: Callable[[], Any], repeat: int) -> float:
    for _ in range(3):  # warm the caches, as a serving process has them warm
        read()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        read()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def measure(svc: Services, uploads: int, repeat: int) -> dict[str, float]:
    live = LiveJobs(svc)
    key = f"uploads/{uploads // 2:07d}.mp4"

    def get(client: TestClient, path: str) -> Callable[[], Any]:
        def read() -> Any:
            reply = client.get(path)
            assert reply.status_code == 200, reply.text
            return reply

        return read

    # Without an API token the server answers to loopback names only (web/guard.py): ask it as 127.0.0.1.
    with TestClient(create_app(svc.config, svc), base_url="http://127.0.0.1") as client:
        assert len(client.get("/api/jobs").json()["jobs"]) == 100
        failed = client.get("/api/jobs", params={"state": "failed"}).json()["jobs"]
        assert len(failed) == 100
        results = {
            "first page": median_ms(get(client, "/api/jobs"), repeat),
            "one key": median_ms(get(client, f"/api/jobs/{key}"), repeat),
            "by state": median_ms(get(client, "/api/jobs?state=failed"), repeat),
            "/metrics": median_ms(get(client, "/metrics"), repeat),
        }
    live._changed()  # the first poll: since the server started
    results["live poll"] = median_ms(lambda: (live._changed(), queue_depths(svc)), repeat)
    results["jobs --wait"] = median_ms(lambda: (_wait_for_jobs(svc, None, 0.0), svc.jobs.page(ALL_JOBS, 100)), repeat)
    return results


def run(backend: str, uploads: int, repeat: int) -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="vc-history-") as tmp, job_store_url(backend, Path(tmp)) as url:
        config = replace(load_config(environ={"VIDEOCONVERTER_DATA_DIR": tmp}), jobs_url=url)
        svc = open_services(config)
        try:
            provision(svc)
            started = time.perf_counter()
            for chunk in history(uploads, time.time()):
                svc.jobs.inner.import_records(chunk)  # type: ignore[attr-defined]
            seeded = time.perf_counter() - started
            if backend == "postgres":
                svc.jobs.inner._conn.execute("ANALYZE jobs")  # type: ignore[attr-defined]  # as autovacuum would
            return seeded, measure(svc, uploads, repeat)
        finally:
            svc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000", help="numbers of uploads, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs of each read (their median is shown)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print("| job store | uploads | seeded in | " + " | ".join(READS) + " |")
    print("|---|---|---|" + "---|" * len(READS))
    verdicts = []
    for backend in args.backends.split(","):
        figures: dict[int, dict[str, float]] = {}
        for uploads in sizes:
            seeded, figures[uploads] = run(backend, uploads, args.repeat)
            cells = " | ".join(f"{figures[uploads][read]:.2f} ms" for read in READS)
            print(f"| {backend} | {uploads:,} | {seeded:.0f} s | {cells} |", flush=True)
        smallest, largest = figures[min(sizes)], figures[max(sizes)]
        for read in READS:
            ratio = largest[read] / smallest[read]
            met = largest[read] <= TARGET_MS and ratio <= 2
            verdicts.append(
                f"{backend} {read}: {largest[read]:.1f} ms at {max(sizes):,} uploads, {ratio:.2f}x the "
                f"{min(sizes):,}-upload figure: {'meets' if met else 'MISSES'} the target"
            )
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
