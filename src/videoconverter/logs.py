"""JSON-lines process logging with the job's key and rendition on every line, and secrets kept out."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]+)@", re.I)
_AWS_SECRET = re.compile(r"(?i)(aws_secret_access_key|secret|password|token)(\s*[=:]\s*)([^\s,;&]+)")
_JOB_FIELDS = ("key", "rendition", "source_etag", "attempt", "queue", "message_id")


def redact(text: str) -> str:
    """Replace passwords in URLs and ``secret=...`` style values with ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _AWS_SECRET.sub(lambda m: f"{m[1]}{m[2]}***", text)


class JsonLinesFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for field in _JOB_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Send JSON lines to stderr (stdout is kept for command output and ``--json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries narrate every connection at INFO ("Found credentials in environment variables"): only
    # their warnings belong in a job's trail.
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3", "pika"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
