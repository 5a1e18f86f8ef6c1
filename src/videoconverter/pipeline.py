"""Wiring: turn a Config into the object store, broker and job store it names, and the topology it implies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoconverter import registry as backends
from videoconverter.aws import provision as aws
from videoconverter.brokers.base import Broker, QueueSpec, Topology
from videoconverter.brokers.sqs_messages import source_retention_seconds
from videoconverter.config import Config
from videoconverter.ingest import Ingest
from videoconverter.jobs.base import MAX_PAGE_SIZE, JobFilter, JobRecord, JobState, JobStore
from videoconverter.logs import redact
from videoconverter.notifications.emitter import NotifyingJobStore
from videoconverter.sqlite_db import path_from_url
from videoconverter.storage.base import Notification, ObjectStore
from videoconverter.storage.keys import split_s3_url


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
            QueueSpec(
                r.queue,
                r.dead_letter_queue,
                config.message_retention_seconds,
                config.max_receive_count,
                config.visibility_timeout_seconds,
            )
            for r in config.renditions
        ),
    )


def all_topologies(config: Config) -> list[Topology]:
    """Everything ``provision`` declares on the broker (what to delete to remove an installation)."""
    return [topology(config), notifications_topology(config)]


def notifications_topology(config: Config) -> Topology:
    """The notifications topic, with the events queue and (when webhooks are configured) the webhooks queue."""
    settings = config.notifications
    names = [settings.events_queue] + ([settings.webhooks_queue] if settings.webhook_urls else [])
    return Topology(
        topic=settings.topic,
        queues=tuple(
            QueueSpec(name, f"{name}-dlq", config.message_retention_seconds, settings.webhook_max_attempts, 60)
            for name in names
        ),
    )


def open_broker(config: Config) -> Broker:
    """The broker alone (for a process that only watches queues)."""
    broker: Broker = _open(config.broker_url, backends.BROKERS, "broker")
    return broker


def open_services(config: Config) -> Services:
    """Open the three backends. The embedded store emits upload events straight into the ingest; every job
    state change is announced on the notifications topic."""
    broker = open_broker(config)
    notifier = NotifyingJobStore(
        _open(config.jobs_url, backends.JOB_STORES, "job store"),
        broker,
        config.notifications.topic,
        [r.name for r in config.renditions],
    )
    jobs: JobStore = notifier
    ingest = Ingest(config, broker, jobs)
    # With S3 and SNS, S3 itself publishes each upload's event (wired by provision), and the uploading process
    # only records the queued jobs; any other pairing (the embedded store, an S3-compatible store with
    # RabbitMQ) publishes from the process that uploads.
    listener = ingest.record_queued if aws.server_side_notifications(config) else ingest.on_object_created
    store = open_store(config.storage_url, (Notification(config.input_bucket, config.input_suffixes, listener),))
    notifier.size_of = lambda url: _size_of(store, url)
    return Services(config, store, broker, jobs, ingest)


def _size_of(store: ObjectStore, url: str) -> int | None:
    info = store.head(*split_s3_url(url))
    return info.size if info else None


@contextlib.contextmanager
def services(config: Config) -> Iterator[Services]:
    opened = open_services(config)
    try:
        yield opened
    finally:
        opened.close()


def provision_plan(config: Config) -> list[str]:
    """What :func:`provision` ensures, in words, without touching anything (``provision --dry-run``)."""
    spec = {q.name: q for q in topology(config).queues}
    steps = [f"bucket {b}" for b in (config.input_bucket, *(r.output_bucket for r in config.renditions))]
    steps.append(f"topic {config.topic}")
    for r in config.renditions:
        q = spec[r.queue]
        retention = q.message_retention_seconds
        if backends.scheme_of(config.broker_url) == "aws":
            retention = source_retention_seconds(q)
        steps.append(
            f"queue {r.queue} (subscribed to {config.topic}; keeps messages {retention} s; "
            f"after {q.max_receive_count} receives -> {r.dead_letter_queue})"
        )
        steps.append(f"queue {r.dead_letter_queue}")
    if aws.server_side_notifications(config):
        steps.extend(aws.steps(config))
    events = notifications_topology(config)
    steps.append(f"topic {events.topic} (job events) -> queue {', '.join(q.name for q in events.queues)}")
    steps.append(f"job store {redact(config.jobs_url)}")
    return steps


def provision(svc: Services) -> list[str]:
    """Create, or bring into line, the buckets, topic, queues, dead-letter queues and (on AWS) the S3 -> SNS
    notification. Idempotent; returns what it ensured (as :func:`provision_plan` words it)."""
    config = svc.config
    svc.broker.declare(topology(config))
    svc.broker.declare(notifications_topology(config))
    for bucket in (config.input_bucket, *(r.output_bucket for r in config.renditions)):
        svc.store.create_bucket(bucket)
    if aws.server_side_notifications(config):
        aws.wire_notifications(config, svc.broker.topic_arn(config.topic))  # type: ignore[attr-defined]
    return provision_plan(config)


def open_store(url: str, notifications: tuple[Notification, ...] = ()) -> ObjectStore:
    """The object store ``url`` names. Local stores call ``notifications`` after each write; server-side stores
    (S3) deliver events themselves, as configured by ``provision``, and ignore them."""
    store_class = backends.resolve("storage", backends.STORAGE, url)
    from_url = getattr(store_class, "from_url", None)
    if from_url is not None:
        return from_url(url, notifications=notifications)  # type: ignore[no-any-return]
    return store_class(path_from_url(url, backends.scheme_of(url)), notifications=notifications)  # type: ignore[no-any-return]


def _open(url: str, registry: dict[str, str], kind: str) -> Any:
    backend = backends.resolve(kind, registry, url)
    from_url = getattr(backend, "from_url", None)
    if from_url is not None:  # a network backend: it takes the whole URL
        return from_url(url)
    return backend(Path(path_from_url(url, backends.scheme_of(url))))


def settled(svc: Services, key: str | None = None) -> tuple[list[JobRecord], bool]:
    """Whether nothing is left to do, with the jobs that tell: with ``key``, every job of the key (all finished,
    and one for every rendition: with S3 -> SNS none exists before its worker starts); without, the jobs not
    finished yet (a query by state, never the history) and every rendition queue empty (a message may exist
    before its job record does, on any backend)."""
    if key is not None:
        records = svc.jobs.find(key)
        if any(not r.state.terminal for r in records):
            return records, False
        return records, {r.name for r in svc.config.renditions} <= {r.id.rendition for r in records}
    records = pending_jobs(svc.jobs)
    if records:
        return records, False
    return records, all(svc.broker.depth(r.queue).total == 0 for r in svc.config.renditions)


def pending_jobs(jobs: JobStore) -> list[JobRecord]:
    """Every queued or running job, newest first, page by page (as many reads as pages of pending jobs)."""
    found: list[JobRecord] = []
    cursor: str | None = None
    while True:
        page = jobs.page(JobFilter(states=(JobState.QUEUED, JobState.RUNNING)), MAX_PAGE_SIZE, cursor)
        found += page.records
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor
