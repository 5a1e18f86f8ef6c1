"""Slow and silent clients against a real server (uvicorn on loopback, raw sockets): they time out, uploads
beyond the cap get a 429, and the API keeps answering meanwhile."""

from __future__ import annotations

import json
import select
import socket
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from tests.web.conftest import TOKEN

TIMEOUT_SECONDS = 2.0
CAP = 2
SIGNATURE = b"\x00\x00\x00\x18ftypmp42"


@pytest.fixture
def server(tiny_config: Any) -> Iterator[Any]:
    """`videoconverter web` in this process: a cap of two uploads, a 2 s read timeout, an API token."""
    from videoconverter.web.server import WebServer

    web = replace(tiny_config.web, api_token=TOKEN, max_concurrent_uploads=CAP, read_timeout_seconds=TIMEOUT_SECONDS)
    server = WebServer(replace(tiny_config, web=web), "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_SECONDS * 8)
    return sock


def upload_head(key: str, length: int) -> bytes:
    return (
        f"PUT /api/uploads/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response; the connection must then be closed by the server."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(server: Any, path: str) -> int:
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS / 2) as reply:
        return int(reply.status)


def in_use(server: Any) -> int:
    return int(server.app.state.upload_slots.in_use)


def test_stalled_uploads_time_out_and_uploads_past_the_cap_get_429(server: Any) -> None:
    stalled = []
    started = time.monotonic()
    for number in range(CAP + 2):  # a handful: two hold the slots, two are turned away
        sock = connect(server)
        sock.sendall(upload_head(f"stalled-{number}.mp4", 1_000_000) + SIGNATURE + b"\x00" * 20)
        stalled.append(sock)
    with ThreadPoolExecutor(len(stalled)) as pool:
        replies = list(pool.map(timed_reply, stalled))
    busy = [(at - started, r) for at, r in replies if r[0] == 429]
    timed_out = [(at - started, r) for at, r in replies if r[0] == 408]
    assert (len(busy), len(timed_out)) == (2, CAP), [r[0] for _at, r in replies]
    for after, (_status, headers, body) in busy:
        assert after < TIMEOUT_SECONDS / 2 and headers["retry-after"].isdigit()
        assert json.loads(body)["error"]["code"] == "busy"
    for after, (_status, headers, body) in timed_out:
        assert TIMEOUT_SECONDS * 0.9 < after < TIMEOUT_SECONDS * 6
        assert json.loads(body)["error"]["code"] == "timeout" and headers["content-type"] == "application/json"
    assert in_use(server) == 0
    assert list(server_store(server).list("videoconverter-input")) == []  # nothing half-stored
    sock = connect(server)
    sock.sendall(upload_head("after.mp4", 32) + SIGNATURE + b"\x00" * 20)
    status, _headers, body = read_reply_keep_alive(sock)
    assert status == 201, body


def timed_reply(sock: socket.socket) -> tuple[float, tuple[int, dict[str, str], bytes]]:
    reply = read_reply(sock)
    return time.monotonic(), reply


def server_store(server: Any) -> Any:
    return server.app.state.svc.store


def test_the_api_answers_while_the_uploads_are_stalled(server: Any) -> None:
    stalled = [connect(server) for _ in range(CAP)]
    for number, sock in enumerate(stalled):
        sock.sendall(upload_head(f"stalled-{number}.mp4", 1_000_000) + SIGNATURE)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while in_use(server) < CAP and time.monotonic() < deadline:
        time.sleep(0.02)
    assert in_use(server) == CAP
    for path in ("/healthz", "/api/jobs", "/api/queues", "/", "/metrics"):
        assert get(server, path) == 200, path
    for sock in stalled:
        sock.close()


def test_any_stalled_body_times_out_not_only_an_upload(server: Any) -> None:
    sock = connect(server)
    started = time.monotonic()
    sock.sendall(
        b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"token": "'
    )
    status, _headers, body = read_reply(sock)
    assert status == 408 and json.loads(body)["error"]["code"] == "timeout"
    assert TIMEOUT_SECONDS * 0.9 < time.monotonic() - started < TIMEOUT_SECONDS * 6


def test_headers_that_never_end_time_out(server: Any) -> None:
    silent = connect(server)
    partial = connect(server)
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    trickle = connect(server)
    started = time.monotonic()
    # A byte every quarter of the timeout: each arrives in time, the headers as a whole never do.
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
        trickle.sendall(bytes([byte]))
        if select.select([trickle], [], [], TIMEOUT_SECONDS / 4)[0]:
            break
    assert TIMEOUT_SECONDS * 0.9 < time.monotonic() - started < TIMEOUT_SECONDS * 5
    for sock in (trickle, partial):
        status, _headers, body = read_reply(sock)
        assert status == 408 and json.loads(body)["error"]["code"] == "timeout"
    assert silent.recv(1) == b""  # closed without a word: it never asked anything
    assert time.monotonic() - started < TIMEOUT_SECONDS * 7


def test_protocol_errors_are_json_too(server: Any) -> None:
    for request in (
        b"PUT /api/uploads/a.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"GET /api/jobs/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"NONSENSE\r\n\r\n",
    ):
        sock = connect(server)
        sock.sendall(request)
        status, headers, body = read_reply(sock)
        assert status == 400 and headers["content-type"] == "application/json", request[:40]
        assert json.loads(body)["error"]["code"] == "bad_request"


def read_reply_keep_alive(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response on a connection the server keeps open: read up to its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body
