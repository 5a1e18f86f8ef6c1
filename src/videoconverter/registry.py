"""URL scheme -> backend, imported lazily so optional dependencies stay optional."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from videoconverter.errors import ConfigError, UnknownBackendError

STORAGE = {
    "file": "videoconverter.storage.filesystem:FileSystemStore",
    "s3": "videoconverter.storage.s3:S3Store",
}
BROKERS = {
    "sqlite": "videoconverter.brokers.sqlite:SQLiteBroker",
    "amqp": "videoconverter.brokers.rabbitmq:RabbitMQBroker",
    "amqps": "videoconverter.brokers.rabbitmq:RabbitMQBroker",
    "aws": "videoconverter.brokers.sqs:SQSBroker",
}
#: The pip extra that installs a scheme's dependencies, where it is not named after the scheme.
EXTRAS = {
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "postgresql": "postgres",
    "postgres": "postgres",
    "s3": "aws",
    "dynamodb": "aws",
}
JOB_STORES = {
    "sqlite": "videoconverter.jobs.sqlite:SQLiteJobStore",
    "postgresql": "videoconverter.jobs.postgres:PostgresJobStore",
    "postgres": "videoconverter.jobs.postgres:PostgresJobStore",
    "dynamodb": "videoconverter.jobs.dynamodb:DynamoDBJobStore",
}


def scheme_of(url: str) -> str:
    scheme, sep, _rest = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(f"{url!r} is not a backend URL: expected SCHEME://..., e.g. sqlite://vc-data/broker.db")
    return scheme.lower()


def resolve(kind: str, registry: dict[str, str], url: str) -> Any:
    """The backend class registered for ``url``'s scheme in ``registry``."""
    scheme = scheme_of(url)
    target = registry.get(scheme)
    if target is None:
        close = difflib.get_close_matches(scheme, registry, n=1)
        hint = f" Did you mean {close[0]}://?" if close else ""
        raise UnknownBackendError(
            f"no {kind} backend for {scheme}:// (available: {', '.join(s + '://' for s in registry)}).{hint}"
        )
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {scheme}:// {kind} backend needs a package that is not installed: {exc.name}. "
            f"Install the matching extra: pip install 'videoconverter[{EXTRAS.get(scheme, scheme)}]'"
        ) from exc
    return getattr(module, attribute)
