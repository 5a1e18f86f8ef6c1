"""The ``[notifications]`` table of the configuration, and its environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from videoconverter.consumer import backoff_seconds
from videoconverter.errors import ConfigError
from videoconverter.logs import redact
from videoconverter.notifications.signing import signing_key
from videoconverter.validation import Real, Whole, check_table, check_url, reject_unknown

ENVIRONMENT = {
    "VIDEOCONVERTER_WEBHOOK_URLS": "webhook URLs for job events, comma-separated",
    "VIDEOCONVERTER_WEBHOOK_SECRET": "shared secret that signs webhook requests (Standard Webhooks; whsec_ or plain)",
}
MAX_RETRY_DELAY_SECONDS = 900.0
_KNOWN = {
    "topic",
    "events_queue",
    "webhooks_queue",
    "webhook_urls",
    "webhook_secret",
    "webhook_timeout_seconds",
    "webhook_max_attempts",
    "webhook_retry_base_delay_seconds",
}

_NUMBERS: dict[str, Whole | Real] = {
    "webhook_timeout_seconds": Real(0, 300, above=True),
    "webhook_max_attempts": Whole(1, 1000),
    "webhook_retry_base_delay_seconds": Real(0, 900),
}


@dataclass(frozen=True)
class NotificationSettings:
    topic: str = "videoconverter-notifications"  # every event is published here (SNS topic, fanout exchange, ...)
    events_queue: str = "videoconverter-events"  # subscribed to the topic; `videoconverter events` reads it
    webhooks_queue: str = "videoconverter-webhooks"  # subscribed when there are webhooks; the deliverer reads it
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str = field(default="", repr=False)  # a secret: never in a repr or a log line
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 10  # then the delivery is kept in the webhooks dead-letter queue
    webhook_retry_base_delay_seconds: float = 5.0  # doubles with every attempt, at most MAX_RETRY_DELAY_SECONDS

    def retry_delay_seconds(self, attempt: int) -> float:
        """Back-off before the next delivery to a URL after delivery ``attempt`` to it failed."""
        return backoff_seconds(attempt, self.webhook_retry_base_delay_seconds, MAX_RETRY_DELAY_SECONDS)


def notification_settings(table: Mapping[str, Any], env: Mapping[str, str]) -> NotificationSettings:
    """Parse and validate the ``[notifications]`` table; the environment overrides the webhook settings.

    The table's own values are checked even where the environment overrides them.
    """
    reject_unknown("notifications.", table, _KNOWN)
    defaults = NotificationSettings()
    urls = _webhook_urls(table.get("webhook_urls", []), "notifications.webhook_urls")
    if env.get("VIDEOCONVERTER_WEBHOOK_URLS") is not None:
        text = env["VIDEOCONVERTER_WEBHOOK_URLS"]
        urls = _webhook_urls([u.strip() for u in text.split(",") if u.strip()], "VIDEOCONVERTER_WEBHOOK_URLS")
    secret = _value(table, "webhook_secret", str, "")
    numbers = check_table(dict(table), _NUMBERS, "notifications.")
    settings = NotificationSettings(
        topic=_value(table, "topic", str, defaults.topic),
        events_queue=_value(table, "events_queue", str, defaults.events_queue),
        webhooks_queue=_value(table, "webhooks_queue", str, defaults.webhooks_queue),
        webhook_urls=urls,
        webhook_secret=env.get("VIDEOCONVERTER_WEBHOOK_SECRET") or secret,
        **numbers,
    )
    if settings.webhook_urls and len(settings.webhook_secret) < 16:
        raise ConfigError(
            "notifications.webhook_secret: webhooks are signed; set a secret of at least 16 characters in "
            "VIDEOCONVERTER_WEBHOOK_SECRET (or the TOML)"
        )
    try:
        signing_key(settings.webhook_secret)
    except ValueError as exc:
        raise ConfigError(f"notifications.webhook_secret: {exc}") from exc
    return settings


def _webhook_urls(urls: Any, where: str) -> tuple[str, ...]:
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"{where}: expected a list of URLs")
    for url in urls:
        check_url(url, where)
        if urlsplit(url).scheme not in {"http", "https"}:
            raise ConfigError(f"{where}: {redact(url)!r} is not an http(s) URL")
    return tuple(urls)


def _value(table: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"notifications.{key}: expected {kind.__name__}, got {value!r}")
    return value
