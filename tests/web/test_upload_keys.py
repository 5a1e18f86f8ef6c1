"""The upload route builds keys as `cp` does (storage.keys.upload_key) and needs no provisioning on the
embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.conftest import TOKEN

VIDEO_HEAD = b"\x00\x00\x00\x18ftypmp42" + b"x" * 100
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def unprovisioned(web_config: Any) -> Iterator[Any]:
    """The app on backends nothing has provisioned yet (`up &` has not got there)."""
    from fastapi.testclient import TestClient

    from videoconverter.pipeline import open_services
    from videoconverter.web.app import create_app

    svc = open_services(web_config)
    with TestClient(create_app(web_config, svc)) as test_client:
        test_client.svc = svc
        yield test_client
    svc.close()


def test_an_upload_creates_the_input_bucket_on_the_embedded_store(unprovisioned: Any) -> None:
    assert not unprovisioned.svc.store.bucket_exists("videoconverter-input")
    reply = unprovisioned.put("/api/uploads/first.mp4", content=VIDEO_HEAD, headers=AUTH)
    assert reply.status_code == 201, reply.text
    assert sorted(j["rendition"] for j in reply.json()["jobs"]) == ["small", "smaller"]


def test_an_nfd_key_is_stored_under_its_nfc_form(client: Any) -> None:
    reply = client.put(f"/api/uploads/{quote('cafe' + chr(0x301) + '.mp4')}", content=VIDEO_HEAD, headers=AUTH)
    assert reply.status_code == 201, reply.text
    assert reply.json()["key"] == "caf\u00e9.mp4" and len(reply.json()["jobs"]) == 2
    assert [o.key for o in client.svc.store.list("videoconverter-input")] == ["caf\u00e9.mp4"]


@pytest.mark.parametrize(
    ("key", "reason"),
    [("x\u202e4pm.mp4", "U+202E (RIGHT-TO-LEFT OVERRIDE)"), ("k" * 252 + ".mp4", "path segment of 256 bytes")],
)
def test_a_look_alike_or_too_long_key_is_refused_before_the_body(client: Any, key: str, reason: str) -> None:
    reply = client.put(f"/api/uploads/{quote(key)}", content=VIDEO_HEAD, headers=AUTH)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_key"
    assert reason in reply.json()["error"]["message"]
    assert list(client.svc.store.list("videoconverter-input")) == []
