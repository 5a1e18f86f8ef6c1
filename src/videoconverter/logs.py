"""JSON-lines process logging with the job's key and rendition on every line, and secrets kept out.

Secrets are found by their place in the text, never by the word before them (prose such as "the API token:
'Authorization: Bearer TOKEN'" stays as written):

- a URL's userinfo password: ``amqp://user:***@host``;
- a URL's query and fragment values, but for a few harmless settings of our own backend URLs
  (:data:`PUBLIC_QUERY_NAMES`): ``https://example.com/hook?api_key=***&sig=***``;
- the path of a URL on a known webhook host, which is the credential: ``https://hooks.slack.com/services/***``;
- ``NAME=VALUE`` pairs (a DSN, an environment assignment) whose name is a credential's: ``password=***``;
- and, by value, the secrets a :class:`Redactor` is given: :func:`videoconverter.config.load_config` collects
  them (the API token, the webhook secret, backend URLs' passwords, webhook URLs' paths) into
  ``Config.secrets``, and the CLI hands them to :func:`configure_logging`. Values shorter than
  :data:`MIN_SECRET_CHARS` are only masked by place (masking a 5-letter password everywhere would garble
  every line that contains the same letters).

No module state: the module function :func:`redact` masks by place only; a redactor that also knows the
configured values lives in the logging formatter and in the CLI's error path.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

MIN_SECRET_CHARS = 8
MASK = "***"
#: Query parameters of our own backend URLs that name no secret and help read an error message.
PUBLIC_QUERY_NAMES = frozenset(
    {
        "region", "endpoint_url", "schema", "sslmode", "connect_timeout", "application_name",
        "heartbeat", "connection_attempts", "retry_delay", "socket_timeout", "blocked_connection_timeout",
    }
)  # fmt: skip
#: Webhook hosts (and their subdomains) whose URL path is the credential, with the path prefix that is not.
WEBHOOK_HOSTS = {
    "hooks.slack.com": "/services/",
    "discord.com": "/api/webhooks/",
    "discordapp.com": "/api/webhooks/",
    "webhook.office.com": "/webhookb2/",
    "outlook.office.com": "/webhook/",
    "hooks.zapier.com": "/hooks/catch/",
    "maker.ifttt.com": "/trigger/",
    "api.telegram.org": "/",
    "chat.googleapis.com": "/v1/spaces/",
}
#: Schemes whose "URL" is a path or ``s3://BUCKET/KEY``: a ``?`` in it is part of a file name or key.
_PATH_SCHEMES = {"file", "sqlite"}
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s'\"<>`]+)", re.IGNORECASE)
_TRAILING = ".,;:!?"
_EARLY_PASSWORD = re.compile(r"([^:/@\s]*):[^@\s]+@")
_CREDENTIAL_NAME = r"[a-z0-9_.-]*(?:password|passwd|pwd|secret|secret_access_key|token|api_?key|signature|credential)s?"
_ASSIGNMENT = re.compile(rf"\b({_CREDENTIAL_NAME})(\s*=\s*)([^\s&;,'\"()<>]+)", re.IGNORECASE)
_JOB_FIELDS = ("key", "rendition", "source_etag", "attempt", "queue", "message_id")


class Redactor:
    """Masks secrets in text: by their place (see the module docstring), and the given ``secrets`` by value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        values |= {quote(s, safe="") for s in values}  # as it appears inside a URL
        ordered = sorted(values, key=len, reverse=True)  # the longest first: no half-masked secret
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(MASK, text)
        text = _URL.sub(_redacted_url, text)
        return _ASSIGNMENT.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)


_BY_PLACE = Redactor()


def redact(text: str) -> str:
    """Mask what is a secret by its place in ``text`` (no configured values: use a :class:`Redactor` for those)."""
    return _BY_PLACE.redact(text)


