"""A multi-hundred-MB upload to a real `videoconverter web` process streams in flat memory (VmHWM measured)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, interrupt, wait_until
from tests.web.conftest import TOKEN

UPLOAD_BYTES = 300 * 1024 * 1024
PEAK_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_a_300_mb_upload_streams_with_bounded_memory(tiny_config_path: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(tiny_config_path), "VIDEOCONVERTER_API_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "videoconverter", "web", "--port", str(port)], env=env, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: healthy(url) or server.poll() is not None, 30, 0.1, "the web server")
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        before = status_kib(server.pid, "VmRSS") * 1024

        def body():
            yield b"\x00\x00\x00\x18ftypmp42"
            block = os.urandom(1024 * 1024)
            sent = 12
            while sent < UPLOAD_BYTES:
                piece = block[: min(len(block), UPLOAD_BYTES - sent)]
                sent += len(piece)
                yield piece

        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        started = time.monotonic()
        connection.request(
            "PUT",
            "/api/uploads/big.mp4",
            body=body(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Length": str(UPLOAD_BYTES)},
        )
        reply = connection.getresponse()
        answer = json.loads(reply.read())
        elapsed = time.monotonic() - started
        assert reply.status == 201, answer
        assert answer["size"] == UPLOAD_BYTES and len(answer["jobs"]) == 2
        peak = status_kib(server.pid, "VmHWM") * 1024
        growth = peak - before
        print(
            f"\n300 MiB upload in {elapsed:.1f} s; server RSS before {before / 2**20:.1f} MiB, "
            f"peak {peak / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB"
        )
        assert growth < PEAK_GROWTH_LIMIT_BYTES
    finally:
        assert interrupt(server, 20) == 0
