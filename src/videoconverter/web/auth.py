"""Who may use the API: the bearer token, and which paths stay open without it.

With a token configured, every request needs it except :data:`OPEN_PATHS` (health, the dashboard's page and
files, the API's schema and docs, signing in). A client sends ``Authorization: Bearer TOKEN``; the dashboard
signs in once (``POST /api/session``) and then carries the token in an HttpOnly, SameSite=Strict cookie, which
``<video>`` and ``<img>`` requests send too. ``/metrics`` also takes the metrics token, which opens nothing else.
Without a token everything is open, and :func:`check_bind` keeps the server on loopback.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import HTTPConnection

from videoconverter.errors import ConfigError
from videoconverter.web.errors import ApiError
from videoconverter.web_settings import WebSettings

TOKEN_COOKIE = "videoconverter_token"  # noqa: S105 - the cookie's name, not a secret
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="videoconverter"'}
#: Paths anyone may read, token or not: nothing in them depends on the uploads.
OPEN_PATHS = frozenset({"/", "/healthz", "/api/session", "/openapi.json", "/api/docs"})
OPEN_PREFIXES = ("/static/",)
METRICS_PATH = "/metrics"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``localhost`` or an address, IPv6 with or without brackets) is this machine's loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: WebSettings) -> None:
    """Refuse to listen beyond loopback without a token: anyone on the network could upload and download."""
    if not settings.api_token and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the HTTP API on {host} without an API token: set VIDEOCONVERTER_API_TOKEN "
            "(or api_token in [web]), or listen on 127.0.0.1"
        )


def token_matches(given: str, expected: str) -> bool:
    # surrogatepass: a JSON body can hold a lone surrogate, which plain UTF-8 cannot encode.
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def presented_token(connection: HTTPConnection) -> str:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.cookies.get(TOKEN_COOKIE, "")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_authorized(connection: HTTPConnection, settings: WebSettings) -> bool:
    """Whether the request may see ``connection``'s path: always without a token, else with the right one."""
    if not settings.api_token:
        return True
    given = presented_token(connection)
    if given and token_matches(given, settings.api_token):
        return True
    metrics = settings.metrics_token
    return bool(metrics and given and connection.scope["path"] == METRICS_PATH and token_matches(given, metrics))


def refusal(connection: HTTPConnection, settings: WebSettings) -> ApiError | None:
    """The 401 for a request that needs the token and lacks it; None when it may go on."""
    if is_open(connection.scope["path"]) or is_authorized(connection, settings):
        return None
    if not presented_token(connection):
        return ApiError(401, "unauthorized", "this needs the API token: send 'Authorization: Bearer TOKEN'", CHALLENGE)
    return ApiError(401, "unauthorized", "the API token is wrong", CHALLENGE)
