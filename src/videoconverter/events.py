"""S3-shaped ObjectCreated events: build them (embedded store) and parse them (every backend).

The JSON is exactly what S3 sends: keys URL-encoded (``red flower.mp4`` arrives as ``red+flower.mp4``),
``eventName`` without the ``s3:`` prefix, and possibly wrapped in an SNS envelope when raw message delivery is
off. ``s3:TestEvent`` messages, sent when notifications are turned on, carry no records and are ignored.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from videoconverter.errors import InvalidEventError


@dataclass(frozen=True)
class ObjectCreated:
    """One record of an S3 ObjectCreated notification, with the key decoded."""

    bucket: str
    key: str
    size: int
    etag: str
    sequencer: str
    event_name: str = "ObjectCreated:Put"
    event_time: str = ""

    def is_newer_than(self, other_sequencer: str) -> bool:
        """Order two events of the same key as S3 documents: right-pad the shorter hex string, compare."""
        width = max(len(self.sequencer), len(other_sequencer))
        return self.sequencer.upper().ljust(width, "0") > other_sequencer.upper().ljust(width, "0")


_sequencer_lock = threading.Lock()
_last_sequencer_ns = 0


def new_sequencer() -> str:
    """A hex sequencer that grows with time, like S3's (compared after right-padding).

    Strictly increasing within a process even if the wall clock stands still or steps back: a later upload
    must never look older than an earlier one, or its conversion would be skipped as superseded.
    """
    global _last_sequencer_ns
    with _sequencer_lock:
        _last_sequencer_ns = max(time.time_ns(), _last_sequencer_ns + 1)
        return f"{_last_sequencer_ns:018X}"


def object_created_event(record: ObjectCreated, region: str = "local") -> dict[str, Any]:
    """The S3 event-notification document for one created object."""
    event_time = record.event_time or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": event_time,
                "eventName": record.event_name,
                "userIdentity": {"principalId": "videoconverter"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "videoconverter-input-created",
                    "bucket": {
                        "name": record.bucket,
                        "ownerIdentity": {"principalId": "videoconverter"},
                        "arn": f"arn:aws:s3:::{record.bucket}",
                    },
                    "object": {
                        "key": quote_plus(record.key, safe="/"),
                        "size": record.size,
                        "eTag": record.etag,
                        "sequencer": record.sequencer,
                    },
                },
            }
        ]
    }


def parse_event(body: str) -> list[ObjectCreated]:
    """The ObjectCreated records in a message body: raw S3 event or SNS envelope around one.

    Returns an empty list for ``s3:TestEvent``. Records of other event types are skipped.
    Raises :class:`InvalidEventError` for anything that is not an S3 event.
    """
    document = _load(body, "message body")
    if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
        document = _load(document["Message"], "SNS Message field")
    if not isinstance(document, dict):
        raise InvalidEventError("message is not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError("message has no Records list: not an S3 event notification")
    return [parsed for parsed in (_record(r) for r in records) if parsed is not None]


def _load(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise InvalidEventError(f"{what} is not a string")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"{what} is not valid JSON ({exc.msg} at position {exc.pos})") from exc


def _record(record: Any) -> ObjectCreated | None:
    try:
        name = record["eventName"]
        if not isinstance(name, str) or not name.startswith("ObjectCreated:"):
            return None
        s3 = record["s3"]
        obj = s3["object"]
        return ObjectCreated(
            bucket=str(s3["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            size=int(obj.get("size", 0)),
            etag=str(obj.get("eTag", "")).strip('"'),
            sequencer=str(obj.get("sequencer", "")),
            event_name=name,
            event_time=str(record.get("eventTime", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEventError(f"S3 event record is missing or has a malformed field: {exc}") from exc
