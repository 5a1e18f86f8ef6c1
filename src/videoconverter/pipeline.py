"""Wiring: turn a Config into the object store, broker and job store it names, and the topology it implies.

It names no backend: each family opens its own URLs (``storage.open_store``, ``brokers.open_broker``,
``jobs.open_job_store``), and what differs between backends is asked of them through their interfaces: how a
broker words what its ``declare`` does, and whether the store's buckets can send their events to the broker's
topics themselves (S3 to SNS) instead of the process that uploads publishing them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from videoconverter import brokers, storage
from videoconverter.brokers.base import Broker, QueueSpec, Topology
from videoconverter.config import Config
from videoconverter.errors import BucketNotFoundError
from videoconverter.ingest import Ingest
from videoconverter.jobs import open_job_store
from videoconverter.jobs.base import MAX_PAGE_SIZE, JobFilter, JobRecord, JobState, JobStore
from videoconverter.logs import redact
from videoconverter.notifications.emitter import NotifyingJobStore
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
    return brokers.open_broker(config.broker_url)


def server_side_notifications(config: Config) -> bool:
    """Whether the store's input bucket itself sends each upload's event to the topic (S3 with SNS): the broker's
    topics have an address of a kind the store's buckets can notify. Decided from the URLs, connecting nowhere."""
    topic_address = brokers.BACKENDS.backend_class(config.broker_url).capabilities.topic_address
    return topic_address in storage.BACKENDS.backend_class(config.storage_url).notification_targets


def open_services(config: Config) -> Services:
    """Open the three backends. The embedded store emits upload events straight into the ingest; every job
    state change is announced on the notifications topic."""
    broker = open_broker(config)
    jobs = NotifyingJobStore(
        open_job_store(config.jobs_url), broker, config.notifications.topic, [r.name for r in config.renditions]
    )
    ingest = Ingest(config, broker, jobs)
    # Where the bucket notifies the topic itself (wired by provision), the uploading process only records the
    # queued jobs; with any other pairing (the embedded store, an S3-compatible store with RabbitMQ) it publishes.
    listener = ingest.record_queued if server_side_notifications(config) else ingest.on_object_created
    notification = Notification(config.input_bucket, config.event_suffixes, listener)
    store = storage.open_store(config.storage_url, (notification,))
    return Services(config, store, broker, jobs, ingest)


@contextlib.contextmanager
def services(config: Config) -> Iterator[Services]:
    opened = open_services(config)
    try:
        yield opened
    finally:
        opened.close()


def provision_plan(config: Config) -> list[str]:
    """What :func:`provision` ensures, in words, without touching anything (``provision --dry-run``)."""
    steps = [f"bucket {b}" for b in (config.input_bucket, *(r.output_bucket for r in config.renditions))]
    steps.extend(brokers.BACKENDS.backend_class(config.broker_url).describe(topology(config)))
    if server_side_notifications(config):
        store_class = storage.BACKENDS.backend_class(config.storage_url)
        steps.extend(store_class.describe_notifications(config.input_bucket, config.event_suffixes, config.topic))
    events = notifications_topology(config)
    steps.append(f"topic {events.topic} (job events) -> queue {', '.join(q.name for q in events.queues)}")
    settings = config.aws
    steps.extend(
        brokers.BACKENDS.backend_class(config.broker_url).describe_delivery_logging(
            _logged_topics(config), settings.delivery_status_role_arn, settings.delivery_status_success_sample_rate
        )
    )
    steps.append(f"job store {redact(config.jobs_url)}")
    return steps


def _logged_topics(config: Config) -> list[str]:
    """The topics whose deliveries SNS logs: uploads and job events."""
    return [config.topic, config.notifications.topic]


def provision(svc: Services) -> list[str]:
    """Create, or bring into line, the buckets, topic, queues, dead-letter queues, (S3 with SNS) the bucket's
    notification of the topic, and (where the broker keeps one) the topics' delivery log. Idempotent; returns
    what it ensured (as :func:`provision_plan` words it)."""
    config = svc.config
    svc.broker.declare(topology(config))
    svc.broker.declare(notifications_topology(config))
    for bucket in (config.input_bucket, *(r.output_bucket for r in config.renditions)):
        svc.store.create_bucket(bucket)
    if server_side_notifications(config):
        topic_address = svc.broker.allow_bucket(config.topic, config.input_bucket)
        svc.store.notify_topic(config.input_bucket, config.event_suffixes, topic_address)
    settings = config.aws
    svc.broker.log_deliveries(
        _logged_topics(config), settings.delivery_status_role_arn, settings.delivery_status_success_sample_rate
    )
    return provision_plan(config)


def prepare_upload(svc: Services, bucket: str) -> None:
    """Make an upload into ``bucket`` independent of ``provision`` having run (``videoconverter up &`` and then
    ``cp`` at once: ``cp`` may win the race).

    Where the store is this machine's own (``store.embedded``: the file store) a missing input bucket is
    created here, after the topic and queues its event goes to are declared (both idempotent; a bucket that
    exists was made after its topology, by this or by :func:`provision`). Elsewhere nothing is created and
    nothing is asked (an uploader on S3 may hold no permission but PutObject): see :func:`missing_bucket`.
    """
    config = svc.config
    if not svc.store.embedded or bucket != config.input_bucket or svc.store.bucket_exists(bucket):
        return
    svc.broker.declare(topology(config))
    svc.broker.declare(notifications_topology(config))
    svc.store.create_bucket(bucket)


def missing_bucket(config: Config, bucket: str) -> BucketNotFoundError:
    """The error for an upload into ``bucket`` that does not exist: exactly what to run, or that it is not a bucket
    of this configuration."""
    configured = [config.input_bucket, *(r.output_bucket for r in config.renditions)]
    if bucket not in configured:
        return BucketNotFoundError(
            f"bucket {bucket!r} does not exist and is not one of this configuration's buckets "
            f"({', '.join(configured)}): check the name"
        )
    return BucketNotFoundError(
        f"bucket {bucket!r} does not exist in {redact(config.storage_url)}: run `videoconverter provision` with "
        "this same configuration and environment first (it creates the buckets, topic and queues)"
    )


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
