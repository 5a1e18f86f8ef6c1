"""AWS Lambda handlers: the serverless workers of the original design, running the same worker code.

``transcode_handler``
    Triggered by a rendition's SQS queue (an event source mapping with ``ReportBatchItemFailures``). Each record
    is handled on its own by :class:`~videoconverter.worker.Worker`, exactly as a long-running worker would handle
    a message it received: converted and deleted, dead-lettered with its reason (a permanent failure: reported as
    handled, so Lambda does not retry it), or handed back with back-off (a transient failure: reported in
    ``batchItemFailures``, so only that record comes back). The rendition is the one whose queue the record came
    from (``eventSourceARN``).

``publish_handler``
    The original design's first function, for those who keep it: S3 invokes it for each upload and it publishes
    the event to the topic (and records the queued jobs). S3 can notify SNS directly instead (the default set up
    by ``videoconverter provision``), which needs no function at all.

Configuration comes from the environment as for the CLI (``VIDEOCONVERTER_STORAGE=s3://``,
``VIDEOCONVERTER_BROKER=aws://``, ``VIDEOCONVERTER_JOBS=dynamodb://TABLE``), and from ``videoconverter.toml`` in
the package root when ``VIDEOCONVERTER_CONFIG`` is not set. Services are opened once per Lambda container and
reused by later invocations.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from videoconverter.brokers.sqs_messages import delivery_of_record
from videoconverter.config import Config, load_config
from videoconverter.errors import InvalidEventError
from videoconverter.events import parse_event
from videoconverter.logs import Redactor, configure_logging
from videoconverter.pipeline import Services, open_services

log = logging.getLogger(__name__)
PACKAGED_CONFIG = "videoconverter.toml"


def transcode_handler(event: Mapping[str, Any], context: Any = None) -> dict[str, list[dict[str, str]]]:
    """Lambda entry point for an SQS batch; returns the partial batch response."""
    return handle_sqs_batch(_services(), event)


def publish_handler(event: Mapping[str, Any], context: Any = None) -> dict[str, int]:
    """Lambda entry point for S3 notifications: publish each matching upload to the topic."""
    return publish_uploads(_services(), event)


def handle_sqs_batch(
    svc: Services, event: Mapping[str, Any], ffmpeg: str | None = None
) -> dict[str, list[dict[str, str]]]:
    """Handle every record of an SQS event; list the ones Lambda should deliver again."""
    from videoconverter.worker import Worker  # imports FFmpeg and PyAV support, which publishing never needs

    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        message_id = str(record.get("messageId", ""))
        try:
            delivery = delivery_of_record(record)
            rendition = _rendition_of_queue(svc.config, delivery.queue)
            # Acked or dead-lettered: done with. Released (a transient failure, back-off) or abandoned: Lambda
            # delivers it again.
            if not Worker(svc, rendition, ffmpeg=ffmpeg).handle(delivery).finished:
                failures.append({"itemIdentifier": message_id})
        except Exception:  # this record only: the others of the batch still count
            log.exception("record %s failed", message_id, extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def publish_uploads(svc: Services, event: Mapping[str, Any]) -> dict[str, int]:
    """Publish each ObjectCreated record of an S3 notification that is an input of this pipeline."""
    try:
        records = parse_event(json.dumps(event))
    except InvalidEventError:
        log.exception("not an S3 event: ignored")
        return {"published": 0}
    published = 0
    for record in records:
        if svc.config.accepts(record.bucket, record.key):
            svc.ingest.on_object_created(record)
            published += 1
    return {"published": published}


def _rendition_of_queue(config: Config, queue: str) -> Any:
    for rendition in config.renditions:
        if rendition.queue == queue:
            return rendition
    raise InvalidEventError(
        f"record from queue {queue!r}, which no configured rendition reads "
        f"(configured: {', '.join(r.queue for r in config.renditions)})"
    )


@functools.cache
def _services() -> Services:
    """The services of this Lambda container, opened on the first invocation and kept for the next ones."""
    env = dict(os.environ)
    packaged = Path(env.get("LAMBDA_TASK_ROOT", Path(__file__).resolve().parent.parent)) / PACKAGED_CONFIG
    if "VIDEOCONVERTER_CONFIG" not in env and packaged.is_file():
        env["VIDEOCONVERTER_CONFIG"] = str(packaged)
    # /var/task is read-only on Lambda: local state (none with the AWS backends) goes to /tmp.
    env.setdefault("VIDEOCONVERTER_DATA_DIR", str(Path(tempfile.gettempdir()) / "videoconverter"))
    config = load_config(environ=env)
    configure_logging(config.log_level, Redactor(config.secrets))
    return open_services(config)
