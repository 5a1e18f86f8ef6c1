"""The web dashboard's and HTTP API's settings: the ``[web]`` table and its environment variables
(``VIDEOCONVERTER_PORT``, ``VIDEOCONVERTER_API_TOKEN``, ``VIDEOCONVERTER_METRICS_TOKEN``), checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from videoconverter.errors import ConfigError
from videoconverter.validation import PORT, Real, Whole, reject_unknown, typed

UPLOAD_BYTES = Whole(1)
CONCURRENT_UPLOADS = Whole(1, 64)  # each upload holds up to two threads of the uploads' own pool
READ_TIMEOUT_SECONDS = Real(0, 3600, above=True)


@dataclass(frozen=True)
class WebSettings:
    """The web dashboard and HTTP API (``[web]``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    api_token: str = field(default="", repr=False)  # a secret: never logged, never shown
    max_upload_bytes: int = 20 * 1024**3
    check_content: bool = True  # refuse uploads that do not start like an MP4, MOV, MKV or WebM file
    max_concurrent_uploads: int = 8  # one more is answered 429, so stalled uploads cannot pile up
    read_timeout_seconds: float = 30.0  # the most a client may take for its headers, or pause within a body
    metrics_token: str = field(default="", repr=False)  # lets a scraper read /metrics and nothing else


def web_settings(table: dict[str, Any], env: Mapping[str, str]) -> WebSettings:
    reject_unknown("web.", table, set(WebSettings.__dataclass_fields__))
    port = PORT.check(table.get("port", WebSettings.port), "web.port")
    if env.get("VIDEOCONVERTER_PORT"):
        port = PORT.parse(env["VIDEOCONVERTER_PORT"], "VIDEOCONVERTER_PORT")
    token: str = typed(table, "api_token", str, "web.api_token", "")
    upload_bytes = UPLOAD_BYTES.check(
        table.get("max_upload_bytes", WebSettings.max_upload_bytes), "web.max_upload_bytes"
    )
    settings = WebSettings(
        host=typed(table, "host", str, "web.host", WebSettings.host),
        port=port,
        api_token=env.get("VIDEOCONVERTER_API_TOKEN") or token,
        max_upload_bytes=upload_bytes,
        check_content=table.get("check_content", WebSettings.check_content),
        max_concurrent_uploads=CONCURRENT_UPLOADS.check(
            table.get("max_concurrent_uploads", WebSettings.max_concurrent_uploads), "web.max_concurrent_uploads"
        ),
        read_timeout_seconds=READ_TIMEOUT_SECONDS.check(
            table.get("read_timeout_seconds", WebSettings.read_timeout_seconds), "web.read_timeout_seconds"
        ),
        metrics_token=env.get("VIDEOCONVERTER_METRICS_TOKEN")
        or typed(table, "metrics_token", str, "web.metrics_token", ""),
    )
    _check(settings)
    return settings


def _check(settings: WebSettings) -> None:
    if not isinstance(settings.check_content, bool):
        raise ConfigError(f"web.check_content: expected true or false, got {settings.check_content!r}")
    if not settings.host:
        raise ConfigError("web.host: expected an address such as 127.0.0.1")
    for name, token in (("api_token", settings.api_token), ("metrics_token", settings.metrics_token)):
        if token and (len(token) < 16 or any(c.isspace() for c in token)):
            raise ConfigError(f"web.{name} (or VIDEOCONVERTER_{name.upper()}): use at least 16 characters, no spaces")
    if settings.metrics_token and not settings.api_token:
        # Without an API token everything is open: a metrics token would protect nothing.
        raise ConfigError("web.metrics_token (or VIDEOCONVERTER_METRICS_TOKEN) needs an API token as well")
    if settings.metrics_token and settings.metrics_token == settings.api_token:
        raise ConfigError("web.metrics_token: must differ from the API token, which reads everything")
