"""Job events on every broker (SQLite, RabbitMQ's exchange, SNS on moto's server) and webhooks: one event per
state change and sink, signed, retried on their own, kept when undeliverable, never holding up a job."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.conftest import TINY_RENDITIONS_TOML
from tests.integration.test_pipeline import IN, drain
from videoconverter.config import load_config
from videoconverter.notifications.signing import SIGNATURE_HEADER, receiver_secret, verify
from videoconverter.notifications.webhooks import WebhookDeliverer
from videoconverter.pipeline import Services, open_services, provision

pytestmark = pytest.mark.ffmpeg
SECRET = "webhook-secret-for-the-tests"


def collect_events(svc: Services) -> list[dict[str, Any]]:
    """Every event in the events queue (taken out)."""
    events = []
    while got := svc.broker.receive(svc.config.notifications.events_queue, max_messages=10, wait_seconds=1):
        for delivery in got:
            events.append(json.loads(delivery.body))
            svc.broker.ack(delivery)
    return events


def test_every_state_change_is_one_event_on_the_notifications_topic(
    svc: Services, small_clip: Path, tmp_path: Path
) -> None:
    renditions = [r.name for r in svc.config.renditions]
    good = svc.store.put_file(IN, "evented.mp4", small_clip)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    svc.store.put_file(IN, "bad.mp4", notes)
    drain(svc)
    for rendition in svc.config.renditions:  # what `videoconverter dlq redrive` does
        svc.broker.redrive(rendition.queue)
    assert svc.jobs.requeue_failed("bad.mp4") == len(renditions)

    events = collect_events(svc)
    assert len({e["id"] for e in events}) == len(events)
    kinds = Counter((e["type"], e["key"], e.get("rendition")) for e in events)
    expected = Counter({("upload.done", "evented.mp4", None): 1})
    for name in renditions:
        for kind in ("job.queued", "job.running", "job.done"):
            expected[(kind, "evented.mp4", name)] = 1
        for kind in ("job.queued", "job.running", "job.failed", "job.redriven"):
            expected[(kind, "bad.mp4", name)] = 1
    assert kinds == expected
    for event in events:
        if event["type"] == "job.done":
            output = svc.store.head(svc.config.rendition(event["rendition"]).output_bucket, "evented.mp4")
            assert output is not None and event["output_size"] == output.size
            assert event["source_etag"] == good.etag and event["duration_seconds"] > 0
        if event["type"] == "job.failed":
            assert "not a readable video" in event["error"]
    (upload_done,) = [e for e in events if e["type"] == "upload.done"]
    assert set(upload_done["renditions"]) == set(renditions)


class Endpoints(ThreadingHTTPServer):
    """/ok answers 200; /flaky 500 twice, then 200; /down always 503. Keeps every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def answered(self, path: str, status: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for p, _h, b, s in self.requests if p == path and status in (None, s)]


class _Handler(BaseHTTPRequestHandler):
    server: Endpoints

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            flaky_failures = sum(1 for p, *_rest in self.server.requests if p == "/flaky")
            status = {"/ok": 200, "/flaky": 500 if flaky_failures < 2 else 200, "/down": 503}[self.path]
            self.server.requests.append((self.path, dict(self.headers), body, status))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    server = Endpoints()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_webhooks_are_signed_retried_on_their_own_and_kept_when_undeliverable(
    endpoints: Endpoints, tmp_path: Path, small_clip: Path
) -> None:
    urls = [endpoints.url(p) for p in ("/ok", "/flaky", "/down")]
    path = tmp_path / "videoconverter.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f"[notifications]\nwebhook_urls = {json.dumps(urls)}\nwebhook_secret = '{SECRET}'\n"
        "webhook_max_attempts = 3\nwebhook_retry_base_delay_seconds = 0\n" + TINY_RENDITIONS_TOML
    )
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        svc.store.put_file(IN, "hooked.mp4", small_clip)
        drain(svc)  # the jobs finish without waiting for any endpoint
        assert endpoints.requests == []
        assert {r.state.value for r in svc.jobs.find("hooked.mp4")} == {"done"}
        WebhookDeliverer(svc.broker, svc.config.notifications).run(exit_when_idle=True)
        events = collect_events(svc)
    finally:
        svc.close()

    ids = sorted(e["id"] for e in events)
    assert len(ids) == 7  # queued, running, done for two renditions, and upload.done
    assert sorted(e["id"] for e in endpoints.answered("/ok")) == ids  # each exactly once
    assert sorted(e["id"] for e in endpoints.answered("/flaky", 200)) == ids  # retried until it took each once
    assert len(endpoints.answered("/flaky", 500)) == 2
    assert Counter(e["id"] for e in endpoints.answered("/down")) == Counter({i: 3 for i in ids})
    for _path, headers, body, _status in endpoints.requests:
        assert verify(SECRET, body, headers[SIGNATURE_HEADER])
        assert Webhook(receiver_secret(SECRET)).verify(body, headers)["id"] == json.loads(body)["id"]
        assert headers["X-Videoconverter-Event-Id"] == json.loads(body)["id"]

    listed = subprocess.run(
        [sys.executable, "-m", "videoconverter", "events", "--undelivered", "--json"],
        env={"VIDEOCONVERTER_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    undelivered = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(u["event"]["id"] for u in undelivered) == ids
    assert all("HTTP 503" in u["reason"] and "/down" in u["reason"] for u in undelivered)
