"""The standby worker's side of `up`: its assignment line, how it waits for it, and giving it one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from videoconverter.config import Config, load_config
from videoconverter.errors import ConfigError
from videoconverter.fleet import standby


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(environ={"VIDEOCONVERTER_DATA_DIR": str(tmp_path)})


def test_an_assignment_names_the_renditions_and_an_empty_one_means_all(config: Config) -> None:
    assert standby.parse_assignment(standby.assignment(["1080p"]), config) == [config.rendition("1080p")]
    assert standby.parse_assignment(standby.assignment(None), config) == list(config.renditions)


@pytest.mark.parametrize("line", [b'["4k"]\n', b"1080p\n", b'{"renditions": []}\n', b"[1]\n"])
def test_an_assignment_of_no_configured_rendition_is_a_config_error(config: Config, line: bytes) -> None:
    with pytest.raises(ConfigError):
        standby.parse_assignment(line, config)


def test_a_standby_waits_for_its_line_and_ends_at_end_of_input() -> None:
    stop = threading.Event()
    read, write = os.pipe()
    with os.fdopen(read, "rb") as stream:
        os.write(write, b'["720p"]\n')
        assert standby.await_assignment(stream, stop) == b'["720p"]\n'
        os.close(write)
        assert standby.await_assignment(stream, stop) is None


def test_a_stop_ends_the_wait_with_no_input() -> None:
    stop = threading.Event()
    read, write = os.pipe()
    with os.fdopen(read, "rb") as stream:
        threading.Timer(0.1, stop.set).start()
        assert standby.await_assignment(stream, stop) is None
    os.close(write)


def test_assigning_gives_the_line_once_and_fails_on_a_process_that_has_ended() -> None:
    echo = [sys.executable, "-c", "import sys; print(sys.stdin.read(), end='')"]
    process = subprocess.Popen(echo, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert standby.assign(process, ["720p", "1080p"])
    assert not standby.assign(process, ["720p"])  # its stdin is closed: one role only
    assert process.stdout is not None and process.stdout.read() == b'["720p", "1080p"]\n'
    assert process.wait(timeout=30) == 0
    process.stdout.close()
    assert not standby.assign(process, None)
