"""Whatever a client sends, every route answers a clear 4xx with a JSON error (or succeeds), never a 500."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.test_security import SIGNATURE, concrete_paths

LONG_DIGITS = "9" * 5000  # past int()'s 4300-digit limit
SEGMENTS = ["%E0%A4%A", "%ff%fe", "%ED%A0%80", "..", "%2e%2e/x.mp4", "a%00b.mp4", "x" * 3000 + ".mp4", "%25", "é.mp4"]
QUERIES = [
    {"limit": LONG_DIGITS},
    {"offset": "-" + LONG_DIGITS},
    {"limit": "1e9"},
    {"state": "\U0001f4a5"},
    {"rendition": "%ff"},
    {"rendition": "x" * 5000},
    {"message_id": "x" * 10_000},
    {"download": "maybe"},
]
HEADERS = [
    {"Range": f"bytes={LONG_DIGITS}-{LONG_DIGITS}"},
    {"Range": f"bytes=-{LONG_DIGITS}"},
    {"Range": "bytes=--1"},
    {"Range": "bytes=" + "0-1," * 2000 + "0-1"},
    {"Content-Type": "application/json; charset=utf-32"},
    {"Cookie": "videoconverter_token=%ff%fe; other=\x7f"},
]
BODIES = [
    b'{"token": "\\ud800"}',
    b'{"token": "\\udfff\\ud800"}',
    b"[" * 100_000,
    b'{"token": 1e999999}',
    b'{"token": ' + LONG_DIGITS.encode() + b"}",
    b"\xff\xfe\x00\x00",
    b'{"token": null}',
    SIGNATURE + b"\x00" * 100,
]


def check(reply: Any, what: object) -> None:
    assert reply.status_code < 500, (what, reply.status_code, reply.text[:300])
    if reply.status_code >= 400 and reply.request.method != "HEAD":
        error = reply.json()["error"]
        assert error["code"] and error["message"], what
        assert "Traceback" not in reply.text


def variants(client: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, request arguments): every route with each hostile path, query, header and body."""
    for method, path in concrete_paths(client.app):
        if path == "/api/events":
            continue  # an endless stream that reads no input
        template = path.replace("clip.mp4", "{key}").replace("/small/", "/{rendition}/")
        for segment in SEGMENTS:
            yield method, template.format(key=segment, rendition=segment), {}
        for query in QUERIES:
            yield method, path, {"params": query}
        for headers in HEADERS:
            yield method, path, {"headers": headers}
        if method in ("POST", "PUT", "DELETE"):
            for body in BODIES:
                yield method, path, {"content": body, "headers": {"Content-Type": "application/json"}}


@pytest.mark.ffmpeg  # the poster route runs FFmpeg on what it finds
def test_hostile_requests_to_every_route_get_a_json_4xx_never_a_500(client: Any, auth: dict) -> None:
    bucket = client.svc.config.rendition("small").output_bucket
    client.svc.store.put_stream(bucket, "clip.mp4", io.BytesIO(SIGNATURE + b"\x00" * 100), size_hint=None)
    count = 0
    for method, path, arguments in variants(client):
        headers = {**auth, "X-Requested-With": "test", **arguments.pop("headers", {})}
        reply = client.request(method, path, headers=headers, **arguments)
        check(reply, (method, path, arguments))
        count += 1
    assert count > 300
