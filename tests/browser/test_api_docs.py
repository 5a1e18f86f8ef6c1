"""The API docs (Swagger UI from the package's own copy) render in real headless Chromium under their
Content-Security-Policy, and a write made from them carries the header the server asks of writes."""

from __future__ import annotations

from typing import Any

from tests.browser.test_dashboard import browser, sign_in, watched, web_only  # noqa: F401 - fixtures, shared


def test_the_api_docs_render_from_the_package_and_can_write(web_only: str, browser: Any) -> None:  # noqa: F811
    page = browser.new_page()
    errors = watched(page)
    sign_in(page, web_only)  # the cookie then carries the token for the docs' requests too
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(web_only + "/api/docs")
    page.wait_for_selector(".swagger-ui .info .title >> text=videoconverter")
    assert page.locator(".swagger-ui .btn.authorize").count() == 1  # the bearer scheme is declared
    page.click('.opblock-summary-path[data-path="/api/dead-letters/redrive"]')
    page.click("button.try-out__btn")
    with page.expect_response(lambda r: r.request.method == "POST" and "/api/dead-letters/redrive" in r.url) as sent:
        page.click("button.execute")
    assert sent.value.status == 200 and sent.value.request.headers.get("x-requested-with") == "swagger-ui"
    assert all(url.startswith(web_only) or url.startswith("data:") for url in requested), requested
    assert errors == []
