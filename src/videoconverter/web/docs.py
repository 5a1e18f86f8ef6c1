"""The API's description: the OpenAPI schema with its bearer scheme, and Swagger UI from this package's files."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse

from videoconverter.web.auth import TOKEN_COOKIE, is_open

STATIC_DIR = resources.files("videoconverter.web") / "static"
SWAGGER_UI_VERSION = "5.35.0"  # static/swagger-ui, from npm's swagger-ui-dist
#: Swagger UI sets inline styles, so its page allows them; it still runs only this package's scripts.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The API token (VIDEOCONVERTER_API_TOKEN). /metrics takes the metrics token too.",
    },
    "cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": TOKEN_COOKIE,
        "description": "The API token as the dashboard keeps it after POST /api/session.",
    },
}


def install_docs(app: FastAPI, token_required: bool) -> None:
    """Serve ``/api/docs`` and make ``/openapi.json`` say which operations need the token (all but the open
    paths, when the server has one)."""

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(
            str(STATIC_DIR / "docs.html"),
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": DOCS_POLICY},
        )

    app.openapi = _secured_schema(app, token_required)  # type: ignore[method-assign]


def _secured_schema(app: FastAPI, token_required: bool) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            if token_required:
                schema["security"] = [{"bearer": []}, {"cookie": []}]
                for path, operations in schema.get("paths", {}).items():
                    if is_open(path):
                        for operation in operations.values():
                            operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
