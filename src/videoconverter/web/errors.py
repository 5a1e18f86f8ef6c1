"""API errors: always a JSON body ``{"error": {"code", "message"}}`` with the right status, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from videoconverter.errors import (
    BrokerUnavailableError,
    BucketNotFoundError,
    ConfigError,
    InvalidKeyError,
    InvalidQueryError,
    ObjectNotFoundError,
    QueueNotFoundError,
    TransientError,
    VideoConverterError,
)
from videoconverter.logs import redact

log = logging.getLogger(__name__)

#: Each domain error's HTTP status and stable code.
_STATUS: list[tuple[type[VideoConverterError], int, str]] = [
    (InvalidKeyError, 400, "invalid_key"),
    (InvalidQueryError, 400, "invalid_query"),  # a malformed cursor, a limit out of range, an unknown state
    (ObjectNotFoundError, 404, "not_found"),
    (ConfigError, 400, "bad_request"),  # e.g. an unknown rendition
    (BucketNotFoundError, 503, "not_provisioned"),
    (QueueNotFoundError, 503, "not_provisioned"),
    (BrokerUnavailableError, 503, "unavailable"),
    (TransientError, 503, "unavailable"),
]


class ApiError(Exception):
    """An error the API reports as is."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": redact(message)}}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(VideoConverterError)
    async def domain_error(_request: Request, exc: VideoConverterError) -> JSONResponse:
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                return error_response(status, code, exc.message)
        log.error("request failed: %s", redact(exc.message))
        return error_response(500, "error", exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in a request")
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
