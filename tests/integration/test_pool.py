"""One worker process serving both renditions' queues: every upload becomes both renditions, jobs are not
interrupted by a drain, and a worker process of the embedded backend imports neither the web nor the AWS stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.test_pipeline import IN, job, slow_ffmpeg
from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.pool import PoolWorker
from videoconverter.recovery.workspace import default_root

pytestmark = pytest.mark.ffmpeg


def test_one_pool_process_converts_uploads_into_both_renditions(
    tiny_config_path: Path, small_clip: Path, other_clip: Path, tmp_path: Path
) -> None:
    temp_dir = tmp_path / "tmp"  # the worker's TMPDIR, where its state folder goes
    temp_dir.mkdir()
    svc = open_services(load_config(environ={}, path=tiny_config_path))
    try:
        provision(svc)
        clips = {"a.mp4": small_clip, "b.mp4": other_clip}
        uploads = {key: svc.store.put_file(IN, key, clip) for key, clip in clips.items()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
        worker = subprocess.run(
            [sys.executable, "-m", "videoconverter", "worker", "small", "smaller", "--exit-when-idle"],
            env={**env, "VIDEOCONVERTER_CONFIG": str(tiny_config_path), "TMPDIR": str(temp_dir)},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert worker.returncode == 0, worker.stderr
        for key, uploaded in uploads.items():
            for rendition in ("small", "smaller"):
                record = job(svc, key, uploaded.etag, rendition)
                assert (record.state, record.attempts) == (JobState.DONE, 1), (key, rendition, record.error)
                assert svc.store.head(svc.config.rendition(rendition).output_bucket, key) is not None
        assert all(svc.broker.depth(r.queue).total == 0 for r in svc.config.renditions)
        said = [json.loads(line)["message"] for line in worker.stderr.splitlines() if line.startswith("{")]
        assert "pool worker for small, smaller listening on videoconverter_small, videoconverter_smaller" in said
        assert "pool worker for small, smaller stopped after 4 messages" in said
        assert list(default_root(temp_dir).iterdir()) == [], "a pool worker that stopped cleanly left its state folder"
    finally:
        svc.close()


def test_a_pool_worker_on_each_broker_converts_for_both_renditions(svc: Services, small_clip: Path) -> None:
    uploaded = svc.store.put_file(IN, "pooled.mp4", small_clip)
    assert PoolWorker(svc, svc.config.renditions).run(exit_when_idle=True) == 2
    assert {job(svc, "pooled.mp4", uploaded.etag, r.name).state for r in svc.config.renditions} == {JobState.DONE}


def test_a_draining_pool_worker_finishes_its_job_then_stops(
    tiny_config_path: Path, small_clip: Path, tmp_path: Path
) -> None:
    svc = open_services(load_config(environ={}, path=tiny_config_path))
    try:
        provision(svc)
        first = svc.store.put_file(IN, "first.mp4", small_clip)
        drain = threading.Event()
        pool = PoolWorker(svc, svc.config.renditions, drain=drain, ffmpeg=slow_ffmpeg(tmp_path, 1.5))
        handled: list[int] = []
        thread = threading.Thread(target=lambda: handled.append(pool.run()))
        thread.start()
        wait_until(lambda: (tmp_path / "ffmpeg.pid").exists(), 30, message="FFmpeg to start on the first job")
        drain.set()  # what SIGUSR1 does, mid-transcode
        thread.join(timeout=60)
        assert not thread.is_alive() and handled == [1]
        records = {r.id.rendition: r for r in svc.jobs.find("first.mp4")}
        done = [name for name, r in records.items() if r.state is JobState.DONE]
        assert len(done) == 1 and job(svc, "first.mp4", first.etag, done[0]).attempts == 1  # finished, not handed back
        assert [r.state for name, r in records.items() if name not in done] == [JobState.QUEUED]  # left for later
    finally:
        svc.close()


def in_fresh_interpreter(script: str, config_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new Python process on ``config_path`` (with ``sys`` and the CLI's ``main`` imported
    first, nothing else), which must succeed: what a command imports shows only in an interpreter of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOCONVERTER_", "PROMETHEUS_"))}
    result = subprocess.run(
        [sys.executable, "-c", f"import sys\nfrom videoconverter.cli.main import main\n{script}"],
        env={**env, "VIDEOCONVERTER_CONFIG": str(config_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_worker_on_the_embedded_backend_imports_neither_the_web_nor_the_aws_stack(
    tiny_config_path: Path, small_clip: Path
) -> None:
    svc = open_services(load_config(environ={}, path=tiny_config_path))
    try:
        provision(svc)
        uploaded = svc.store.put_file(IN, "imports.mp4", small_clip)
        # `videoconverter worker --all` in a fresh interpreter, through a whole job; then what it imported.
        worker = "main(['worker', '--all', '--exit-when-idle', '--no-provision'])\n"
        result = in_fresh_interpreter(worker + "print(' '.join(sorted(sys.modules)))\n", tiny_config_path)
        assert {r.state for r in svc.jobs.find("imports.mp4")} == {JobState.DONE}, result.stderr
        assert job(svc, "imports.mp4", uploaded.etag, "small").attempts == 1
    finally:
        svc.close()
    imported = {name.split(".")[0] for name in result.stdout.split()}
    web = {"fastapi", "starlette", "uvicorn", "pydantic", "anyio", "prometheus_client", "http", "wsgiref", "ssl"}
    other_backends = {"boto3", "botocore", "pika", "psycopg"}
    assert imported & (web | other_backends) == set()
    assert {"videoconverter", "av", "sqlite3"} <= imported  # what it does use: the probe, the embedded broker


def test_the_commands_that_read_jobs_or_buckets_never_load_pyav(tiny_config_path: Path, small_clip: Path) -> None:
    # `jobs --wait` runs beside the conversions it waits on, and `up`'s supervisor for as long as they last: their
    # CPU and memory are the pipeline's cost too. PyAV's libraries are 30 MiB and 0.1 s of that, for nothing.
    script = (
        f"assert main(['cp', {str(small_clip)!r}, 's3://videoconverter-input/a.mp4']) == 0\n"
        "assert main(['ls', 's3://videoconverter-input']) == 0\n"
        "assert main(['jobs', '--json']) == 0\n"
        "print('PyAV loaded' if 'av' in sys.modules else 'PyAV not loaded')\n"
    )
    result = in_fresh_interpreter(script, tiny_config_path)
    assert '"key": "a.mp4"' in result.stdout  # the upload was queued and listed: the commands did their work
    assert result.stdout.rstrip().endswith("PyAV not loaded")
