"""What a web page on another site can do through the user's browser (nothing), what a token protects (all but
health and the page), and the headers every response carries."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.routing import Mount

from tests.web.conftest import TOKEN

SIGNATURE = b"\x00\x00\x00\x18ftypmp42"
WRITE = {"X-Requested-With": "test"}
METRICS_TOKEN = "metrics-token-0123456789"
EXPECTED_OPEN = {"/", "/healthz", "/api/session", "/openapi.json", "/api/docs"}


@pytest.fixture
def open_client(tiny_config: Any) -> Iterator[Any]:
    """The app without a token, as `videoconverter web` serves it on 127.0.0.1:8080."""
    from fastapi.testclient import TestClient

    from videoconverter.pipeline import open_services, provision
    from videoconverter.web.app import create_app

    svc = open_services(tiny_config)
    provision(svc)
    with TestClient(create_app(tiny_config, svc), base_url="http://127.0.0.1:8080") as test_client:
        test_client.svc = svc
        yield test_client
    svc.close()


def stored(client: Any) -> list[Any]:
    return list(client.svc.store.list("videoconverter-input"))


@pytest.mark.parametrize("host", ["rebind.attacker.example", "rebind.attacker.example:8080", "192.168.1.5", ""])
def test_without_a_token_a_rebound_host_name_is_refused(open_client: Any, host: str) -> None:
    written = open_client.put("/api/uploads/clip.mp4", content=SIGNATURE * 10, headers={**WRITE, "Host": host})
    assert written.status_code == 421 and written.json()["error"]["code"] == "wrong_host"
    assert open_client.get("/api/jobs", headers={"Host": host}).status_code == 421
    assert stored(open_client) == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST", "app.localhost", "[::1]:8080", "127.0.0.2"]
)
def test_without_a_token_loopback_names_are_served(open_client: Any, host: str) -> None:
    assert open_client.get("/api/jobs", headers={"Host": host}).status_code == 200


def test_with_a_token_any_host_name_is_served(client: Any, auth: dict) -> None:
    assert client.get("/api/jobs", headers={**auth, "Host": "videos.example.com"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, "cross_origin"),
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, "cross_origin"),
        ({"Origin": "http://evil.example", **WRITE}, "cross_origin"),
        ({"Origin": "http://127.0.0.1:9999", **WRITE}, "cross_origin"),  # another port is another origin
        ({"Origin": "null", **WRITE}, "cross_origin"),  # a sandboxed frame, a file: page
        ({"Content-Type": "text/plain"}, "cross_site_request"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "cross_site_request"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "cross_site_request"),
        ({}, "cross_site_request"),
    ],
)
def test_without_a_token_a_cross_site_write_is_refused_before_it_runs(
    open_client: Any, monkeypatch: pytest.MonkeyPatch, headers: dict, code: str
) -> None:
    from videoconverter.web import routes

    ran: list[Any] = []
    monkeypatch.setattr(routes.dead_letter_ops, "redrive", lambda *args: ran.append(args) or [])
    refused = open_client.post("/api/dead-letters/redrive", content=b"x", headers=headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == code, refused.text
    written = open_client.put("/api/uploads/clip.mp4", content=SIGNATURE * 10, headers=headers)
    assert written.status_code == 403 and written.json()["error"]["code"] == code
    signed_out = open_client.delete("/api/session", headers=headers)
    assert signed_out.status_code == 403
    assert ran == [] and stored(open_client) == []


@pytest.mark.parametrize(
    "headers",
    [
        WRITE,
        {"Content-Type": "application/json"},
        {"Origin": "http://127.0.0.1:8080", **WRITE},
        {"Origin": "http://127.0.0.1:8080", "Content-Type": "application/json; charset=utf-8"},
        {"Authorization": "Bearer anything"},  # a header no cross-site request can carry without a preflight
    ],
)
def test_without_a_token_a_same_origin_write_goes_through(open_client: Any, headers: dict) -> None:
    assert open_client.post("/api/dead-letters/redrive", headers=headers).status_code == 200
    written = open_client.put("/api/uploads/clip.mp4", content=SIGNATURE * 10, headers=headers)
    assert written.status_code == 201, written.text


def test_with_a_token_a_cross_origin_write_is_refused_even_with_the_cookie(client: Any, auth: dict) -> None:
    assert client.post("/api/session", json={"token": TOKEN}).status_code == 204
    refused = client.post("/api/dead-letters/redrive", headers={"Origin": "http://localhost:3000", **WRITE})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "cross_origin"
    assert client.post("/api/dead-letters/redrive", headers={"Content-Type": "text/plain"}).status_code == 403
    assert client.post("/api/dead-letters/redrive", headers=WRITE).status_code == 200


def routes_of(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI keeps an included router whole
        yield from routes_of(included.routes) if included is not None else [route]


def concrete_paths(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route of ``app``, path parameters filled in."""
    samples = {"key": "clip.mp4", "rendition": "small"}
    for route in routes_of(app.routes):
        if isinstance(route, Mount):
            yield "GET", f"{route.path}/app.js"
            continue
        path = route.path
        for name, value in samples.items():
            path = path.replace(f"{{{name}:path}}", value).replace(f"{{{name}}}", value)
        for method in sorted(route.methods or ()):
            yield method, path


