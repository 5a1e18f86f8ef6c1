"""Backend URLs: scheme -> class, with helpful errors."""

from __future__ import annotations

import pytest

from videoconverter.brokers.sqlite import SQLiteBroker
from videoconverter.errors import ConfigError, UnknownBackendError
from videoconverter.jobs.sqlite import SQLiteJobStore
from videoconverter.registry import BROKERS, JOB_STORES, STORAGE, resolve, scheme_of
from videoconverter.storage.filesystem import FileSystemStore


def test_resolves_embedded_backends() -> None:
    assert resolve("storage", STORAGE, "file://vc-data/buckets") is FileSystemStore
    assert resolve("broker", BROKERS, "sqlite://vc-data/broker.sqlite3") is SQLiteBroker
    assert resolve("job store", JOB_STORES, "sqlite:///abs/jobs.sqlite3") is SQLiteJobStore


def test_scheme_is_case_insensitive() -> None:
    assert scheme_of("SQLite://x") == "sqlite"
    assert resolve("broker", BROKERS, "SQLITE://x") is SQLiteBroker


def test_misspelt_scheme_suggests_the_right_one() -> None:
    with pytest.raises(UnknownBackendError) as info:
        resolve("broker", BROKERS, "sqlit://x")
    message = str(info.value)
    assert "Did you mean sqlite://" in message
    assert "sqlit://" in message
    assert "broker" in message


def test_unknown_scheme_without_close_match_lists_available() -> None:
    with pytest.raises(UnknownBackendError) as info:
        resolve("storage", STORAGE, "gcs://bucket")
    message = str(info.value)
    assert "Did you mean" not in message
    assert "file://" in message


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        resolve("job store", JOB_STORES, "mongodb://db")


@pytest.mark.parametrize("url", ["vc-data/broker.sqlite3", "sqlite:x", "://x", ""])
def test_url_without_scheme_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="not a backend URL") as info:
        resolve("broker", BROKERS, url)
    assert not isinstance(info.value, UnknownBackendError)


def test_missing_optional_dependency_names_the_extra() -> None:
    registry = {"fancy": "videoconverter_missing_module_for_tests:Backend"}
    with pytest.raises(ConfigError, match=r"videoconverter\[fancy\]"):
        resolve("broker", registry, "fancy://x")


def test_postgresql_urls_resolve_to_the_postgres_job_store() -> None:
    from videoconverter.jobs.postgres import PostgresJobStore

    for url in ("postgresql://u:p@db/videoconverter", "postgres://db/videoconverter?schema=vc"):
        assert resolve("job store", JOB_STORES, url) is PostgresJobStore
