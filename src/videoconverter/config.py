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

from videoconverter.aws.settings import AwsSettings, aws_settings
from videoconverter.consumer import backoff_seconds
from videoconverter.errors import ConfigError
from videoconverter.logs import url_secrets
from videoconverter.notifications.settings import ENVIRONMENT as NOTIFICATION_ENVIRONMENT
from videoconverter.notifications.settings import NotificationSettings, notification_settings
from videoconverter.renditions import Limits, Rendition, parse_limits, parse_renditions
from videoconverter.validation import Real, Whole, check_table, check_url, reject_unknown, table_of, typed
from videoconverter.web_settings import WebSettings, web_settings

MIN_RETENTION_SECONDS = 60
MAX_RETENTION_SECONDS = 1_209_600  # 14 days, as on SQS
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200  # 12 hours, as on SQS
MAX_RECEIVE_COUNT_LIMIT = 1000  # as SQS's redrive policy
MAX_RETRY_DELAY_SECONDS = 900  # SQS's largest message delay
MAX_RECEIVE_WAIT_SECONDS = 20  # SQS's longest long poll
MAX_JOB_RETENTION_DAYS = 36_500
FFMPEG_THREADS = Whole(0, 1024)  # 0: FFmpeg decides
JOB_RETENTION_DAYS = Whole(0, MAX_JOB_RETENTION_DAYS)  # 0: keep every job

#: Environment variables that override the file. A public interface: keep in step with the README.
ENVIRONMENT = {
    "VIDEOCONVERTER_CONFIG": "path of the TOML configuration file",
    "VIDEOCONVERTER_DATA_DIR": "data directory of the embedded backends (default ./vc-data)",
    "VIDEOCONVERTER_STORAGE": "object store URL (default file://<data dir>/buckets)",
    "VIDEOCONVERTER_BROKER": "broker URL (default sqlite://<data dir>/broker.sqlite3)",
    "VIDEOCONVERTER_JOBS": "job store URL (default sqlite://<data dir>/jobs.sqlite3)",
    "VIDEOCONVERTER_LOG_LEVEL": "DEBUG, INFO (default), WARNING or ERROR",
    "VIDEOCONVERTER_PORT": "port of the web dashboard and HTTP API (default 8080)",
    "VIDEOCONVERTER_API_TOKEN": "bearer token that guards the whole HTTP API but /healthz and the page (default: none)",
    "VIDEOCONVERTER_METRICS_TOKEN": "a second bearer token that reads /metrics only (default: none)",
    "VIDEOCONVERTER_FFMPEG_THREADS": "threads of each FFmpeg run (0: FFmpeg decides; `up --workers auto` sets it)",
    "VIDEOCONVERTER_CHUNKING_MIN_SOURCE_SECONDS": "[chunking] min_source_seconds (0: split every MP4 job; for tests)",
    "VIDEOCONVERTER_CHUNKING_CHUNK_SECONDS": "[chunking] chunk_seconds: the target length of a piece",
    **NOTIFICATION_ENVIRONMENT,
}

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,76}$")  # + "-dlq" stays within SQS's 80 characters
CAPTION_KINDS = ("mp4", "hls")  # the kinds whose output a sidecar caption joins
_TOP_LEVEL = {
    "data_dir", "storage", "broker", "jobs", "log_level",
    "input", "queues", "ffmpeg", "limits", "renditions", "notifications", "web", "aws", "chunking",
}  # fmt: skip
_QUEUE_VALUES: dict[str, Whole | Real] = {
    "message_retention_seconds": Whole(MIN_RETENTION_SECONDS, MAX_RETENTION_SECONDS),  # 14 days, as on SQS
    "visibility_timeout_seconds": Whole(1, MAX_VISIBILITY_TIMEOUT_SECONDS),
    "max_receive_count": Whole(1, MAX_RECEIVE_COUNT_LIMIT),
    "receive_wait_seconds": Real(0, MAX_RECEIVE_WAIT_SECONDS),
    "retry_base_delay_seconds": Real(0, MAX_RETRY_DELAY_SECONDS),
}


