"""Fixtures of the web tier: the app on the tiny pipeline, with an API token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

TOKEN = "test-token-0123456789"


@pytest.fixture
def web_config(tiny_config: Any) -> Any:
    return replace(tiny_config, web=replace(tiny_config.web, api_token=TOKEN, max_upload_bytes=5_000_000))


@pytest.fixture
def client(web_config: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from videoconverter.pipeline import open_services, provision
    from videoconverter.web.app import create_app

    svc = open_services(web_config)
    provision(svc)
    with TestClient(create_app(web_config, svc)) as test_client:
        test_client.svc = svc
        yield test_client
    svc.close()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
