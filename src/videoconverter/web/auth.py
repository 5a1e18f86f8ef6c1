"""The bearer token that guards every write and every read of media.

A client sends ``Authorization: Bearer TOKEN``; the dashboard signs in once (``POST /api/session``) and then
carries the token in an HttpOnly, SameSite=Strict cookie, which ``<video>`` and ``<img>`` requests send too.
Without a configured token everything is open, and :func:`check_bind` keeps the server on loopback.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from videoconverter.config import WebSettings
from videoconverter.errors import ConfigError
from videoconverter.web.errors import ApiError

TOKEN_COOKIE = "videoconverter_token"  # noqa: S105 - the cookie's name, not a secret
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="videoconverter"'}


def is_loopback(host: str) -> bool:
    if host == "localhost":
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
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def presented_token(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(TOKEN_COOKIE, "")


def is_authorized(request: Request) -> bool:
    expected: str = request.app.state.config.web.api_token
    return not expected or token_matches(presented_token(request), expected)


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the configured token (when one is configured)."""
    expected: str = request.app.state.config.web.api_token
    if not expected:
        return
    given = presented_token(request)
    if not given:
        raise ApiError(401, "unauthorized", "this needs the API token: send 'Authorization: Bearer TOKEN'", _CHALLENGE)
    if not token_matches(given, expected):
        raise ApiError(401, "unauthorized", "the API token is wrong", _CHALLENGE)
