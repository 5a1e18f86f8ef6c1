"""The checks every request passes before any route sees it, and the headers every response carries.

A browser visiting some other site must not be able to use this server through its user:

- Without a token, only loopback names are accepted in ``Host``: a page whose name an attacker re-points at
  127.0.0.1 (DNS rebinding) is same-origin with this server, and only its ``Host`` gives it away.
- Every write (any method but GET, HEAD and OPTIONS) must carry what no cross-site form or simple request can:
  a JSON content type, an ``X-Requested-With`` header or an ``Authorization`` header. A browser sends those to
  another origin only after a CORS preflight, which this server never approves. A write whose ``Origin`` is
  not this server's is refused as well.
- With a token, everything but :data:`~videoconverter.web.auth.OPEN_PATHS` needs it.
- Responses forbid framing and MIME sniffing, and the page may load only its own scripts and styles.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from videoconverter.web import auth
from videoconverter.web.errors import ApiError, code_for, error_response
from videoconverter.web.limits import timed_receive
from videoconverter.web_settings import WebSettings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_HEADER = "x-requested-with"
#: The dashboard's policy, sent with every response that has none of its own (the API docs have theirs).
#: ``media-src blob: data:``: hls.js and dash.js hand the <video> a blob: URL of their MediaSource, and hls.js
#: gives each caption's <track> an empty ``data:,WEBVTT`` source before it adds the cues itself. No blob: scripts:
#: the player runs hls.js without its worker.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


class RequestGuard:
    """ASGI middleware: refuses what the module's checks refuse, with a JSON error, and adds the headers."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _finishing(send)
        connection = HTTPConnection(scope)
        problem = (
            host_refusal(connection, self.settings)
            or auth.refusal(connection, self.settings)
            or write_refusal(connection)
        )
        if problem is not None:
            response = error_response(problem.status, problem.code, problem.message, problem.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, timed_receive(receive, self.settings.read_timeout_seconds), send)


def _finishing(send: Send) -> Send:
    """``send`` that adds the security headers, and turns an error that is not JSON (Starlette's own, such as
    a file's 416 for a bad ``Range``) into the API's JSON error."""
    replaced = False

    async def sending(message: Message) -> None:
        nonlocal replaced
        if replaced:
            return  # the original body of a replaced error
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS:
                headers.setdefault(name, value)
            status = message["status"]
            if status >= 400 and not headers.get("content-type", "").startswith("application/json"):
                replaced = True
                body = json.dumps({"error": {"code": code_for(status), "message": _phrase(status)}}).encode()
                headers["content-type"] = "application/json"
                headers["content-length"] = str(len(body))
                await send(message)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await send(message)

    return sending


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def host_name(host: str) -> str:
    """The name in a ``Host`` value, without its port: ``[::1]:8080`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


def host_refusal(connection: HTTPConnection, settings: WebSettings) -> ApiError | None:
    if settings.api_token:
        return None  # a rebound page has no token
    host = connection.headers.get("host")
    if host is None:
        return None  # HTTP/1.0 without Host: no browser
    name = host_name(host).lower().rstrip(".")
    # RFC 6761: browsers resolve *.localhost to loopback themselves, so no other site can be behind one.
    if auth.is_loopback(name) or name.endswith(".localhost") or name == settings.host.lower().strip("[]"):
        return None
    return ApiError(
        421,
        "wrong_host",
        f"this server answers to 127.0.0.1, localhost or [::1], not to {host!r}: without an API token it refuses "
        "other names, so that no web page can reach it under a name of its own (set VIDEOCONVERTER_API_TOKEN to "
        "serve other names)",
    )


def write_refusal(connection: HTTPConnection) -> ApiError | None:
    if connection.scope["method"] in SAFE_METHODS:
        return None
    origin = connection.headers.get("origin")
    if origin is not None and _origin_host(origin) != connection.headers.get("host", "").lower():
        return ApiError(403, "cross_origin", f"a write from another origin ({origin}) is refused")
    headers = connection.headers
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    if WRITE_HEADER in headers or "authorization" in headers:
        return None
    return ApiError(
        403,
        "cross_site_request",
        "a write needs 'Content-Type: application/json', an 'X-Requested-With' header (any value) or an "
        "'Authorization' header, which a page of another site cannot send",
    )


def _origin_host(origin: str) -> str | None:
    """``Origin``'s host and port as a ``Host`` header has them; None for ``null`` or nonsense."""
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return None
    return netloc.lower() or None