MIN_SOURCE_SECONDS = Real(0, 30 * 24 * 3600.0)  # 0: every source is split (for tests)
CHUNK_SECONDS = Real(1, 3600)


@dataclass(frozen=True)
class ChunkingSettings:
    """Splitting long sources into pieces that any worker encodes (``[chunking]``; see chunking/)."""

    enabled: bool = True
    min_source_seconds: float = 300.0  # sources at least this long are split
    chunk_seconds: float = 60.0  # a piece's target length: a multiple of every MP4 rendition's keyframe interval


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("vc-data")
    storage_url: str = ""
    broker_url: str = ""
    jobs_url: str = ""
    input_bucket: str = "videoconverter-input"
    input_suffixes: tuple[str, ...] = (".mp4",)
    #: Sidecar captions (``talk.vtt``, ``talk.en.srt`` next to ``talk.mp4``): their uploads are events too, for the
    #: renditions that carry captions (:data:`CAPTION_KINDS`), which add them to the video's output.
    caption_suffixes: tuple[str, ...] = (".vtt", ".srt")
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
    #: Values the log redactor masks wherever they appear; filled by :func:`load_config`.
    secrets: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    aws: AwsSettings = field(default_factory=AwsSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)

    def rendition(self, name: str) -> Rendition:
        for rendition in self.renditions:
            if rendition.name == name:
                return rendition
        known = ", ".join(r.name for r in self.renditions)
        raise ConfigError(f"unknown rendition {name!r}: configured renditions are {known}")

    def retry_delay_seconds(self, attempt: int) -> float:
        """Back-off before the next delivery after a transient failure on delivery ``attempt``."""
        return backoff_seconds(attempt, self.retry_base_delay_seconds, MAX_RETRY_DELAY_SECONDS)

    def matches_input(self, key: str) -> bool:
        """Whether an upload under ``key`` should be converted (suffixes match case-insensitively)."""
        return key.lower().endswith(tuple(s.lower() for s in self.input_suffixes))

    def matches_caption(self, key: str) -> bool:
        """Whether ``key`` names a sidecar caption file (suffixes match case-insensitively)."""
        return key.lower().endswith(tuple(s.lower() for s in self.caption_suffixes))

    @property
    def event_suffixes(self) -> tuple[str, ...]:
        """The suffixes whose uploads are announced: videos and their sidecar captions."""
        return (*self.input_suffixes, *self.caption_suffixes)

    def accepts(self, bucket: str, key: str) -> bool:
        """Whether an object created at ``bucket``/``key`` starts jobs: a video upload or a sidecar caption."""
        return bucket == self.input_bucket and (self.matches_input(key) or self.matches_caption(key))

    def renditions_for(self, key: str) -> tuple[Rendition, ...]:
        """The renditions an upload of ``key`` starts a job for: every one for a video; for a sidecar caption,
        those that carry captions (thumbnails have none to add it to)."""
        if self.matches_input(key):
            return self.renditions
        if self.matches_caption(key):
            return tuple(r for r in self.renditions if takes_captions(r))
        return ()

    def is_input(self, bucket: str, key: str) -> bool:
        """Whether an object created at ``bucket``/``key`` is an upload this pipeline converts: one in the input
        bucket whose key has an input suffix."""
        return bucket == self.input_bucket and self.matches_input(key)


def takes_captions(rendition: Rendition) -> bool:
    """Whether ``rendition``'s output carries captions, so a sidecar caption upload has a job there."""
    return rendition.kind in CAPTION_KINDS and rendition.captions


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
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {config_path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_path} is not valid TOML: {exc}") from exc
    config = _validate(_from_mapping(data, env))
    return replace(config, secrets=_secrets(config))


def _config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("VIDEOCONVERTER_CONFIG"):
        return Path(env["VIDEOCONVERTER_CONFIG"])
    local = Path("videoconverter.toml")
    return local if local.is_file() else None


