"""The [web] settings that bound what clients may hold, and the metrics token: read, checked, and refused with
the field's name when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.conftest import TOKEN
from videoconverter.config import load_config
from videoconverter.errors import ConfigError
from videoconverter.web_settings import WebSettings


def web_config(tmp_path: Path, toml: str, environ: dict[str, str] | None = None) -> WebSettings:
    path = tmp_path / "videoconverter.toml"
    path.write_text("[web]\n" + toml)
    return load_config(environ=environ or {}, path=path).web


def test_defaults_and_values_are_read(tmp_path: Path) -> None:
    default = web_config(tmp_path, "")
    assert (default.max_concurrent_uploads, default.read_timeout_seconds, default.metrics_token) == (8, 30.0, "")
    chosen = web_config(
        tmp_path,
        f'max_concurrent_uploads = 3\nread_timeout_seconds = 2.5\napi_token = "{TOKEN}"\n',
        {"VIDEOCONVERTER_METRICS_TOKEN": "scraper-token-0123456789"},
    )
    assert (chosen.max_concurrent_uploads, chosen.read_timeout_seconds) == (3, 2.5)
    assert chosen.metrics_token == "scraper-token-0123456789"
    assert "scraper-token" not in repr(chosen)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("max_concurrent_uploads = 0", "web.max_concurrent_uploads"),
        ("max_concurrent_uploads = 65", "web.max_concurrent_uploads"),
        ('max_concurrent_uploads = "8"', "web.max_concurrent_uploads"),
        ("max_concurrent_uploads = true", "web.max_concurrent_uploads"),
        ("read_timeout_seconds = 0", "web.read_timeout_seconds"),
        ("read_timeout_seconds = -1.5", "web.read_timeout_seconds"),
        ("read_timeout_seconds = 3601", "web.read_timeout_seconds"),
        ('read_timeout_seconds = "30"', "web.read_timeout_seconds"),
        ('metrics_token = "scraper-token-0123456789"', "web.metrics_token"),  # without an API token
        (f'api_token = "{TOKEN}"\nmetrics_token = "short"', "web.metrics_token"),
        (f'api_token = "{TOKEN}"\nmetrics_token = "{TOKEN}"', "web.metrics_token"),
    ],
)
def test_wrong_values_are_refused_by_name(tmp_path: Path, toml: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        web_config(tmp_path, toml + "\n")
