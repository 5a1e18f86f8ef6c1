"""Webhook delivery: signed HTTP POSTs of job events, retried with back-off, kept when undeliverable.

The deliverer is a consumer of the webhooks queue (subscribed to the notifications topic), so it runs apart from
the workers and a slow or failing endpoint never holds up a transcode. With several URLs, an event is first split
into one delivery per URL, so that one failing endpoint is retried alone: each delivery is released with its own
back-off, and one that fails ``webhook_max_attempts`` times is dead-lettered with the reason
(``videoconverter events --undelivered`` lists them, ``videoconverter events --redeliver`` tries them again).

Each URL has its own lane of senders, so one slow endpoint does not delay the others: at most
:data:`SENDERS_PER_URL` POSTs to one URL at once, and at most :data:`HELD_PER_URL` of its deliveries held (being
sent or waiting for a sender). Only when one URL holds that many does receiving wait for it.

A 2xx answer is a delivery. Redirects are not followed: a 3xx is a failed attempt, with its status as the
reason, since following one would send the signed event wherever the ``Location`` says. Requests are signed
by the Standard Webhooks specification, with the older ``X-Videoconverter-Signature`` kept for one release
(:mod:`videoconverter.notifications.signing`).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from videoconverter import __version__
from videoconverter.brokers.base import Broker, Delivery
from videoconverter.consumer import ACKED, STOP_CHECK_SECONDS, Consumer, Settlement, dead_lettered, released, settle
from videoconverter.logs import redact
from videoconverter.notifications.settings import NotificationSettings
from videoconverter.notifications.signing import signature_headers

log = logging.getLogger(__name__)
RECEIVE_WAIT_SECONDS = 1.0
RECEIVE_BATCH_MESSAGES = 10
SENDERS_PER_URL = 4  # POSTs in flight to one URL at most
HELD_PER_URL = 16  # deliveries of one URL held at most: being sent, or waiting for one of its senders
LEASE_MARGIN_SECONDS = 30


class WebhookDeliverer:
    def __init__(self, broker: Broker, settings: NotificationSettings, stop: threading.Event | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self.stop = stop or threading.Event()
        self._lanes: dict[str, _Lane] = {}

    def run(self, exit_when_idle: bool = False) -> int:
        """Deliver until stopped (or until the queue is empty, with ``exit_when_idle``); return how many
        messages were received. Returns once every POST in flight has ended; when stopped, deliveries still
        waiting for a sender are handed back to the queue unsent."""
        consumer = Consumer(
            self.broker,
            self.settings.webhooks_queue,
            self.handle,
            visibility_timeout_seconds=self.lease_seconds(),
            wait_seconds=RECEIVE_WAIT_SECONDS,
            batch_size=RECEIVE_BATCH_MESSAGES,
            stop=self.stop,
        )
        try:
            return consumer.run(exit_when_idle=exit_when_idle)
        finally:
            self.close()

    def close(self) -> None:
        """Wait until every delivery handed to a URL's lane has been sent and settled (or handed back)."""
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()

    def lease_seconds(self) -> int:
        """How long a received delivery is leased: enough to wait for a sender of its URL and then be sent,
        even when a whole receive's messages are for one URL whose lane is full."""
        waits = (HELD_PER_URL + RECEIVE_BATCH_MESSAGES) / SENDERS_PER_URL + 1
        return math.ceil(self.settings.webhook_timeout_seconds * waits) + LEASE_MARGIN_SECONDS

    def handle(self, delivery: Delivery) -> Settlement | None:
        """Settle a message now (split into one delivery per URL, or not deliverable), or hand it to its URL's
        lane, which settles it once sent (None)."""
        try:
            message = json.loads(delivery.body)
        except ValueError:
            return settle(self.broker, delivery, dead_lettered("not a JSON event"))
        if "url" not in message:  # an event from the topic: one delivery per URL, retried on its own
            urls = self.settings.webhook_urls
            if len(urls) > 1:
                for url in urls:
                    self.broker.send(delivery.queue, json.dumps({"url": url, "event": message}))
                return settle(self.broker, delivery, ACKED)
            if not urls:
                return settle(self.broker, delivery, ACKED)  # no webhook configured any more
            message = {"url": urls[0], "event": message}
        url, event = str(message["url"]), message["event"]
        lane = self._lanes.get(url)
        if lane is None:
            lane = self._lanes[url] = _Lane(lambda d, e: self._deliver(d, url, e))
        if not lane.offer(delivery, event, self.stop):  # stopped while its lane was full
            return settle(self.broker, delivery, released(0.0))
        return None

    def _deliver(self, delivery: Delivery, url: str, event: dict[str, Any]) -> Settlement:
        if self.stop.is_set():  # stopping: what has not been sent goes back to the queue
            return settle(self.broker, delivery, released(0.0))
        problem = post(url, event, self.settings)
        if problem is None:
            return settle(self.broker, delivery, ACKED)
        where = redact(url)
        if delivery.attempt >= self.settings.webhook_max_attempts:
            reason = f"{where}: {problem} (gave up after {delivery.attempt} attempts)"
            log.warning("webhook event %s undeliverable: %s", event.get("id"), reason)
            return settle(self.broker, delivery, dead_lettered(reason))
        delay = self.settings.retry_delay_seconds(delivery.attempt)
        log.info("webhook %s failed (%s); retrying in %.0f s", where, problem, delay)
        return settle(self.broker, delivery, released(delay))


