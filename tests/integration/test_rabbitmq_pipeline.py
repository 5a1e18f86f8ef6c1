"""The pipeline on RabbitMQ: two worker processes per rendition, one killed mid-transcode, nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TINY_RENDITIONS_TOML, require_service, wait_until
from tests.contract.conftest import RABBITMQ_URL, reachable
from tests.integration.test_pipeline import slow_ffmpeg
from videoconverter.brokers.rabbitmq import RabbitMQBroker
from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import Services, all_topologies, open_services, provision
from videoconverter.transcode.runner import ffmpeg_executable

pytestmark = pytest.mark.ffmpeg
IN = "videoconverter-input"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """The tiny renditions, on a topic and queues of their own (the server is shared and outlives the test)."""
    require_service(reachable(RABBITMQ_URL), "no RabbitMQ server")
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    renditions = TINY_RENDITIONS_TOML.replace('name = "small"', f'name = "small"\nqueue = "{prefix}small"').replace(
        'name = "smaller"', f'name = "smaller"\nqueue = "{prefix}smaller"'
    )
    path = tmp_path / "videoconverter.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\nbroker = "{RABBITMQ_URL}"\n[input]\ntopic = "{prefix}topic"\n'
        f'[notifications]\ntopic = "{prefix}notifications"\nevents_queue = "{prefix}events"\n{renditions}'
    )
    return path


@pytest.fixture
def svc(config_path: Path) -> Iterator[Services]:
    config = load_config(environ={}, path=config_path)
    assert config.broker_url.startswith("amqp") and config.topic.endswith("-topic")
    services = open_services(config)
    try:
        assert isinstance(services.broker, RabbitMQBroker)
        provision(services)
        yield services
    finally:
        for declared in all_topologies(config):
            services.broker.delete(declared)  # type: ignore[attr-defined]
        services.close()


def start_worker(rendition: str, config_path: Path, ffmpeg: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config_path), "IMAGEIO_FFMPEG_EXE": ffmpeg}
    env.pop("VIDEOCONVERTER_BROKER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "videoconverter", "worker", rendition], env=env, stderr=subprocess.DEVNULL
    )


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().split(")")[-1].split()[1])


def test_a_worker_killed_mid_transcode_loses_nothing(
    svc: Services, config_path: Path, small_clip: Path, tmp_path: Path
) -> None:
    slow = slow_ffmpeg(tmp_path, 3)  # "small" jobs: long enough to kill the worker while FFmpeg runs
    workers = [start_worker("small", config_path, slow) for _ in range(2)]
    workers += [start_worker("smaller", config_path, ffmpeg_executable()) for _ in range(2)]
    try:
        uploaded = svc.store.put_file(IN, "killed.mp4", small_clip)
        pid_file = tmp_path / "ffmpeg.pid"
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, message="FFmpeg to start")
        victim_pid = parent_of(int(pid_file.read_text()))
        (victim,) = [w for w in workers if w.pid == victim_pid]
        pid_file.unlink()
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

        def finished() -> bool:
            return {r.id.rendition: r.state for r in svc.jobs.find("killed.mp4")} == {
                "small": JobState.DONE,
                "smaller": JobState.DONE,
            }

        wait_until(finished, 90, interval_seconds=0.2, message="both renditions to finish")
    finally:
        stop(workers)
    assert pid_file.exists(), "the surviving worker ran FFmpeg again"
    records = {r.id.rendition: r for r in svc.jobs.find("killed.mp4")}
    assert records["smaller"].attempts == 1
    version = tuple(int(p) for p in svc.broker.server_version().split(".")[:2])  # type: ignore[attr-defined]
    if version < (4, 3):  # from 4.3, a requeue when a connection closes no longer counts as a delivery
        assert records["small"].attempts == 2
    for rendition in svc.config.renditions:
        assert svc.store.head(rendition.output_bucket, "killed.mp4").metadata["source-etag"] == uploaded.etag  # type: ignore[union-attr]
        assert svc.broker.depth(rendition.queue).total == 0
        assert svc.broker.dead_letters(rendition.queue) == []
