"""Ingest: an upload event becomes one message per rendition (through the topic) and queued job records.

This is the publish step of the original AWS design (S3 event -> SNS). With the embedded store it runs inside
the process that uploads; :meth:`Ingest.reconcile` catches uploads whose event never made it (files copied
into the bucket folder by hand, a crash between the write and the publish, a newly added rendition).
"""

from __future__ import annotations

import json
import logging

from videoconverter.brokers.base import Broker
from videoconverter.config import Config
from videoconverter.events import ObjectCreated, new_sequencer, object_created_event
from videoconverter.jobs.base import JobId, JobStore
from videoconverter.storage.base import ObjectStore

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, config: Config, broker: Broker, jobs: JobStore) -> None:
        self.config = config
        self.broker = broker
        self.jobs = jobs

    def on_object_created(self, event: ObjectCreated) -> None:
        """Publish the S3-shaped event to the topic, then record a queued job per rendition."""
        self.broker.publish(self.config.topic, json.dumps(object_created_event(event)))
        # Publish first: a record without a message would wait for ever; a message without a record is
        # recorded by the worker when it starts (enqueue never overwrites a running or finished job).
        self.record_queued(event)

    def record_queued(self, event: ObjectCreated) -> None:
        """Record a queued job per rendition, without publishing: where S3 itself publishes the event (S3 with
        SNS), the process that uploaded still shows its jobs at once. A sidecar caption has jobs only where
        the output carries captions."""
        renditions = self.config.renditions_for(event.key)
        for rendition in renditions:
            self.jobs.enqueue(JobId(event.key, event.etag, rendition.name), event.sequencer)
            self.jobs.append_log(
                event.key,
                rendition.name,
                "INFO",
                f"upload of {event.size} bytes (etag {event.etag}) queued for {rendition.name}",
            )
        log.info(
            "queued %s for %s",
            event.key,
            ", ".join(r.name for r in renditions),
            extra={"key": event.key, "source_etag": event.etag},
        )

    def reconcile(self, store: ObjectStore) -> int:
        """Publish an event for every input object (a video or a sidecar caption) that lacks a job for some
        rendition; return how many."""
        published = 0
        for info in store.list(self.config.input_bucket):
            if not self.config.accepts(info.bucket, info.key):
                continue
            renditions = self.config.renditions_for(info.key)
            missing = [r for r in renditions if self.jobs.get(JobId(info.key, info.etag, r.name)) is None]
            if missing:
                self.on_object_created(ObjectCreated(info.bucket, info.key, info.size, info.etag, new_sequencer()))
                published += 1
        return published
