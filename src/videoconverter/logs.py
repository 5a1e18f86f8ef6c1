"""JSON-lines logging with the job's key and rendition on every line, and secrets kept out."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from videoconverter.jobs.base import JobStore

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


class JobLog:
    """Log lines of one job: to the process log (JSON) and to the job store, for ``videoconverter logs``."""

    def __init__(self, jobs: JobStore, key: str, rendition: str, **context: Any) -> None:
        self._jobs = jobs
        self._logger = logging.getLogger("videoconverter.job")
        self.key = key
        self.rendition = rendition
        self._extra = {"key": key, "rendition": rendition, **context}

    def info(self, message: str) -> None:
        self._log(logging.INFO, message)

    def warning(self, message: str) -> None:
        self._log(logging.WARNING, message)

    def error(self, message: str) -> None:
        self._log(logging.ERROR, message)

    def _log(self, level: int, message: str) -> None:
        message = redact(message)
        self._logger.log(level, message, extra=self._extra)
        try:
            self._jobs.append_log(self.key, self.rendition, logging.getLevelName(level), message)
        except Exception:  # the trail is best effort: never fail a job because a log line failed
            self._logger.warning("could not store a job log line", exc_info=True, extra=self._extra)
