"""Settings values: each one's type and range checked once, every error naming its field.

TOML gives strings, ints, floats (``nan`` and ``inf`` included) and booleans (which Python counts as ints); the
environment gives text. A whole number is an int, never a boolean or a float (not even ``2.0``); a real number is
an int or a finite float. Text from the environment is read with ASCII digits only: ``str.isdigit`` accepts
``"²"`` and ``int()`` accepts ``"٣"``, and neither is a number anyone meant to type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

from videoconverter.errors import ConfigError
from videoconverter.logs import redact

_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_REAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
#: Schemes whose URLs name a server (host, port) rather than a local path.
_NETWORK_SCHEMES = {"amqp", "amqps", "postgresql", "postgres", "http", "https"}
#: Schemes whose host may not be left out: pika turns ``amqp://`` into localhost, user guest, password guest.
_HOST_REQUIRED = {"amqp", "amqps", "http", "https"}
_AWS_SCHEMES = {"s3", "aws", "dynamodb"}
N = TypeVar("N", int, float)


class _Range(Generic[N]):
    """What :class:`Whole` and :class:`Real` share: an error naming the field, and reading environment text."""

    _text: ClassVar[re.Pattern[str]]
    _number: ClassVar[Callable[[str], Any]]

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, where: str) -> N:
        """``value`` if it is such a number, else raise :class:`ConfigError` naming ``where``."""
        raise NotImplementedError

    def refuse(self, where: str, shown: str, why: str = "") -> ConfigError:
        return ConfigError(f"{where}: expected {self.describe()}, got {shown}{why}")

    def parse(self, text: str, where: str) -> N:
        """The number in ``text`` (an environment variable's value), written in ASCII digits."""
        if not self._text.fullmatch(text.strip()):
            raise self.refuse(where, repr(text))
        return self.check(type(self)._number(text.strip()), where)


@dataclass(frozen=True)
class Whole(_Range[int]):
    """A whole number from ``minimum`` to ``maximum`` (both included; None: no upper bound)."""

    minimum: int
    maximum: int | None = None
    _text = _WHOLE_TEXT
    _number = int

    def describe(self) -> str:
        if self.maximum is None:
            return f"a whole number of at least {self.minimum}"
        return f"a whole number from {self.minimum} to {self.maximum}"

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse(where, repr(value))
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            raise self.refuse(where, str(value))
        return value


@dataclass(frozen=True)
class Real(_Range[float]):
    """A finite number from ``minimum`` to ``maximum``; with ``above``, ``minimum`` itself is excluded."""

    minimum: float
    maximum: float | None = None
    above: bool = False
    _text = _REAL_TEXT
    _number = float

    def describe(self) -> str:
        low = f"more than {self.minimum:g}" if self.above else f"at least {self.minimum:g}"
        return f"a number {low}" + (f" and at most {self.maximum:g}" if self.maximum is not None else "")

    def check(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(where, repr(value))
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            raise self.refuse(where, str(value)) from None
        if not math.isfinite(number):
            raise self.refuse(where, repr(value), " (not a finite number)")
        too_low = number <= self.minimum if self.above else number < self.minimum
        if too_low or (self.maximum is not None and number > self.maximum):
            raise self.refuse(where, str(value))
        return number


PORT = Whole(1, 65535)


def check_table(table: dict[str, Any], specs: dict[str, Whole | Real], prefix: str) -> dict[str, Any]:
    """The numbers of ``table`` that ``specs`` names, each checked (``prefix`` + name in any error)."""
    return {name: specs[name].check(value, f"{prefix}{name}") for name, value in table.items() if name in specs}


def check_url(url: str, where: str) -> str:
    """``url`` if it parses as the kind of URL its scheme needs, else raise :class:`ConfigError` naming ``where``.

    Checked: IPv6 brackets, the port (1-65535), a host where the scheme cannot do without one, and an AWS URL's
    ``endpoint_url``. Local URLs (``file://``, ``sqlite://``) name paths and are left to their backend.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in _AWS_SCHEMES:
        try:
            endpoints = parse_qs(urlsplit(url).query).get("endpoint_url", [])
        except ValueError as exc:
            raise ConfigError(f"{where}: {redact(url)!r} is not a valid URL ({exc})") from None
        for endpoint in endpoints:
            try:
                check_url(endpoint, "endpoint_url")
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc.message}") from None
            if not endpoint.lower().startswith(("http://", "https://")):
                raise ConfigError(f"{where}: endpoint_url: {redact(endpoint)!r} is not an http(s) URL")
        return url
    if scheme not in _NETWORK_SCHEMES:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise ConfigError(f"{where}: {redact(url)!r} is not a valid URL ({exc})") from None
    if port == 0:
        raise ConfigError(f"{where}: {redact(url)!r} has port 0; expected {PORT.describe()}")
    if scheme in _HOST_REQUIRED and not parts.hostname:
        raise ConfigError(f"{where}: {redact(url)!r} names no host, e.g. {scheme}://USER:PASSWORD@HOST:PORT/")
    return url


def table_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The TOML table ``[name]`` of ``data`` ({} when absent); anything else under that name is an error."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table ([{name}])")
    return value


def typed(table: dict[str, Any], key: str, kind: Any, where: str, default: Any) -> Any:
    """``table[key]`` if it is a ``kind`` (never a boolean for a number), ``default`` when absent."""
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: wrong type {type(value).__name__} ({value!r})")
    return value


def reject_unknown(prefix: str, table: Mapping[str, Any], known: set[str]) -> None:
    """Refuse the first (in sorted order) of ``table``'s keys that is not ``known``, naming the known ones."""
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