class _Lane:
    """The deliveries of one URL: sent by up to :data:`SENDERS_PER_URL` threads, at most :data:`HELD_PER_URL`
    held at once."""

    def __init__(self, deliver: Callable[[Delivery, dict[str, Any]], object]) -> None:
        self._deliver = deliver
        self._room = threading.BoundedSemaphore(HELD_PER_URL)
        self._senders = ThreadPoolExecutor(max_workers=SENDERS_PER_URL, thread_name_prefix="webhook")

    def offer(self, delivery: Delivery, event: dict[str, Any], stop: threading.Event) -> bool:
        """Queue ``delivery`` for a sender, waiting while the lane is full; False if ``stop`` was set first."""
        while not self._room.acquire(timeout=STOP_CHECK_SECONDS):
            if stop.is_set():
                return False
        self._senders.submit(self._send, delivery, event)
        return True

    def _send(self, delivery: Delivery, event: dict[str, Any]) -> None:
        try:
            self._deliver(delivery, event)
        except Exception:  # a broker hiccup while settling: the lease runs out and the delivery comes back
            log.exception("webhook delivery %s failed", delivery.message_id)
        finally:
            self._room.release()

    def close(self) -> None:
        """Wait until every delivery queued here has been sent (or handed back)."""
        self._senders.shutdown(wait=True)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None  # urlopen then raises HTTPError with the 3xx status


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, event: dict[str, Any], settings: NotificationSettings) -> str | None:
    """POST ``event`` to ``url``, signed, without following redirects; None on a 2xx answer, else what went
    wrong."""
    body = json.dumps(event, separators=(",", ":")).encode()
    event_id = str(event.get("id", ""))
    request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked (http/https) when configured
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"videoconverter/{__version__}",
            "X-Videoconverter-Event-Id": event_id,
            "X-Videoconverter-Event-Type": str(event.get("type", "")),
            **signature_headers(settings.webhook_secret, event_id, body, int(time.time())),
        },
    )
    try:
        with _opener.open(request, timeout=settings.webhook_timeout_seconds) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            location = exc.headers.get("Location") if exc.headers else None
            where = f"; Location: {redact(location)}" if location else ""
            return f"HTTP {exc.code} (webhooks follow no redirect{where})"
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return None if 200 <= status < 300 else f"HTTP {status}"
