"""Configuration: an optional TOML file, environment overrides, validated once at start.

Precedence, lowest first: built-in defaults, ``videoconverter.toml`` (path from ``VIDEOCONVERTER_CONFIG``, else
``./videoconverter.toml`` when it exists), then the environment variables listed in :data:`ENVIRONMENT`.
Every error names the field that is wrong.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from videoconverter.errors import ConfigError
from videoconverter.notifications.settings import ENVIRONMENT as NOTIFICATION_ENVIRONMENT
from videoconverter.notifications.settings import NotificationSettings, notification_settings
from videoconverter.renditions import Limits, Rendition, parse_renditions

MIN_RETENTION_SECONDS = 60
MAX_RETENTION_SECONDS = 1_209_600  # 14 days, as on SQS
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200  # 12 hours, as on SQS
MAX_RECEIVE_COUNT_LIMIT = 1000  # as SQS's redrive policy
MAX_RETRY_DELAY_SECONDS = 900  # SQS's largest message delay
MAX_JOB_RETENTION_DAYS = 36_500

#: Environment variables that override the file. A public interface: keep in step with the README.
ENVIRONMENT = {
    "VIDEOCONVERTER_CONFIG": "path of the TOML configuration file",
    "VIDEOCONVERTER_DATA_DIR": "data directory of the embedded backends (default ./vc-data)",
    "VIDEOCONVERTER_STORAGE": "object store URL (default file://<data dir>/buckets)",
    "VIDEOCONVERTER_BROKER": "broker URL (default sqlite://<data dir>/broker.sqlite3)",
    "VIDEOCONVERTER_JOBS": "job store URL (default sqlite://<data dir>/jobs.sqlite3)",
    "VIDEOCONVERTER_LOG_LEVEL": "DEBUG, INFO (default), WARNING or ERROR",
    "VIDEOCONVERTER_PORT": "port of the web dashboard and HTTP API (default 8080)",
    "VIDEOCONVERTER_API_TOKEN": "bearer token that guards the HTTP API's writes and media (default: none)",
    "VIDEOCONVERTER_FFMPEG_THREADS": "threads of each FFmpeg run (0: FFmpeg decides; `up --workers auto` sets it)",
    **NOTIFICATION_ENVIRONMENT,
}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,76}$")  # + "-dlq" stays within SQS's 80 characters


@dataclass(frozen=True)
class WebSettings:
    """The web dashboard and HTTP API (``[web]``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    api_token: str = field(default="", repr=False)  # a secret: never logged, never shown
    max_upload_bytes: int = 20 * 1024**3
    check_content: bool = True  # refuse uploads that do not start like an MP4, MOV, MKV or WebM file


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("vc-data")
    storage_url: str = ""
    broker_url: str = ""
    jobs_url: str = ""
    input_bucket: str = "videoconverter-input"
    input_suffixes: tuple[str, ...] = (".mp4",)
    topic: str = "videoconverter-topic"
    renditions: tuple[Rendition, ...] = ()
    message_retention_seconds: int = MAX_RETENTION_SECONDS
    visibility_timeout_seconds: int = 30
    max_receive_count: int = 5
    receive_wait_seconds: float = 20.0
    retry_base_delay_seconds: float = 10.0  # doubles with every attempt, up to MAX_RETRY_DELAY_SECONDS
    ffmpeg_threads: int = 0  # 0: FFmpeg's own choice
    job_retention_days: int = 0  # [jobs] retention_days: `up` prunes finished jobs older than this; 0 keeps them
    log_level: str = "INFO"
    limits: Limits = field(default_factory=Limits)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    web: WebSettings = field(default_factory=WebSettings)

    def rendition(self, name: str) -> Rendition:
        for rendition in self.renditions:
            if rendition.name == name:
                return rendition
        known = ", ".join(r.name for r in self.renditions)
        raise ConfigError(f"unknown rendition {name!r}: configured renditions are {known}")

    def retry_delay_seconds(self, attempt: int) -> float:
        """Back-off before the next delivery after a transient failure on delivery ``attempt``."""
        # The exponent is bounded so that a very high attempt number cannot overflow a float.
        return float(min(MAX_RETRY_DELAY_SECONDS, self.retry_base_delay_seconds * 2 ** min(max(attempt - 1, 0), 64)))

    def matches_input(self, key: str) -> bool:
        """Whether an upload under ``key`` should be converted (suffixes match case-insensitively)."""
        return key.lower().endswith(tuple(s.lower() for s in self.input_suffixes))


def load_config(environ: Mapping[str, str] | None = None, path: Path | None = None) -> Config:
    """Read the TOML file (if any) and the environment, and return a validated :class:`Config`."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    config_path = path or _config_path(env)
    if config_path is not None:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_path} is not valid TOML: {exc}") from exc
    return _validate(_from_mapping(data, env))


def _config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("VIDEOCONVERTER_CONFIG"):
        return Path(env["VIDEOCONVERTER_CONFIG"])
    local = Path("videoconverter.toml")
    return local if local.is_file() else None


def _from_mapping(data: dict[str, Any], env: Mapping[str, str]) -> Config:
    known = {
        "data_dir",
        "storage",
        "broker",
        "jobs",
        "log_level",
        "input",
        "queues",
        "ffmpeg",
        "limits",
        "renditions",
        "notifications",
    }
    known.add("web")
    _reject_unknown("", data, known)
    data_dir = Path(env.get("VIDEOCONVERTER_DATA_DIR") or _typed(data, "data_dir", str, "data_dir", "vc-data"))
    inp = _table(data, "input")
    queues = _table(data, "queues")
    ffmpeg = _table(data, "ffmpeg")
    _reject_unknown("input.", inp, {"bucket", "suffixes", "topic"})
    _reject_unknown(
        "queues.",
        queues,
        {
            "message_retention_seconds",
            "visibility_timeout_seconds",
            "max_receive_count",
            "receive_wait_seconds",
            "retry_base_delay_seconds",
        },
    )
    _reject_unknown("ffmpeg.", ffmpeg, {"threads"})
    jobs_url, retention_days = _jobs(data)
    config = Config(
        data_dir=data_dir,
        storage_url=env.get("VIDEOCONVERTER_STORAGE")
        or _typed(data, "storage", str, "storage", "")
        or f"file://{data_dir}/buckets",
        broker_url=env.get("VIDEOCONVERTER_BROKER")
        or _typed(data, "broker", str, "broker", "")
        or f"sqlite://{data_dir}/broker.sqlite3",
        jobs_url=env.get("VIDEOCONVERTER_JOBS") or jobs_url or f"sqlite://{data_dir}/jobs.sqlite3",
        job_retention_days=retention_days,
        input_bucket=_typed(inp, "bucket", str, "input.bucket", Config.input_bucket),
        input_suffixes=tuple(_typed(inp, "suffixes", list, "input.suffixes", list(Config.input_suffixes))),
        topic=_typed(inp, "topic", str, "input.topic", Config.topic),
        renditions=parse_renditions(data.get("renditions")),
        message_retention_seconds=_typed(
            queues,
            "message_retention_seconds",
            int,
            "queues.message_retention_seconds",
            Config.message_retention_seconds,
        ),
        visibility_timeout_seconds=_typed(
            queues,
            "visibility_timeout_seconds",
            int,
            "queues.visibility_timeout_seconds",
            Config.visibility_timeout_seconds,
        ),
        max_receive_count=_typed(
            queues, "max_receive_count", int, "queues.max_receive_count", Config.max_receive_count
        ),
        receive_wait_seconds=float(
            _typed(
                queues, "receive_wait_seconds", (int, float), "queues.receive_wait_seconds", Config.receive_wait_seconds
            )
        ),
        retry_base_delay_seconds=float(
            _typed(
                queues,
                "retry_base_delay_seconds",
                (int, float),
                "queues.retry_base_delay_seconds",
                Config.retry_base_delay_seconds,
            )
        ),
        ffmpeg_threads=_ffmpeg_threads(env, ffmpeg),
        log_level=(
            env.get("VIDEOCONVERTER_LOG_LEVEL") or _typed(data, "log_level", str, "log_level", "INFO") or "INFO"
        ).upper(),
        limits=_limits(_table(data, "limits")),
        web=_web(_table(data, "web"), env),
        notifications=notification_settings(_table(data, "notifications"), env),
    )
    return config


def _jobs(data: dict[str, Any]) -> tuple[str, int]:
    """``jobs = "URL"``, or a ``[jobs]`` table with ``url`` and ``retention_days``."""
    if not isinstance(data.get("jobs"), dict):
        return _typed(data, "jobs", str, "jobs", ""), 0
    table: dict[str, Any] = data["jobs"]
    _reject_unknown("jobs.", table, {"url", "retention_days"})
    days: int = _typed(table, "retention_days", int, "jobs.retention_days", 0)
    if not 0 <= days <= MAX_JOB_RETENTION_DAYS:
        raise ConfigError(f"jobs.retention_days: must be 0 (keep every job) to {MAX_JOB_RETENTION_DAYS}, got {days}")
    return _typed(table, "url", str, "jobs.url", ""), days


def _ffmpeg_threads(env: Mapping[str, str], table: dict[str, Any]) -> int:
    text = env.get("VIDEOCONVERTER_FFMPEG_THREADS")
    if text is None:
        threads: int = _typed(table, "threads", int, "ffmpeg.threads", 0)
    elif text.strip().isdigit():
        threads = int(text)
    else:
        raise ConfigError(f"VIDEOCONVERTER_FFMPEG_THREADS: expected a whole number, got {text!r}")
    if threads < 0:
        raise ConfigError("ffmpeg.threads: must be 0 (FFmpeg decides) or more")
    return threads


def _limits(table: dict[str, Any]) -> Limits:
    base = Limits()
    _reject_unknown("limits.", table, set(Limits.__dataclass_fields__))
    values: dict[str, Any] = {}
    for name, value in table.items():
        expected = type(getattr(base, name))
        if expected is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"limits.{name}: expected a list of strings")
            value = tuple(value)
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"limits.{name}: expected a number, got {value!r}")
        values[name] = value
    return replace(base, **values)


def _web(table: dict[str, Any], env: Mapping[str, str]) -> WebSettings:
    _reject_unknown("web.", table, set(WebSettings.__dataclass_fields__))
    port: Any = _typed(table, "port", int, "web.port", WebSettings.port)
    if env.get("VIDEOCONVERTER_PORT"):
        try:
            port = int(env["VIDEOCONVERTER_PORT"])
        except ValueError:
            text = env["VIDEOCONVERTER_PORT"]
            raise ConfigError(f"VIDEOCONVERTER_PORT: expected a port number, got {text!r}") from None
    settings = WebSettings(
        host=_typed(table, "host", str, "web.host", WebSettings.host),
        port=port,
        api_token=env.get("VIDEOCONVERTER_API_TOKEN") or _typed(table, "api_token", str, "web.api_token", ""),
        max_upload_bytes=_typed(table, "max_upload_bytes", int, "web.max_upload_bytes", WebSettings.max_upload_bytes),
        check_content=table.get("check_content", WebSettings.check_content),
    )
    if not isinstance(settings.check_content, bool):
        raise ConfigError(f"web.check_content: expected true or false, got {settings.check_content!r}")
    if not 1 <= settings.port <= 65535:
        raise ConfigError(f"web.port (or VIDEOCONVERTER_PORT): expected 1 to 65535, got {settings.port}")
    if not settings.host:
        raise ConfigError("web.host: expected an address such as 127.0.0.1")
    if settings.max_upload_bytes <= 0:
        raise ConfigError("web.max_upload_bytes: must be positive")
    if settings.api_token and (len(settings.api_token) < 16 or any(c.isspace() for c in settings.api_token)):
        raise ConfigError("web.api_token (or VIDEOCONVERTER_API_TOKEN): use at least 16 characters, no spaces")
    return settings


def _validate(config: Config) -> Config:
    if not _valid_bucket(config.input_bucket):
        raise ConfigError(f"input.bucket: {config.input_bucket!r} is not a valid bucket name")
    if not config.input_suffixes or not all(isinstance(s, str) and s for s in config.input_suffixes):
        raise ConfigError('input.suffixes: expected a non-empty list of suffixes such as [".mp4"]')
    if not _NAME_RE.match(config.topic):
        raise ConfigError(f"input.topic: {config.topic!r} is not a valid topic name (letters, digits, _ and -)")
    if not MIN_RETENTION_SECONDS <= config.message_retention_seconds <= MAX_RETENTION_SECONDS:
        raise ConfigError(
            f"queues.message_retention_seconds: must be between {MIN_RETENTION_SECONDS} and "
            f"{MAX_RETENTION_SECONDS} (14 days), got {config.message_retention_seconds}"
        )
    if not 1 <= config.visibility_timeout_seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS:
        raise ConfigError(
            f"queues.visibility_timeout_seconds: must be between 1 and "
            f"{MAX_VISIBILITY_TIMEOUT_SECONDS}, got {config.visibility_timeout_seconds}"
        )
    if not 1 <= config.max_receive_count <= MAX_RECEIVE_COUNT_LIMIT:
        raise ConfigError(f"queues.max_receive_count: must be between 1 and {MAX_RECEIVE_COUNT_LIMIT}")
    if not 0 <= config.receive_wait_seconds <= 20:
        raise ConfigError("queues.receive_wait_seconds: must be between 0 and 20")
    if not 0 <= config.retry_base_delay_seconds <= MAX_RETRY_DELAY_SECONDS:
        raise ConfigError(f"queues.retry_base_delay_seconds: must be between 0 and {MAX_RETRY_DELAY_SECONDS}")
    if config.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"log_level: expected DEBUG, INFO, WARNING or ERROR, got {config.log_level!r}")
    names: set[str] = set()
    queues: set[str] = set()
    buckets = {config.input_bucket}
    for i, r in enumerate(config.renditions):
        where = f"renditions[{i}]"
        if r.name in names:
            raise ConfigError(f"{where}.name: {r.name!r} is used twice")
        names.add(r.name)
        if not _valid_bucket(r.output_bucket) or r.output_bucket in buckets:
            # An output written into a bucket whose uploads trigger the pipeline would loop for ever.
            raise ConfigError(
                f"{where}.output_bucket: {r.output_bucket!r} is invalid or not distinct "
                "from the input bucket and the other outputs"
            )
        buckets.add(r.output_bucket)
        if r.queue in queues:
            # Two renditions sharing a queue would each take only some of the uploads.
            raise ConfigError(f"{where}.queue: {r.queue!r} is already the queue of another rendition")
        queues.add(r.queue)
    if config.limits.transcode_timeout_seconds <= 0 or config.limits.max_pixels <= 0:
        raise ConfigError("limits: transcode_timeout_seconds and max_pixels must be positive")
    return config


def _valid_bucket(name: str) -> bool:
    # S3 also refuses adjacent periods, as does storage.keys.validate_bucket.
    return bool(_BUCKET_RE.match(name)) and ".." not in name


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table ([{name}])")
    return value


def _typed(table: dict[str, Any], key: str, kind: Any, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: wrong type {type(value).__name__} ({value!r})")
    return value


def _reject_unknown(prefix: str, table: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
