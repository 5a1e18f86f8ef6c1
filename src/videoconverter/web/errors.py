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


#: Codes of the HTTP errors that Starlette and FastAPI raise or answer themselves, and of :class:`ReadTimeout`.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    416: "range_not_satisfiable",
    429: "busy",
}


def code_for(status: int) -> str:
    return _HTTP_CODES.get(status, "http_error")


class ReadTimeout(StarletteHTTPException):
    """The client stopped sending its request body. An HTTPException, so that FastAPI's body parsing passes it
    on as it is instead of wrapping it in a 400."""

    def __init__(self, seconds: float) -> None:
        # Connection: close, as the rest of the body will never be read.
        message = f"the request body stalled for more than {seconds:g} s: send it without pauses"
        super().__init__(408, message, {"Connection": "close"})


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # A message may quote what the client sent, lone surrogates included, which UTF-8 cannot encode.
    text = redact(message).encode("utf-8", "replace").decode("utf-8")
    return JSONResponse({"error": {"code": code, "message": text}}, status_code=status, headers=headers)


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
        return error_response(exc.status_code, code_for(exc.status_code), str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in a request")
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
