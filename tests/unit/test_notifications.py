"""Notification settings, the event schema and webhook signatures (including the README's receiver sample)."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from videoconverter.config import load_config
from videoconverter.errors import ConfigError
from videoconverter.jobs.base import JobId, JobRecord, JobState
from videoconverter.notifications.schema import EventType, job_event, upload_done_event
from videoconverter.notifications.signing import receiver_secret, sign, signature_headers, signing_key, verify

SECRET = "a-shared-secret-of-some-length"
README = Path(__file__).resolve().parents[2] / "README.md"


def record(**changes: Any) -> JobRecord:
    fields: dict[str, Any] = dict(
        id=JobId("holiday.mp4", "abc123", "720p"),
        state=JobState.DONE,
        attempts=1,
        created_at=100.0,
        updated_at=142.5,
        started_at=101.0,
        finished_at=142.5,
        output_url="s3://videoconverter-output-720p/holiday.mp4",
    )
    fields.update(changes)
    return JobRecord(**fields)


def test_webhooks_come_from_the_environment_and_need_a_secret() -> None:
    env = {
        "VIDEOCONVERTER_WEBHOOK_URLS": "https://a.example/hook, http://b.example:8000/x",
        "VIDEOCONVERTER_WEBHOOK_SECRET": SECRET,
    }
    settings = load_config(environ=env).notifications
    assert settings.webhook_urls == ("https://a.example/hook", "http://b.example:8000/x")
    assert SECRET not in repr(settings)  # a secret never shows in a repr, hence never in a log line
    with pytest.raises(ConfigError, match="secret"):
        load_config(environ={"VIDEOCONVERTER_WEBHOOK_URLS": "https://a.example/hook"})
    with pytest.raises(ConfigError, match="http"):
        load_config(environ={**env, "VIDEOCONVERTER_WEBHOOK_URLS": "file:///etc/passwd"})


def test_an_unknown_notification_setting_is_named(tmp_path: Path) -> None:
    path = tmp_path / "videoconverter.toml"
    path.write_text("[notifications]\nwebhook_url = 'https://typo.example'\n")
    with pytest.raises(ConfigError, match="webhook_url"):
        load_config(environ={}, path=path)


def test_a_job_event_has_the_documented_shape_and_a_stable_id() -> None:
    event = job_event(EventType.DONE, record(), output_size=1234)
    assert set(event) == {
        "schema_version", "id", "type", "time", "key", "rendition", "source_etag", "state", "attempt", "output",
        "output_size", "duration_seconds", "error", "note",
    }  # fmt: skip
    assert (event["type"], event["state"], event["duration_seconds"], event["output_size"]) == (
        "job.done", "done", 41.5, 1234,
    )  # fmt: skip
    assert json.loads(json.dumps(event)) == event
    assert job_event(EventType.DONE, record())["id"] == event["id"]  # every copy of one event: one id
    assert job_event(EventType.DONE, record(updated_at=200.0))["id"] != event["id"]  # another transition
    assert job_event(EventType.RUNNING, record())["id"] != event["id"]


def test_the_upload_done_event_lists_every_rendition() -> None:
    event = upload_done_event("k.mp4", "etag", {"720p": ("s3://o7/k.mp4", 10), "1080p": ("s3://o10/k.mp4", 20)})
    assert event["type"] == "upload.done" and "rendition" not in event
    assert event["renditions"]["1080p"] == {"output": "s3://o10/k.mp4", "output_size": 20}
    assert upload_done_event("k.mp4", "etag", {})["id"] == event["id"]  # two workers may both announce it


def test_a_signature_verifies_only_the_same_body_secret_and_a_recent_time() -> None:
    body = b'{"type":"job.done"}'
    now = int(time.time())
    header = sign(SECRET, body, now)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, body, header)
    assert not verify(SECRET, body + b" ", header)
    assert not verify("another-secret-entirely", body, header)
    assert not verify(SECRET, body, sign(SECRET, body, now - 3600))  # a replay an hour later
    assert not verify(SECRET, body, "v1=deadbeef") and not verify(SECRET, body, "")


def readme_receiver_sample() -> dict[str, Any]:
    text = README.read_text()
    marker = text.index("<!-- webhook receiver sample -->")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert code, "the README's webhook receiver sample is missing"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # our own documentation
    return namespace


def test_the_readme_receiver_sample_accepts_our_signatures_and_rejects_forgeries() -> None:
    check = readme_receiver_sample()["verify_videoconverter_signature"]
    body = json.dumps({"id": "x", "type": "job.done"}).encode()
    header = sign(SECRET, body, int(time.time()))
    assert check(body, header, SECRET) is True
    assert check(body.replace(b"done", b"fail"), header, SECRET) is False
    assert check(body, sign(SECRET, body, int(time.time()) - 3600), SECRET) is False


WHSEC = "whsec_" + base64.b64encode(b"thirty-two bytes of key material").decode()


@pytest.mark.parametrize("secret", [SECRET, WHSEC])
def test_the_standard_webhooks_headers_verify_with_the_stock_library(secret: str) -> None:
    body = b'{"id":"evt-1","type":"job.done"}'
    headers = signature_headers(secret, "evt-1", body, int(time.time()))
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["webhook-signature"])
    assert (headers["webhook-id"], headers["webhook-timestamp"].isdigit()) == ("evt-1", True)
    receiver = Webhook(receiver_secret(secret))
    assert receiver.verify(body, headers) == {"id": "evt-1", "type": "job.done"}
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body.replace(b"done", b"fail"), headers)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body, {**headers, "webhook-id": "evt-2"})  # the id is signed too
    with pytest.raises(WebhookVerificationError):
        Webhook(receiver_secret("another-secret-entirely")).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # a replay an hour later
        receiver.verify(body, signature_headers(secret, "evt-1", body, int(time.time()) - 3600))
    assert verify(secret, body, headers["X-Videoconverter-Signature"])  # the deprecated header, as before


def test_a_whsec_secret_is_base64_and_a_plain_one_its_own_bytes() -> None:
    assert signing_key(WHSEC) == b"thirty-two bytes of key material"
    assert signing_key(WHSEC.rstrip("=")) == b"thirty-two bytes of key material"  # padding may be left out
    assert signing_key(SECRET) == SECRET.encode()
    assert receiver_secret(SECRET) == "whsec_" + base64.b64encode(SECRET.encode()).decode()
    assert receiver_secret(WHSEC) == WHSEC
    env = {"VIDEOCONVERTER_WEBHOOK_URLS": "https://a.example/hook"}
    assert load_config(environ={**env, "VIDEOCONVERTER_WEBHOOK_SECRET": WHSEC}).notifications.webhook_secret == WHSEC
    with pytest.raises(ConfigError, match="base64"):
        load_config(environ={**env, "VIDEOCONVERTER_WEBHOOK_SECRET": "whsec_not*base64*at*all!"})


def test_the_readme_standard_webhooks_sample_accepts_our_requests_and_rejects_forgeries() -> None:
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index("<!-- webhook receiver standard sample -->") :], re.S)
    assert code, "the README's Standard Webhooks receiver sample is missing"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # our own documentation
    verified_event = namespace["verified_event"]
    body = json.dumps({"id": "x", "type": "job.done"}).encode()
    for secret in (SECRET, WHSEC):
        headers = signature_headers(secret, "x", body, int(time.time()))
        assert verified_event(body, headers, secret) == {"id": "x", "type": "job.done"}
        assert verified_event(body.replace(b"done", b"fail"), headers, secret) is None
        assert verified_event(body, headers, "another-secret-entirely") is None


class RecordingBroker:
    def __init__(self) -> None:
        self.settled: list[tuple[str, object]] = []

    def release(self, delivery: object, delay: float) -> None:
        self.settled.append(("release", delay))

    def dead_letter(self, delivery: object, reason: str) -> None:
        self.settled.append(("dead_letter", reason))


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "XXXXsecretXXXX"),
        ("https://discord.com/api/webhooks/123456/tokentokentoken", "tokentokentoken"),
        ("https://hooks.example.com/in?api_key=k3y-k3y-k3y&sig=s1gs1gs1g", "k3y-k3y-k3y"),
    ],
)
@pytest.mark.parametrize("attempt", [1, 10])
def test_webhook_urls_secrets_reach_neither_retry_lines_nor_undelivered_reasons(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, url: str, secret: str, attempt: int
) -> None:
    import json
    import logging

    from videoconverter.brokers.base import Delivery
    from videoconverter.notifications import webhooks
    from videoconverter.notifications.settings import NotificationSettings

    monkeypatch.setattr(webhooks, "post", lambda *_args: "HTTP 500")
    broker = RecordingBroker()
    settings = NotificationSettings(webhook_urls=(url,), webhook_secret=SECRET, webhook_max_attempts=10)
    delivery = Delivery("q", "m1", json.dumps({"url": url, "event": {"id": "e1"}}), "r", attempt, 0.0)
    with caplog.at_level(logging.INFO, logger="videoconverter.notifications.webhooks"):
        deliverer = webhooks.WebhookDeliverer(broker, settings)  # type: ignore[arg-type]
        deliverer.handle(delivery)
        deliverer.close()  # the URL's lane sends and settles it
    ((action, detail),) = broker.settled
    assert action == ("dead_letter" if attempt == 10 else "release")
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert secret not in logged and secret not in str(detail)
    assert "HTTP 500" in logged