def _from_mapping(data: dict[str, Any], env: Mapping[str, str]) -> Config:
    reject_unknown("", data, _TOP_LEVEL)
    data_dir = Path(_overridden(data, "data_dir", env, "VIDEOCONVERTER_DATA_DIR") or "vc-data")
    inp = table_of(data, "input")
    queues = table_of(data, "queues")
    reject_unknown("input.", inp, {"bucket", "suffixes", "caption_suffixes", "topic"})
    reject_unknown("queues.", queues, set(_QUEUE_VALUES))
    log_level = _overridden(data, "log_level", env, "VIDEOCONVERTER_LOG_LEVEL") or "INFO"
    jobs_url, retention_days = _jobs(data, env, f"sqlite://{data_dir}/jobs.sqlite3")
    return Config(
        data_dir=data_dir,
        storage_url=_backend_url(data, "storage", env, f"file://{data_dir}/buckets"),
        broker_url=_backend_url(data, "broker", env, f"sqlite://{data_dir}/broker.sqlite3"),
        jobs_url=jobs_url,
        job_retention_days=retention_days,
        input_bucket=typed(inp, "bucket", str, "input.bucket", Config.input_bucket),
        input_suffixes=tuple(typed(inp, "suffixes", list, "input.suffixes", list(Config.input_suffixes))),
        caption_suffixes=tuple(
            typed(inp, "caption_suffixes", list, "input.caption_suffixes", list(Config.caption_suffixes))
        ),
        topic=typed(inp, "topic", str, "input.topic", Config.topic),
        renditions=parse_renditions(data.get("renditions")),
        **check_table(queues, _QUEUE_VALUES, "queues."),
        ffmpeg_threads=_ffmpeg_threads(env, table_of(data, "ffmpeg")),
        log_level=log_level.upper(),
        limits=parse_limits(table_of(data, "limits")),
        web=web_settings(table_of(data, "web"), env),
        notifications=notification_settings(table_of(data, "notifications"), env),
        aws=aws_settings(table_of(data, "aws")),
        chunking=_chunking(table_of(data, "chunking"), env),
    )


def _overridden(data: dict[str, Any], key: str, env: Mapping[str, str], variable: str) -> str:
    """A top-level string setting, or the environment variable that overrides it; the file's value is checked
    either way (an override does not make a wrong file right)."""
    value: str = typed(data, key, str, key, "")
    return env.get(variable) or value


def _backend_url(
    data: dict[str, Any], key: str, env: Mapping[str, str], default: str, where: str = "", family: str = ""
) -> str:
    """``data[key]`` (named ``where`` in errors, else ``key``), checked, unless ``VIDEOCONVERTER_<FAMILY>`` (the
    family: ``key`` unless given) overrides it; the file's value is checked either way."""
    variable = f"VIDEOCONVERTER_{(family or key).upper()}"
    from_file: str = typed(data, key, str, where or key, "")
    if from_file:
        check_url(from_file, where or key)
    if env.get(variable):
        return check_url(env[variable], variable)
    return from_file or default


def _jobs(data: dict[str, Any], env: Mapping[str, str], default: str) -> tuple[str, int]:
    """The job store's URL and retention: ``jobs = "URL"``, or a ``[jobs]`` table with ``url`` and
    ``retention_days``; ``VIDEOCONVERTER_JOBS`` overrides the URL either way."""
    table = data.get("jobs")
    if not isinstance(table, dict):
        return _backend_url(data, "jobs", env, default), 0
    reject_unknown("jobs.", table, {"url", "retention_days"})
    days = JOB_RETENTION_DAYS.check(table.get("retention_days", 0), "jobs.retention_days")
    return _backend_url(table, "url", env, default, "jobs.url", "jobs"), days


