"""JSON-lines logging: one object a line, job fields, and no secrets."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from videoconverter.config import load_config
from videoconverter.logs import JsonLinesFormatter, Redactor, redact


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("amqp://user:hunter2@rabbit:5672/vhost", "hunter2", "amqp://user:***@rabbit:5672/vhost"),
        ("connecting to amqps://guest:s3cr%40t@mq.example.com", "s3cr%40t", "amqps://guest:***@mq.example.com"),
        ("redis://:onlypass@cache:6379/0", "onlypass", "redis://:***@cache:6379/0"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "aws_secret_access_key=***"),
        ("AWS_SECRET_ACCESS_KEY = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY = ***"),
        ("aws_secret_access_key=abc123, region=eu", "abc123", "aws_secret_access_key=***, region=eu"),
        ("password=letmein&user=bob", "letmein", "password=***&user=bob"),
        ("token=tok_42", "tok_42", "token=***"),
    ],
)
def test_redact(text: str, secret: str, kept: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert kept in redacted


def test_redact_keeps_harmless_text() -> None:
    text = "converted s3://videoconverter-input/red flower.mp4 in 3.2 s (file:///tmp/x, sqlite://vc-data/j.db)"
    assert redact(text) == text


def test_redact_several_urls_in_one_line() -> None:
    redacted = redact("from amqp://a:one@h1 to amqp://b:two@h2")
    assert redacted == "from amqp://a:***@h1 to amqp://b:***@h2"


# --- by place, not by the word before: prose stays as written ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "this needs the API token: 'Authorization: Bearer TOKEN'",
        "notifications.webhook_secret: webhooks are signed; set a secret of at least 16 characters",
        "web.api_token (or VIDEOCONVERTER_API_TOKEN): use at least 16 characters, no spaces",
        "the password: see the README; secret: none; token expired",
        "s3://videoconverter-input/what?.mp4 and s3://in/a&b=c.mp4 are keys",
        "file:///tmp/odd?name.db",
        "see https://example.com/docs/config.html.",
        "s3://?endpoint_url=http://127.0.0.1:5000&region=eu-west-1",
    ],
)
def test_prose_and_harmless_urls_are_kept_as_written(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "webhook https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX failed (HTTP 500); retrying",
            "webhook https://hooks.slack.com/services/*** failed (HTTP 500); retrying",
        ),
        (
            "https://discord.com/api/webhooks/123456/tokentokentoken: HTTP 404 (gave up after 10 attempts)",
            "https://discord.com/api/webhooks/***: HTTP 404 (gave up after 10 attempts)",
        ),
        ("https://ptb.discordapp.com/api/webhooks/1/abc", "https://ptb.discordapp.com/api/webhooks/***"),
        (
            "https://acme.webhook.office.com/webhookb2/abc@def/IncomingWebhook/x",
            "https://acme.webhook.office.com/webhookb2/***",
        ),
        ("https://api.telegram.org/bot123:ABC/sendMessage", "https://api.telegram.org/***"),
        (
            "post to https://example.com/hook?api_key=k3y&sig=s1g.",
            "post to https://example.com/hook?api_key=***&sig=***.",
        ),
        ("https://example.com/h?SECRETVALUE", "https://example.com/h?***"),
        ("(https://example.com/h?token=abc)", "(https://example.com/h?token=***)"),
        ("amqp://u:pa/ss@host/vhost", "amqp://u:***@host/vhost"),
        ("http://[::1]:8080/x?code=42", "http://[::1]:8080/x?code=***"),
    ],
)
def test_secrets_in_urls_are_found_by_their_place(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_configured_secrets_are_masked_by_value() -> None:
    redactor = Redactor({"tok-0123456789abcdef", "whsec-0123456789abcdef", "short"})
    text = "sent 'Authorization: Bearer tok-0123456789abcdef' signed with whsec-0123456789abcdef, short and sweet"
    assert redactor.redact(text) == "sent 'Authorization: Bearer ***' signed with ***, short and sweet"
    assert redactor.redact("https://h/x?v=tok-0123456789abcdef") == "https://h/x?v=***"
    assert Redactor({"p@ss/word-123"}).redact("p%40ss%2Fword-123") == "***"  # as a URL carries it


def test_the_config_loader_collects_the_secrets(tmp_path: Path) -> None:
    path = tmp_path / "videoconverter.toml"
    path.write_text('[web]\napi_token = "tok-0123456789abcdef"\n', encoding="utf-8")
    env = {
        "VIDEOCONVERTER_CONFIG": str(path),
        "VIDEOCONVERTER_BROKER": "amqp://worker:broker-password-1@mq/",
        "VIDEOCONVERTER_WEBHOOK_URLS": "https://hooks.example.com/in/abcdef123456",
        "VIDEOCONVERTER_WEBHOOK_SECRET": "whsec-0123456789abcdef",
    }
    config = load_config(environ=env)
    assert {"tok-0123456789abcdef", "broker-password-1", "whsec-0123456789abcdef", "/in/abcdef123456"} <= set(
        config.secrets
    )
    assert "tok-0123456789abcdef" not in repr(config)
    redactor = Redactor(config.secrets)
    line = "posting to https://hooks.example.com/in/abcdef123456 with tok-0123456789abcdef failed: broker-password-1"
    assert redactor.redact(line) == "posting to https://hooks.example.com*** with *** failed: ***"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger("videoconverter.test_logs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.handlers[:] = []
        logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_one_json_object_per_line(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("first")
    logger.warning('second\nwith a newline and "quotes"')
    records = lines(stream)
    assert len(records) == 2
    assert records[0]["message"] == "first"
    assert records[0]["level"] == "INFO"
    assert records[0]["logger"] == "videoconverter.test_logs"
    assert str(records[0]["time"]).endswith("Z")
    assert records[1]["message"] == 'second\nwith a newline and "quotes"'
    assert records[1]["level"] == "WARNING"


def test_job_fields_from_extra(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("converting", extra={"key": "red flower+1.mp4", "rendition": "720p", "attempt": 2})
    logger.info("plain")
    with_fields, plain = lines(stream)
    assert with_fields["key"] == "red flower+1.mp4"
    assert with_fields["rendition"] == "720p"
    assert with_fields["attempt"] == 2
    assert "key" not in plain
    assert "rendition" not in plain


def test_unicode_is_written_as_is(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("done", extra={"key": "vidéo.mp4"})
    assert "vidéo.mp4" in stream.getvalue()
    assert lines(stream)[0]["key"] == "vidéo.mp4"


def test_message_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.error("broker amqp://worker:topsecret@mq failed; aws_secret_access_key=%s", "AKIAsecretvalue")
    output = stream.getvalue()
    assert "topsecret" not in output
    assert "AKIAsecretvalue" not in output
    assert lines(stream)[0]["message"] == "broker amqp://worker:***@mq failed; aws_secret_access_key=***"


def test_exception_is_included_and_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    try:
        raise RuntimeError("cannot connect to amqp://u:pw123@host")
    except RuntimeError:
        logger.exception("boom", extra={"key": "k.mp4"})
    (record,) = lines(stream)
    assert "RuntimeError" in str(record["exception"])
    assert "amqp://u:***@host" in str(record["exception"])
    assert "pw123" not in stream.getvalue()
    assert record["key"] == "k.mp4"
    assert sys.exc_info() == (None, None, None)


def test_the_formatter_masks_configured_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter(Redactor({"tok-0123456789abcdef"})))
    logger = logging.getLogger("videoconverter.test_logs.secrets")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        logger.warning("token tok-0123456789abcdef refused")
    finally:
        logger.handlers[:] = []
        logger.propagate = True
    assert lines(stream)[0]["message"] == "token *** refused"
