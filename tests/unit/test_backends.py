"""Backend URLs: each family's scheme -> class, with helpful errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from videoconverter import brokers, jobs, storage
from videoconverter.brokers.sqlite import SQLiteBroker
from videoconverter.errors import ConfigError, UnknownBackendError
from videoconverter.jobs.sqlite import SQLiteJobStore
from videoconverter.registry import Registry, path_from_url, resolve, scheme_of
from videoconverter.storage.filesystem import FileSystemStore


def test_resolves_embedded_backends() -> None:
    assert storage.BACKENDS.backend_class("file://vc-data/buckets") is FileSystemStore
    assert brokers.BACKENDS.backend_class("sqlite://vc-data/broker.sqlite3") is SQLiteBroker
    assert jobs.BACKENDS.backend_class("sqlite:///abs/jobs.sqlite3") is SQLiteJobStore


def test_scheme_is_case_insensitive() -> None:
    assert scheme_of("SQLite://x") == "sqlite"
    assert brokers.BACKENDS.backend_class("SQLITE://x") is SQLiteBroker


def test_misspelt_scheme_suggests_the_right_one() -> None:
    with pytest.raises(UnknownBackendError) as info:
        brokers.BACKENDS.backend_class("sqlit://x")
    message = str(info.value)
    assert "Did you mean sqlite://" in message
    assert "sqlit://" in message
    assert "broker" in message


def test_unknown_scheme_without_close_match_lists_available() -> None:
    with pytest.raises(UnknownBackendError) as info:
        storage.BACKENDS.backend_class("gcs://bucket")
    message = str(info.value)
    assert "Did you mean" not in message
    assert "file://" in message


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        jobs.BACKENDS.backend_class("mongodb://db")


@pytest.mark.parametrize("url", ["vc-data/broker.sqlite3", "sqlite:x", "://x", ""])
def test_url_without_scheme_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="not a backend URL") as info:
        brokers.BACKENDS.backend_class(url)
    assert not isinstance(info.value, UnknownBackendError)


def test_missing_optional_dependency_names_the_extra() -> None:
    registry = {"fancy": "videoconverter_missing_module_for_tests:Backend"}
    with pytest.raises(ConfigError, match=r"videoconverter\[fancy\]"):
        resolve("broker", registry, "fancy://x")
    fancy = Registry[object]("broker", {("fancy", "fancier"): "videoconverter_missing_module_for_tests:B [extra-name]"})
    assert fancy.targets == {s: "videoconverter_missing_module_for_tests:B" for s in ("fancy", "fancier")}
    with pytest.raises(ConfigError, match=r"videoconverter\[extra-name\]"):
        fancy.backend_class("fancier://x")


def test_each_family_names_the_extras_of_its_schemes() -> None:
    assert brokers.BACKENDS.extras["amqps"] == "rabbitmq" and "sqlite" not in brokers.BACKENDS.extras
    assert jobs.BACKENDS.extras["postgresql"] == "postgres" and jobs.BACKENDS.extras["dynamodb"] == "aws"
    assert storage.BACKENDS.extras["s3"] == "aws"


def test_postgresql_urls_resolve_to_the_postgres_job_store() -> None:
    from videoconverter.jobs.postgres import PostgresJobStore

    for url in ("postgresql://u:p@db/videoconverter", "postgres://db/videoconverter?schema=vc"):
        assert jobs.BACKENDS.backend_class(url) is PostgresJobStore


def test_an_embedded_backend_takes_the_path_after_its_scheme(tmp_path: Path) -> None:
    assert path_from_url("sqlite:///abs/jobs.sqlite3") == Path("/abs/jobs.sqlite3")
    assert path_from_url("file://vc-data/buckets") == Path("vc-data/buckets")
    with pytest.raises(ConfigError, match=r"expected a URL like sqlite://PATH"):
        path_from_url("sqlite://")
    store = storage.open_store(f"file://{tmp_path / 'buckets'}")
    assert isinstance(store, FileSystemStore) and store.root == tmp_path / "buckets"
