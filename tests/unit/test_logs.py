"""JSON-lines logging: one object a line, job fields, and no secrets."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from videoconverter.logs import JsonLinesFormatter, redact


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("amqp://user:hunter2@rabbit:5672/vhost", "hunter2", "amqp://user:***@rabbit:5672/vhost"),
        ("connecting to amqps://guest:s3cr%40t@mq.example.com", "s3cr%40t", "amqps://guest:***@mq.example.com"),
        ("redis://:onlypass@cache:6379/0", "onlypass", "redis://:***@cache:6379/0"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "aws_secret_access_key=***"),
        ("AWS_SECRET_ACCESS_KEY = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY = ***"),
        ("aws_secret_access_key: abc123, region=eu", "abc123", "aws_secret_access_key: ***, region=eu"),
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
