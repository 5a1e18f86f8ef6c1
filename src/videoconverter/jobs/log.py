"""A job's own log lines: to the process log (JSON) and to the job store, for ``videoconverter logs``."""

from __future__ import annotations

import logging
from typing import Any

from videoconverter.jobs.base import JobStore
from videoconverter.logs import redact


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
