"""The webhook deliverer against real HTTP servers on 127.0.0.1 (the embedded broker, no FFmpeg): redirects are
failed attempts and never followed; a slow endpoint does not hold up a fast one; requests verify with the
stock ``standardwebhooks`` library."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.conftest import require_service, wait_until
from videoconverter.brokers.base import Broker
from videoconverter.config import Config, load_config
from videoconverter.notifications.signing import SIGNATURE_HEADER, verify
from videoconverter.notifications.webhooks import WebhookDeliverer
from videoconverter.pipeline import notifications_topology, open_broker

SECRET = "webhook-secret-for-the-tests"
SLOW_TIMEOUT_SECONDS = 2.0


class Recorder(ThreadingHTTPServer):
    """Keeps every request (path, headers by lower-case name, body, arrival on the monotonic clock). ``/ok``
    answers 200; ``/moved-CODE`` answers CODE with ``Location: redirect_to``; ``/slow`` answers only once
    ``release`` is set."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], bytes, float]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.redirect_to = ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def arrivals(self, path: str) -> list[float]:
        with self.lock:
            return [at for p, _h, _b, at in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.server.requests.append((self.path, headers, body, time.monotonic()))

    def do_POST(self) -> None:
        self._record()
        if self.path.startswith("/moved-"):
            self.send_response(int(self.path.removeprefix("/moved-")))
            self.send_header("Location", self.server.redirect_to)
        elif self.path == "/slow":
            self.server.release.wait(30)
            self.send_response(200)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # where a followed 301/302/303 would arrive
        self._record()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    yield from _serve()


@pytest.fixture
def other_endpoint() -> Iterator[Recorder]:
    yield from _serve()


def webhook_config(
    tmp_path: Path, urls: list[str], secret: str = SECRET, broker: str = "", **settings: object
) -> Config:
    """Webhooks to ``urls``, each delivery tried once; on the embedded broker, or ``broker`` with unique names."""
    path = tmp_path / "videoconverter.toml"
    prefix = f"w{uuid.uuid4().hex[:8]}-"
    names = f'topic = "{prefix}notifications"\nevents_queue = "{prefix}events"\nwebhooks_queue = "{prefix}hooks"\n'
    table = {"webhook_max_attempts": 1, "webhook_retry_base_delay_seconds": 0, **settings}
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\nbroker = "{broker}"\n[notifications]\n{names if broker else ""}'
        f"webhook_urls = {json.dumps(urls)}\nwebhook_secret = '{secret}'\n"
        + "".join(f"{name} = {value}\n" for name, value in table.items())
    )
    return load_config(environ={}, path=path)


@pytest.fixture(params=["sqlite", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """The embedded broker (""), or the RabbitMQ server, whose threads settle through one I/O thread."""
    if request.param == "sqlite":
        return ""
    from tests.contract.conftest import RABBITMQ_URL, reachable

    require_service(reachable(RABBITMQ_URL), "no RabbitMQ server")
    return RABBITMQ_URL


@pytest.fixture
def opened() -> Iterator[list[tuple[Broker, Config]]]:
    brokers: list[tuple[Broker, Config]] = []
    yield brokers
    for broker, config in brokers:
        broker.close()
        if config.broker_url.startswith("amqp"):
            from tests.contract.conftest import delete_rabbitmq_topology

            delete_rabbitmq_topology(notifications_topology(config))


def publish_events(config: Config, brokers: list[tuple[Broker, Config]], count: int) -> Broker:
    broker = open_broker(config)
    brokers.append((broker, config))
    broker.declare(notifications_topology(config))
    for n in range(count):
        event = {"schema_version": 1, "id": f"event-{n}", "type": "job.done", "key": f"clip-{n}.mp4"}
        broker.publish(config.notifications.topic, json.dumps(event))
    return broker


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_failed_attempt_and_is_never_followed(
    status: int, endpoint: Recorder, other_endpoint: Recorder, tmp_path: Path, opened: list[tuple[Broker, Config]]
) -> None:
    endpoint.redirect_to = other_endpoint.url("/internal/admin")
    config = webhook_config(tmp_path, [endpoint.url(f"/moved-{status}")])
    broker = publish_events(config, opened, 1)

    WebhookDeliverer(broker, config.notifications).run(exit_when_idle=True)

    assert other_endpoint.requests == []  # neither the POST nor a GET reached the Location
    assert [path for path, *_rest in endpoint.requests] == [f"/moved-{status}"]  # one attempt, not retried
    (letter,) = broker.dead_letters(config.notifications.webhooks_queue)
    assert f"HTTP {status}" in letter.reason and "redirect" in letter.reason
    assert json.loads(letter.body)["id"] == "event-0"


def test_a_slow_endpoint_does_not_hold_up_a_fast_one(
    endpoint: Recorder, broker_url: str, tmp_path: Path, opened: list[tuple[Broker, Config]]
) -> None:
    events = 8
    urls = [endpoint.url("/slow"), endpoint.url("/fast")]
    config = webhook_config(tmp_path, urls, broker=broker_url, webhook_timeout_seconds=SLOW_TIMEOUT_SECONDS)
    broker = publish_events(config, opened, events)
    deliverer = WebhookDeliverer(broker, config.notifications)
    started = time.monotonic()
    thread = threading.Thread(target=deliverer.run, kwargs={"exit_when_idle": True}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(endpoint.arrivals("/fast")) == events, 60, message="every fast delivery")
        wait_until(lambda: not thread.is_alive(), 120, interval_seconds=0.2, message="the deliverer to finish")
    finally:
        deliverer.stop.set()
        thread.join(30)

    fast, slow = endpoint.arrivals("/fast"), endpoint.arrivals("/slow")
    assert len(slow) == events  # each slow delivery tried once (max attempts 1), then kept with its reason
    # One after another, the last fast delivery would wait out every slow one before it: 8 x 2 s. Side by side
    # it waits for none; the bound leaves room for a loaded machine.
    assert max(fast) - started < 2 * SLOW_TIMEOUT_SECONDS
    assert max(fast) < min(slow) + 2 * SLOW_TIMEOUT_SECONDS
    letters = broker.dead_letters(config.notifications.webhooks_queue)
    assert sorted(json.loads(letter.body)["url"] for letter in letters) == [endpoint.url("/slow")] * events
    assert all("timed out" in letter.reason for letter in letters)


@pytest.mark.parametrize("kind", ["plain", "whsec"])
def test_requests_verify_with_the_standardwebhooks_library(
    kind: str, endpoint: Recorder, tmp_path: Path, opened: list[tuple[Broker, Config]]
) -> None:
    secret = SECRET if kind == "plain" else "whsec_" + base64.b64encode(b"thirty-two bytes of key material").decode()
    config = webhook_config(tmp_path, [endpoint.url("/ok")], secret=secret)
    broker = publish_events(config, opened, 2)

    WebhookDeliverer(broker, config.notifications).run(exit_when_idle=True)

    # What the README tells a receiver: a whsec_ secret as it is, a plain one as "whsec_" + base64(secret).
    receiver = Webhook(secret if kind == "whsec" else "whsec_" + base64.b64encode(SECRET.encode()).decode())
    assert len(endpoint.requests) == 2
    for _path, headers, body, _at in endpoint.requests:
        event = receiver.verify(body, headers)
        assert headers["webhook-id"] == event["id"] == headers["x-videoconverter-event-id"]
        assert verify(secret, body, headers[SIGNATURE_HEADER.lower()])  # the deprecated header, for one more release
