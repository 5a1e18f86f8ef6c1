"""Fixtures for the integration tier: the FFmpeg binary and a cache of generated sample clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """The FFmpeg binary the converter runs (from the imageio-ffmpeg wheel)."""
    from videoconverter.transcode.runner import ffmpeg_executable

    return ffmpeg_executable()


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Callable[..., Path]:
    """``sample_clip(**make_clip_kwargs)``: a generated clip, made once per session for each set of arguments.

    The clips are shared between tests: read them, never modify them (copy one to ``tmp_path`` first).
    """
    from videoconverter.samples import make_clip

    directory = tmp_path_factory.mktemp("sample-clips")
    cache: dict[tuple[tuple[str, Any], ...], Path] = {}

    def make(**kwargs: Any) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = make_clip(directory / f"clip-{len(cache)}.mp4", ffmpeg=ffmpeg_exe, **kwargs)
        return cache[key]

    return make


@pytest.fixture
def svc(tiny_config: Any) -> Any:
    """The embedded pipeline of ``tiny_config``, provisioned: store, broker, job store and ingest."""
    from videoconverter.app import open_services, provision

    services = open_services(tiny_config)
    provision(services)
    yield services
    services.close()
