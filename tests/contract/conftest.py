"""Backends under contract. Each fixture is parametrised by backend: add a backend by adding a param.

A factory returns a *new* instance bound to the same underlying storage each time it is called, so tests can
model several workers (processes) sharing one broker or store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from videoconverter.brokers.base import Broker, QueueSpec, Topology
from videoconverter.brokers.sqlite import SQLiteBroker
from videoconverter.jobs.base import JobStore
from videoconverter.jobs.sqlite import SQLiteJobStore
from videoconverter.storage.base import ObjectStore
from videoconverter.storage.filesystem import FileSystemStore

TOPIC = "contract-topic"
QUEUES = ("contract_a", "contract_b")
MAX_RECEIVE_COUNT = 3


def contract_topology(prefix: str = "") -> Topology:
    return Topology(
        topic=f"{prefix}{TOPIC}",
        queues=tuple(QueueSpec(f"{prefix}{q}", f"{prefix}{q}-dlq", 3600, MAX_RECEIVE_COUNT) for q in QUEUES),
    )


@pytest.fixture(params=["sqlite"])
def broker_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Broker]]:
    opened: list[Broker] = []

    def make() -> Broker:
        broker: Broker
        if request.param == "sqlite":
            broker = SQLiteBroker(tmp_path / "broker.sqlite3")
        opened.append(broker)
        return broker

    yield make
    for broker in opened:
        broker.close()


@pytest.fixture
def broker(broker_factory: Callable[[], Broker]) -> Broker:
    b = broker_factory()
    b.declare(contract_topology())
    return b


@pytest.fixture(params=["file"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ObjectStore]:
    def make() -> ObjectStore:
        if request.param == "file":
            return FileSystemStore(tmp_path / "buckets")
        raise AssertionError(request.param)

    return make


@pytest.fixture
def store(store_factory: Callable[[], ObjectStore]) -> ObjectStore:
    s = store_factory()
    s.create_bucket("contract-bucket")
    return s


@pytest.fixture(params=["sqlite"])
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    store: JobStore
    if request.param == "sqlite":
        store = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    yield store
    store.close()
