"""Backends under contract. Each fixture is parametrised by backend: add a backend by adding a param.

Every backend is opened as the pipeline opens it: by URL, through its family's registry (``open_broker``,
``open_store``, ``open_job_store``). A factory returns a *new* instance bound to the same underlying storage each
time it is called, so tests can model several workers (processes) sharing one broker or store.

The rabbitmq param needs a RabbitMQ server (``VIDEOCONVERTER_TEST_RABBITMQ_URL``, default guest on localhost): it is
skipped without one, except in CI. Each test declares its own uniquely named topic and queues and deletes them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import require_service
from videoconverter.brokers import open_broker
from videoconverter.brokers.base import Broker, QueueSpec, Topology
from videoconverter.jobs import open_job_store
from videoconverter.jobs.base import JobStore
from videoconverter.logs import redact
from videoconverter.storage import open_store
from videoconverter.storage.base import ObjectStore

TOPIC = "contract-topic"
QUEUES = ("contract_a", "contract_b")
MAX_RECEIVE_COUNT = 3


def contract_topology(prefix: str = "") -> Topology:
    return Topology(
        topic=f"{prefix}{TOPIC}",
        queues=tuple(QueueSpec(f"{prefix}{q}", f"{prefix}{q}-dlq", 3600, MAX_RECEIVE_COUNT) for q in QUEUES),
    )


#: The RabbitMQ server the rabbitmq param runs against (a local one by default).
RABBITMQ_URL = os.environ.get("VIDEOCONVERTER_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@dataclass(frozen=True)
class ContractNames:
    """The topic and queues of one test: unique, since a shared server outlives a test run."""

    prefix: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}{TOPIC}"

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{q}" for q in QUEUES)

    @property
    def a(self) -> str:
        return self.queues[0]

    @property
    def b(self) -> str:
        return self.queues[1]

    def topology(self) -> Topology:
        return contract_topology(self.prefix)


@pytest.fixture
def names() -> ContractNames:
    return ContractNames(f"t{uuid.uuid4().hex[:10]}-")


def delete_rabbitmq_topology(topology: Topology) -> None:
    """Remove a test's exchange and queues from the shared RabbitMQ server, which outlives the test run."""
    from videoconverter.brokers.rabbitmq import RabbitMQBroker

    cleaner = RabbitMQBroker(RABBITMQ_URL)
    try:
        cleaner.delete(topology)
    finally:
        cleaner.close()


def reachable(url: str, default_port: int = 5672) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def broker_factory(
    request: pytest.FixtureRequest, tmp_path: Path, names: ContractNames
) -> Iterator[Callable[[], Broker]]:
    """Opens brokers of the backend the test's contract class names (``backend``: sqlite, rabbitmq or aws)."""
    opened: list[Broker] = []
    backend = request.cls.backend
    if backend == "rabbitmq":
        require_service(reachable(RABBITMQ_URL), f"no RabbitMQ server at {redact(RABBITMQ_URL)}")
        url = RABBITMQ_URL
    elif backend == "aws":
        url = request.getfixturevalue("moto_server").url("aws")
    else:
        url = f"sqlite://{tmp_path / 'broker.sqlite3'}"

    def make() -> Broker:
        broker = open_broker(url)
        opened.append(broker)
        return broker

    yield make
    if backend == "aws":
        opened[0].delete(names.topology())  # type: ignore[attr-defined]
    for broker in opened:
        broker.close()
    if backend == "rabbitmq":
        delete_rabbitmq_topology(names.topology())


@pytest.fixture
def broker(broker_factory: Callable[[], Broker], names: ContractNames) -> Broker:
    b = broker_factory()
    b.declare(names.topology())
    return b


@pytest.fixture(params=["file", "s3"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], ObjectStore]]:
    """The s3 param runs over HTTP against moto's server, which the whole session shares and where bucket names
    are global: every bucket a test creates is emptied and deleted at its teardown."""
    created: set[str] = set()
    s3_url = request.getfixturevalue("moto_server").url("s3") if request.param == "s3" else ""
    url = s3_url or f"file://{tmp_path / 'buckets'}"

    def make() -> ObjectStore:
        store = open_store(url)
        create_bucket = store.create_bucket

        def tracked(bucket: str) -> None:
            created.add(bucket)
            create_bucket(bucket)

        store.create_bucket = tracked  # type: ignore[method-assign]
        return store

    yield make
    if created and s3_url:
        from videoconverter.aws.clients import AwsLocation

        client = AwsLocation.from_url(s3_url).client("s3")
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in sorted(created & existing):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
        client.close()


@pytest.fixture
def store(store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    s = store_factory()
    s.create_bucket("contract-bucket")
    return s


POSTGRES_URL = os.environ.get("VIDEOCONVERTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres", "dynamodb"])
def job_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty job store, once per backend (a test may open it more than once: many workers)."""
    schema = ""
    dynamodb_url = ""
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'jobs.sqlite3'}"
    elif request.param == "dynamodb":
        # A table per test on moto's server (which outlives the test): created by the store, deleted below.
        url = dynamodb_url = request.getfixturevalue("moto_server").url("dynamodb", f"vc-test-{uuid.uuid4().hex[:12]}")
    else:
        require_service(reachable(POSTGRES_URL, 5432), f"no PostgreSQL server at {redact(POSTGRES_URL)}")
        schema = f"vc_test_{uuid.uuid4().hex[:12]}"  # a shared server outlives the test
        url = f"{POSTGRES_URL}?schema={schema}"
    yield url
    if dynamodb_url:
        from videoconverter.aws.clients import AwsLocation

        location = AwsLocation.from_url(dynamodb_url)
        client = location.client("dynamodb")
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):  # a test may not have opened it
            client.delete_table(TableName=location.name)
        client.close()
    if schema:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def job_store(job_store_url: str) -> Iterator[JobStore]:
    store = open_job_store(job_store_url)
    yield store
    store.close()
