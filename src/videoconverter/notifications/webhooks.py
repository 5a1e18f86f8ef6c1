"""Webhook delivery: signed HTTP POSTs of job events, retried with back-off, kept when undeliverable.

The deliverer is a consumer of the webhooks queue (subscribed to the notifications topic), so it runs apart from
the workers and a slow or failing endpoint never holds up a transcode. With several URLs, an event is first split
into one delivery per URL, so that one failing endpoint is retried alone. A delivery that fails
``webhook_max_attempts`` times is dead-lettered with the reason: ``videoconverter events --undelivered`` lists
them and ``videoconverter events --redeliver`` tries them again.

Signature (verify with :func:`verify`): header ``X-Videoconverter-Signature: t=<unix time>,v1=<hex>`` where hex is
HMAC-SHA256 with the shared secret over ``"<unix time>." + body``. Receivers reject a timestamp more than
:data:`TOLERANCE_SECONDS` away from their clock (replays) and de-duplicate on ``X-Videoconverter-Event-Id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from videoconverter import __version__
from videoconverter.brokers.base import Broker, Delivery
from videoconverter.errors import StaleReceiptError
from videoconverter.logs import redact
from videoconverter.notifications.settings import NotificationSettings

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Videoconverter-Signature"
TOLERANCE_SECONDS = 300
RECEIVE_WAIT_SECONDS = 1.0


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, now: float | None = None, tolerance_seconds: int = TOLERANCE_SECONDS
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is recent (what a receiver checks)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookDeliverer:
    def __init__(self, broker: Broker, settings: NotificationSettings, stop: threading.Event | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self.stop = stop or threading.Event()

    def run(self, exit_when_idle: bool = False) -> int:
        """Deliver until stopped (or until the queue is empty, with ``exit_when_idle``); return how many
        messages were handled."""
        handled = 0
        queue = self.settings.webhooks_queue
        while not self.stop.is_set():
            deliveries = self.broker.receive(queue, wait_seconds=RECEIVE_WAIT_SECONDS, visibility_timeout_seconds=60)
            for delivery in deliveries:
                self.handle(delivery)
                handled += 1
            if not deliveries and exit_when_idle and self.broker.depth(queue).total == 0:
                break
        return handled

    def handle(self, delivery: Delivery) -> None:
        try:
            message = json.loads(delivery.body)
        except ValueError:
            self._settle(self.broker.dead_letter, delivery, "not a JSON event")
            return
        if "url" not in message:  # an event from the topic: one delivery per URL, retried on its own
            if len(self.settings.webhook_urls) > 1:
                for url in self.settings.webhook_urls:
                    self.broker.send(delivery.queue, json.dumps({"url": url, "event": message}))
                self._settle(self.broker.ack, delivery)
                return
            message = {"url": self.settings.webhook_urls[0], "event": message} if self.settings.webhook_urls else None
            if message is None:
                self._settle(self.broker.ack, delivery)  # no webhook configured any more
                return
        self._deliver(delivery, message["url"], message["event"])

    def _deliver(self, delivery: Delivery, url: str, event: dict[str, Any]) -> None:
        problem = post(url, event, self.settings)
        if problem is None:
            self._settle(self.broker.ack, delivery)
            return
        where = redact(url)
        if delivery.attempt >= self.settings.webhook_max_attempts:
            reason = f"{where}: {problem} (gave up after {delivery.attempt} attempts)"
            log.warning("webhook event %s undeliverable: %s", event.get("id"), reason)
            self._settle(self.broker.dead_letter, delivery, reason)
            return
        delay = self.settings.retry_delay_seconds(delivery.attempt)
        log.info("webhook %s failed (%s); retrying in %.0f s", where, problem, delay)
        self._settle(self.broker.release, delivery, delay)

    @staticmethod
    def _settle(action: Any, delivery: Delivery, *args: object) -> None:
        try:
            action(delivery, *args)
        except StaleReceiptError:
            log.warning("webhook delivery %s was taken by another deliverer meanwhile", delivery.message_id)


def post(url: str, event: dict[str, Any], settings: NotificationSettings) -> str | None:
    """POST ``event`` to ``url``, signed; None on a 2xx answer, else what went wrong."""
    body = json.dumps(event, separators=(",", ":")).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked (http/https) when configured
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"videoconverter/{__version__}",
            "X-Videoconverter-Event-Id": str(event.get("id", "")),
            "X-Videoconverter-Event-Type": str(event.get("type", "")),
            SIGNATURE_HEADER: sign(settings.webhook_secret, body, int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.webhook_timeout_seconds) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return None if 200 <= status < 300 else f"HTTP {status}"