def url_secrets(url: str, *, path_is_secret: bool = False) -> set[str]:
    """The parts of ``url`` that are credentials, as written and decoded: the userinfo's password, the query
    values (but :data:`PUBLIC_QUERY_NAMES`'), and with ``path_is_secret`` the path."""
    scheme, _, rest = url.partition("://")
    if not rest or scheme.lower() in _PATH_SCHEMES:
        return set()
    authority, path, query = _split(rest)
    found: set[str] = set()
    userinfo = authority.rpartition("@")[0]
    if ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if value and name.lower() not in PUBLIC_QUERY_NAMES:
            found.add(value)
    if path_is_secret and path.strip("/"):
        found.add(path)
    return found | {unquote(s) for s in found}


def _redacted_url(match: re.Match[str]) -> str:
    scheme, (rest, trailing) = match[1], _without_trailing_punctuation(match[2])
    authority, path, query = _split(rest)
    if "@" not in authority and _EARLY_PASSWORD.match(rest):
        # user:pa/ss@host: an unencoded "/" in the password ended the authority early; mask up to the "@".
        return f"{scheme}://{_EARLY_PASSWORD.sub(lambda m: f'{m[1]}:{MASK}@', rest, count=1)}{trailing}"
    authority = _redacted_authority(authority)
    if scheme.lower() in _PATH_SCHEMES or (scheme.lower() == "s3" and authority):  # s3://BUCKET/KEY: a key
        return f"{scheme}://{authority}{path}{query}{trailing}"
    return f"{scheme}://{authority}{_redacted_path(authority, path)}{_redacted_query(query)}{trailing}"


def _split(rest: str) -> tuple[str, str, str]:
    """``authority``, ``/path`` and ``?query#fragment`` (with their first character) of a URL after ``://``."""
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    cut = min(ends) if ends else len(rest)
    authority, remainder = rest[:cut], rest[cut:]
    marks = [i for i in (remainder.find("?"), remainder.find("#")) if i >= 0]
    split = min(marks) if marks else len(remainder)
    return authority, remainder[:split], remainder[split:]


def _without_trailing_punctuation(rest: str) -> tuple[str, str]:
    """A sentence's punctuation after a URL is not part of it (nor is a ")" that closes no "(" inside it)."""
    end = len(rest)
    while end and (rest[end - 1] in _TRAILING or (rest[end - 1] == ")" and _unbalanced(rest[:end]))):
        end -= 1
    return rest[:end], rest[end:]


def _unbalanced(text: str) -> bool:
    return text.count("(") < text.count(")")


def _redacted_authority(authority: str) -> str:
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo and userinfo.partition(":")[2]:
        return f"{userinfo.partition(':')[0]}:{MASK}@{host}"
    return authority


def _redacted_path(authority: str, path: str) -> str:
    hostport = authority.rpartition("@")[2].lower()
    host = hostport.partition("]")[0] + "]" if hostport.startswith("[") else hostport.partition(":")[0]
    for known, kept in WEBHOOK_HOSTS.items():
        if host == known or host.endswith(f".{known}"):
            if path.startswith(kept) and len(path) > len(kept):
                return kept + MASK
            return f"/{MASK}" if path.strip("/") else path
    return path


def _redacted_query(query: str) -> str:
    """Each value of a ``?query`` (and ``#fragment``) masked, but the harmless settings'."""
    out = []
    for part in re.split(r"([?#&])", query):
        if part in {"", "?", "#", "&"}:
            out.append(part)
            continue
        name, equals, value = part.partition("=")
        if not equals:
            out.append(MASK)  # a bare value, e.g. ?SECRET
        elif value and name.lower() not in PUBLIC_QUERY_NAMES and value != MASK:
            out.append(f"{name}={MASK}")
        else:
            out.append(part)
    return "".join(out)


class JsonLinesFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or _BY_PLACE

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor.redact(record.getMessage()),
        }
        for field in _JOB_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.redactor.redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, redactor: Redactor | None = None) -> None:
    """Send JSON lines to stderr (stdout is kept for command output and ``--json``), masked by ``redactor``
    (by default: secrets by their place only)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries narrate every connection at INFO ("Found credentials in environment variables"): only
    # their warnings belong in a job's trail.
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3", "pika"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
