"""Fixtures for the integration tier: the FFmpeg binary and a cache of generated sample clips."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """The FFmpeg binary the converter runs (from the imageio-ffmpeg wheel)."""
    from videoconverter.transcode.runner import ffmpeg_executable

    return ffmpeg_executable()


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Callable[..., Path]:
    """``sample_clip(**make_clip_kwargs)``: a generated clip, made once per session for each set of arguments.

    The clips are shared between tests: read them, never modify them (copy one to ``tmp_path`` first).
    """
    from videoconverter.transcode.samples import make_clip

    directory = tmp_path_factory.mktemp("sample-clips")
    cache: dict[tuple[tuple[str, Any], ...], Path] = {}

    def make(**kwargs: Any) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = make_clip(directory / f"clip-{len(cache)}.mp4", ffmpeg=ffmpeg_exe, **kwargs)
        return cache[key]

    return make


@pytest.fixture(params=["sqlite", "rabbitmq", "aws"])
def pipeline_config_path(
    request: pytest.FixtureRequest, tiny_config_path: Path, tmp_path: Path, split_jobs: bool
) -> Iterator[Path]:
    """The tiny pipeline's TOML, once per broker backend (its MP4 jobs split when ``split_jobs``); worker
    subprocesses read the same file.

    The "rabbitmq" case is a cluster's set-up: RabbitMQ and the PostgreSQL job store. The topic, queues and
    schema get unique names (the servers outlive the test) and are deleted afterwards; the connection heartbeat
    is short, so that the server notices a frozen worker within seconds.
    """
    from tests.conftest import require_service, tiny_renditions_toml

    if request.param == "sqlite":
        yield tiny_config_path
        return
    if request.param == "aws":  # S3 -> SNS -> SQS and DynamoDB on moto's server, with the default names
        server = request.getfixturevalue("moto_server")
        server.reset()
        path = tmp_path / "videoconverter-aws.toml"
        path.write_text(
            f'data_dir = "{tmp_path / "data"}"\nstorage = "{server.url("s3")}"\nbroker = "{server.url("aws")}"\n'
            f'jobs = "{server.url("dynamodb", "videoconverter-jobs")}"\n' + tiny_renditions_toml(split_jobs)
        )
        yield path
        return
    from tests.contract.conftest import POSTGRES_URL, RABBITMQ_URL, reachable

    require_service(reachable(RABBITMQ_URL), "no RabbitMQ server")
    require_service(reachable(POSTGRES_URL, 5432), "no PostgreSQL server")
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    renditions = tiny_renditions_toml(split_jobs)
    for name in ("smaller", "small"):
        renditions = renditions.replace(f'name = "{name}"\n', f'name = "{name}"\nqueue = "{prefix}{name}"\n')
    path = tmp_path / "videoconverter-rabbitmq.toml"
    url = RABBITMQ_URL + ("&" if "?" in RABBITMQ_URL else "?") + "heartbeat=5"
    schema = f"vc_test_{uuid.uuid4().hex[:12]}"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\nbroker = "{url}"\njobs = "{POSTGRES_URL}?schema={schema}"\n\n'
        f'[input]\ntopic = "{prefix}topic"\n\n'
        f'[notifications]\ntopic = "{prefix}notifications"\nevents_queue = "{prefix}events"\n' + renditions
    )
    yield path
    from tests.contract.conftest import delete_rabbitmq_topology
    from videoconverter.config import load_config
    from videoconverter.pipeline import all_topologies

    for declared in all_topologies(load_config(environ={}, path=path)):
        delete_rabbitmq_topology(declared)
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def svc(pipeline_config_path: Path) -> Iterator[Any]:
    """The tiny pipeline, provisioned (store, broker, job store and ingest), on each broker backend."""
    from videoconverter.config import load_config
    from videoconverter.pipeline import open_services, provision

    services = open_services(load_config(environ={}, path=pipeline_config_path))
    provision(services)
    if services.config.broker_url.startswith("aws://"):  # S3 sent each queue an s3:TestEvent: take it out
        for rendition in services.config.renditions:
            test_events = services.broker.receive(rendition.queue, max_messages=10, wait_seconds=2)
            assert [json.loads(d.body).get("Event") for d in test_events] == ["s3:TestEvent"]
            services.broker.ack(test_events[0])
    yield services
    services.close()
