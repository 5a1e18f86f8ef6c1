"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: for a server a test starts (tests run in parallel: never a fixed one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_service(available: bool, reason: str) -> None:
    """Skip on a laptop without the service; fail in CI, where every service must run."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: services must be available)")
    pytest.skip(reason)


def interrupt(process: subprocess.Popen[Any], timeout_seconds: float = 30.0) -> int:
    """Stop a `videoconverter` process as Ctrl-C would (killed if it does not stop in time); its exit code."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_until(
    condition: Callable[[], object],
    timeout_seconds: float = 30.0,
    interval_seconds: float = 0.05,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {message}")
        time.sleep(interval_seconds)


#: With VIDEOCONVERTER_TEST_CHUNKING=1 the tiny pipeline splits every MP4 job into pieces of 2 s (chunking/), so
#: that the pipeline, fault and hostile-input suites run through split jobs and must keep their outcomes.
FORCED_CHUNKING_TOML = "[chunking]\nmin_source_seconds = 0\nchunk_seconds = 2\n"
CHUNKING_FORCED = os.environ.get("VIDEOCONVERTER_TEST_CHUNKING", "") not in ("", "0")
TINY_PIPELINE_TOML = """
[queues]
visibility_timeout_seconds = 5
max_receive_count = 3
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
name = "small"
short_side = 120
x264_preset = "ultrafast"

[[renditions]]
name = "smaller"
short_side = 90
x264_preset = "ultrafast"
target_vmaf = 0  # a fixed CRF: "small" searches for its VMAF target, so the pipeline runs both rate controls
"""


def tiny_renditions_toml(split: bool = CHUNKING_FORCED) -> str:
    """The tiny pipeline's queues and renditions; with ``split``, every MP4 job split into pieces of 2 s."""
    return (FORCED_CHUNKING_TOML if split else "") + TINY_PIPELINE_TOML


TINY_RENDITIONS_TOML = tiny_renditions_toml()

#: Runs a test on the tiny pipeline twice: as this run says ("whole": split only with
#: VIDEOCONVERTER_TEST_CHUNKING=1) and with every MP4 job split ("split"). The fault and hostile-input suites
#: mark one test of each fault kind, so that CI runs every kind through split jobs on every backend.
ALSO_SPLIT = pytest.mark.parametrize("split_jobs", [False, True], ids=["whole", "split"], indirect=True)


@pytest.fixture
def split_jobs(request: pytest.FixtureRequest) -> bool:
    """Whether the tiny pipeline splits every MP4 job (see :data:`ALSO_SPLIT`)."""
    return bool(getattr(request, "param", False)) or CHUNKING_FORCED


@pytest.fixture
def tiny_config_path(tmp_path, split_jobs):
    """A TOML config with two tiny, fast renditions and quick retries, data under tmp_path/data."""
    path = tmp_path / "videoconverter.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + tiny_renditions_toml(split_jobs))
    return path


@pytest.fixture
def tiny_config(tiny_config_path):
    from videoconverter.config import load_config

    return load_config(environ={}, path=tiny_config_path)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def small_clip(clip_dir):
    """A 320x180, 1 s clip with audio (made once per session)."""
    from videoconverter.transcode.samples import make_clip

    return make_clip(clip_dir / "small.mp4", width=320, height=180, seconds=1)


@pytest.fixture(scope="session")
def other_clip(clip_dir):
    """A different 1 s clip (another ETag), 240x180 without audio."""
    from videoconverter.transcode.samples import make_clip

    return make_clip(clip_dir / "other.mp4", width=240, height=180, seconds=1, audio=False)


# moto's server, for every tier that tests the AWS backends (see tests/aws.py).
from tests.aws import moto_server, serial_moto_server  # noqa: E402, F401
