"""Keeping a lease while a job works: a thread extends it every third of the visibility timeout and notices when
it is lost (the message went to another worker), so the job stops instead of writing."""

from __future__ import annotations

import logging
import threading

from videoconverter import telemetry
from videoconverter.brokers.base import Delivery
from videoconverter.errors import StaleReceiptError
from videoconverter.pipeline import Services

log = logging.getLogger(__name__)


class Heartbeat:
    """Extends the lease every third of the visibility timeout while FFmpeg runs; notices a lost lease."""

    def __init__(self, services: Services, delivery: Delivery, visibility_timeout_seconds: int) -> None:
        self._svc = services
        self._delivery = delivery
        self._timeout = visibility_timeout_seconds
        self._done = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = max(0.5, self._timeout / 3)
        while not self._done.wait(interval):
            try:
                self._svc.broker.extend(self._delivery, self._timeout)
            except StaleReceiptError:
                telemetry.lease_extension(self._delivery.queue, "lost")
                self.lost.set()
                return
            except Exception:  # a passing broker hiccup: the next beat tries again before the lease ends
                telemetry.lease_extension(self._delivery.queue, "failed")
                log.warning("heartbeat failed", exc_info=True)
            else:
                telemetry.lease_extension(self._delivery.queue, "extended")