def test_with_a_token_everything_but_health_the_page_and_the_docs_needs_it(client: Any, auth: dict) -> None:
    from videoconverter.web.auth import is_open

    seen_open = set()
    for method, path in concrete_paths(client.app):
        reply = client.request(method, path, headers=WRITE)
        if is_open(path):
            seen_open.add(path)
            assert reply.status_code != 401, (method, path)
            continue
        assert reply.status_code == 401, (method, path, reply.status_code)
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert method == "HEAD" or reply.json()["error"]["code"] == "unauthorized"
        assert TOKEN not in reply.text
        wrong = client.request(method, path, headers={"Authorization": "Bearer wrong-token-000000", **WRITE})
        assert wrong.status_code == 401, (method, path)
    assert seen_open == EXPECTED_OPEN | {"/static/app.js"}
    assert client.get("/api/no-such-route").status_code == 401  # no hint of what exists
    assert client.get("/api/jobs", headers=auth).status_code == 200


def test_the_metrics_token_reads_metrics_and_nothing_else(web_config: Any) -> None:
    from fastapi.testclient import TestClient

    from videoconverter.pipeline import open_services, provision
    from videoconverter.web.app import create_app

    config = replace(web_config, web=replace(web_config.web, metrics_token=METRICS_TOKEN))
    svc = open_services(config)
    provision(svc)
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    try:
        with TestClient(create_app(config, svc)) as client:
            assert client.get("/metrics").status_code == 401
            scraped = client.get("/metrics", headers=scraper)
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'videoconverter_queue_messages{rendition="small",state="visible"} 0.0' in scraped.text
            openmetrics = {**scraper, "Accept": "application/openmetrics-text; version=1.0.0"}
            assert client.get("/metrics", headers=openmetrics).text.rstrip().endswith("# EOF")
            assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
            for path in ("/api/jobs", "/api/dead-letters", "/api/settings", "/api/queues"):
                assert client.get(path, headers=scraper).status_code == 401, path
            upload = client.put("/api/uploads/a.mp4", content=SIGNATURE * 10, headers=scraper)
            assert upload.status_code == 401
            assert client.post("/api/session", json={"token": METRICS_TOKEN}).status_code == 401
    finally:
        svc.close()


def test_the_schema_declares_the_bearer_scheme_and_what_is_open(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearer"]["description"],
    }
    assert {"bearer": []} in schema["security"]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert schema["paths"]["/api/session"]["post"]["security"] == []
    assert "security" not in schema["paths"]["/api/jobs"]["get"]  # the global rule: the token


def test_the_api_docs_load_swagger_ui_from_the_package(client: Any) -> None:
    from videoconverter.web.docs import SWAGGER_UI_VERSION

    page = client.get("/api/docs")
    assert page.status_code == 200 and "https://" not in page.text and "cdn" not in page.text.lower()
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self';" in page.headers["content-security-policy"]
    for asset, kind in [
        ("/static/swagger-ui/swagger-ui-bundle.js", "javascript"),
        ("/static/swagger-ui/swagger-ui.css", "text/css"),
        ("/static/docs.js", "javascript"),
    ]:
        assert f'"{asset}"' in page.text
        reply = client.get(asset)
        assert reply.status_code == 200 and kind in reply.headers["content-type"], asset
    notes = client.get("/static/swagger-ui/README.md").text
    assert f"Swagger UI {SWAGGER_UI_VERSION}" in notes and "Apache-2.0" in notes
    assert client.get("/static/swagger-ui/LICENSE").status_code == 200


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/jobs", "/healthz", "/api/nothing", "/openapi.json"])
def test_every_response_forbids_framing_and_sniffing(client: Any, auth: dict, path: str) -> None:
    from videoconverter.web.guard import CONTENT_SECURITY_POLICY

    reply = client.get(path, headers=auth)
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY


def test_the_page_loads_nothing_inline_that_its_policy_would_block(client: Any) -> None:
    page = client.get("/").text
    assert "<script>" not in page and "style=" not in page and "onclick" not in page
    script = client.get("/static/app.js").text
    assert 'setAttribute("style"' not in script and "innerHTML" not in script and "eval(" not in script


def test_a_lone_surrogate_in_the_token_is_a_plain_401(client: Any) -> None:
    for body in (b'{"token": "\\ud800"}', b'{"token": "abc\\udfff\\ud800def"}'):
        reply = client.post("/api/session", content=body, headers={"Content-Type": "application/json"})
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized", reply.text


@pytest.mark.parametrize(
    ("range_header", "status", "content"),
    [
        ("bytes=" + "9" * 5000 + "-", 416, None),  # a start beyond every end
        ("bytes=0-" + "9" * 5000, 206, b"0123456789"),  # an end beyond the object: up to its end
        ("bytes=-" + "9" * 5000, 206, b"0123456789"),  # more than the whole object's last bytes
        ("bytes=" + "0" * 5000 + "3-4", 206, b"34"),  # leading zeros are still the number
        ("bytes=1-" + "0" * 5000, 416, None),  # an end before the start
    ],
)
def test_range_positions_of_thousands_of_digits_are_answered(
    client: Any, auth: dict, range_header: str, status: int, content: bytes | None
) -> None:
    bucket = client.svc.config.rendition("small").output_bucket
    client.svc.store.put_stream(bucket, "digits.mp4", io.BytesIO(b"0123456789"), size_hint=10)
    reply = client.get("/api/outputs/small/digits.mp4", headers={**auth, "Range": range_header})
    assert reply.status_code == status, reply.text
    if content is None:
        assert reply.json()["error"]["code"] == "range_not_satisfiable"
        assert reply.headers["content-range"] == "bytes */10"
    else:
        assert reply.content == content