def _ffmpeg_threads(env: Mapping[str, str], table: dict[str, Any]) -> int:
    reject_unknown("ffmpeg.", table, {"threads"})
    threads = FFMPEG_THREADS.check(table.get("threads", 0), "ffmpeg.threads")
    text = env.get("VIDEOCONVERTER_FFMPEG_THREADS")
    return threads if text is None else FFMPEG_THREADS.parse(text, "VIDEOCONVERTER_FFMPEG_THREADS")


def _chunking(table: dict[str, Any], env: Mapping[str, str]) -> ChunkingSettings:
    reject_unknown("chunking.", table, set(ChunkingSettings.__dataclass_fields__))
    enabled = table.get("enabled", ChunkingSettings.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError(f"chunking.enabled: expected true or false, got {enabled!r}")
    values: dict[str, Any] = {"enabled": enabled}
    for name, spec in (("min_source_seconds", MIN_SOURCE_SECONDS), ("chunk_seconds", CHUNK_SECONDS)):
        variable = f"VIDEOCONVERTER_CHUNKING_{name.upper()}"
        value = spec.check(table.get(name, getattr(ChunkingSettings, name)), f"chunking.{name}")
        values[name] = float(spec.parse(env[variable], variable) if env.get(variable) else value)
    return ChunkingSettings(**values)


def _validate(config: Config) -> Config:
    if not _valid_bucket(config.input_bucket):
        raise ConfigError(f"input.bucket: {config.input_bucket!r} is not a valid bucket name")
    if not config.input_suffixes or not all(isinstance(s, str) and s for s in config.input_suffixes):
        raise ConfigError('input.suffixes: expected a non-empty list of suffixes such as [".mp4"]')
    if not all(isinstance(s, str) and s for s in config.caption_suffixes):
        raise ConfigError('input.caption_suffixes: expected a list of suffixes such as [".vtt", ".srt"] (or [])')
    both = {s.lower() for s in config.input_suffixes} & {s.lower() for s in config.caption_suffixes}
    if both:
        raise ConfigError(f"input.caption_suffixes: {', '.join(sorted(both))} cannot be a video and a caption")
    if not _NAME_RE.match(config.topic):
        raise ConfigError(f"input.topic: {config.topic!r} is not a valid topic name (letters, digits, _ and -)")
    if config.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"log_level: expected DEBUG, INFO, WARNING or ERROR, got {config.log_level!r}")
    _validate_renditions(config)
    _validate_chunking(config)
    return config


def _validate_chunking(config: Config) -> None:
    """Pieces start on keyframes: a piece is a whole number of every split rendition's keyframe intervals, and
    of an HLS ladder's segments (a piece is a run of whole segments of every rung)."""
    if not config.chunking.enabled:
        return
    chunk = config.chunking.chunk_seconds
    for i, r in enumerate(config.renditions):
        ladder = r.kind == "hls"
        unit = r.segment_seconds if ladder else r.keyframe_interval_seconds
        name = "segment_seconds" if ladder else "keyframe_interval_seconds"
        if r.kind in ("mp4", "hls") and abs(chunk / unit - round(chunk / unit)) > 1e-6:
            raise ConfigError(
                f"chunking.chunk_seconds: {chunk:g} is not a multiple of renditions[{i}].{name} ({unit:g})"
            )


def _validate_renditions(config: Config) -> None:
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


def _secrets(config: Config) -> frozenset[str]:
    """What the log redactor masks by value (see :class:`videoconverter.logs.Redactor`): the API token, the
    webhook secret, the passwords and query values of the backend URLs, and the webhook URLs' paths (a webhook
    URL is a credential: whoever knows it can post)."""
    found = {config.web.api_token, config.notifications.webhook_secret}
    for url in (config.storage_url, config.broker_url, config.jobs_url):
        found |= url_secrets(url)
    for url in config.notifications.webhook_urls:
        found |= url_secrets(url, path_is_secret=True)
    return frozenset(s for s in found if s)


def _valid_bucket(name: str) -> bool:
    # S3 also refuses adjacent periods, as does storage.keys.validate_bucket.
    return bool(_BUCKET_RE.match(name)) and ".." not in name
