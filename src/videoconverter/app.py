"""Wiring: turn a Config into the object store, broker and job store it names, and the topology it implies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoconverter import backends
from videoconverter.brokers.base import Broker, QueueSpec, Topology
from videoconverter.config import Config
from videoconverter.ingest import Ingest
from videoconverter.jobs.base import JobRecord, JobStore
from videoconverter.sqlite import path_from_url
from videoconverter.storage.base import Notification, ObjectStore


@dataclass
class Services:
    config: Config
    store: ObjectStore
    broker: Broker
    jobs: JobStore
    ingest: Ingest

    def close(self) -> None:
        self.broker.close()
        self.jobs.close()


def topology(config: Config) -> Topology:
    return Topology(
        topic=config.topic,
        queues=tuple(
            QueueSpec(r.queue, r.dead_letter_queue, config.message_retention_seconds, config.max_receive_count)
            for r in config.renditions
        ),
    )


def open_services(config: Config) -> Services:
    """Open the three backends. The embedded store emits upload events straight into the ingest."""
    broker: Broker = _open(config.broker_url, backends.BROKERS, "broker")
    jobs: JobStore = _open(config.jobs_url, backends.JOB_STORES, "job store")
    ingest = Ingest(config, broker, jobs)
    notification = Notification(config.input_bucket, config.input_suffixes, ingest.on_object_created)
    store_class = backends.resolve("storage", backends.STORAGE, config.storage_url)
    store = store_class(
        path_from_url(config.storage_url, backends.scheme_of(config.storage_url)), notifications=(notification,)
    )
    return Services(config, store, broker, jobs, ingest)


@contextlib.contextmanager
def services(config: Config) -> Iterator[Services]:
    opened = open_services(config)
    try:
        yield opened
    finally:
        opened.close()


def provision(svc: Services) -> list[str]:
    """Create the buckets, topic, queues and dead-letter queues. Idempotent; returns what it ensured."""
    config = svc.config
    svc.broker.declare(topology(config))
    buckets = [config.input_bucket, *(r.output_bucket for r in config.renditions)]
    for bucket in buckets:
        svc.store.create_bucket(bucket)
    queues = [q for r in config.renditions for q in (r.queue, r.dead_letter_queue)]
    return [f"bucket {b}" for b in buckets] + [f"topic {config.topic}"] + [f"queue {q}" for q in queues]


def _open(url: str, registry: dict[str, str], kind: str) -> Any:
    backend = backends.resolve(kind, registry, url)
    from_url = getattr(backend, "from_url", None)
    if from_url is not None:  # a network backend: it takes the whole URL
        return from_url(url)
    return backend(Path(path_from_url(url, backends.scheme_of(url))))


def settled(svc: Services, key: str | None = None) -> tuple[list[JobRecord], bool]:
    """The jobs (of ``key``, or all), and whether nothing is left to do: every job finished and, when no key is
    given, every rendition queue empty (a message may exist before its job record does, on any backend)."""
    records = svc.jobs.find(key)
    if any(not r.state.terminal for r in records):
        return records, False
    if key is not None:
        return records, bool(records)
    return records, all(svc.broker.depth(r.queue).total == 0 for r in svc.config.renditions)
