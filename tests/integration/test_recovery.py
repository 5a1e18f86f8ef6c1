"""A worker killed mid-FFmpeg under the real `videoconverter up`: its job is done again at once, not after its
lease, and its temp files are gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws import MotoServer
from tests.conftest import interrupt, wait_until
from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import open_services
from videoconverter.recovery.identity import identity_of
from videoconverter.recovery.journal import read_leases
from videoconverter.recovery.workspace import default_root
from videoconverter.transcode.samples import make_clip

pytestmark = [pytest.mark.ffmpeg, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]
VISIBILITY_TIMEOUT_SECONDS = 60
RECOVERY_DEADLINE_SECONDS = 30  # half the lease: only a lease handed back at once can meet it

CONFIG = """
data_dir = "{data}"
{broker}
[input]
topic = "{prefix}topic"

[notifications]
topic = "{prefix}notifications"
events_queue = "{prefix}events"

[queues]
visibility_timeout_seconds = {visibility}
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
name = "240p"
queue = "{prefix}q240p"
short_side = 240
x264_preset = "medium"
target_vmaf = 0
"""


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def is_transcoding(pid: int) -> bool:
    """Whether ``pid`` is an FFmpeg that reads an input (not the ``ffmpeg -version`` a worker starts with)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    return Path(argv[0].decode()).name.startswith("ffmpeg") and b"-i" in argv


def standbys(up_pid: int) -> list[int]:
    """`up`'s children that wait, warmed up, for a role (``worker --standby``)."""
    found = []
    for pid in children(up_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--standby" in f.read().split(b"\0"):
                    found.append(pid)
        except FileNotFoundError:
            continue
    return found


def worker_running_ffmpeg(up_pid: int) -> tuple[int, int] | None:
    for worker in children(up_pid):
        for child in children(worker):
            if is_transcoding(child):
                return worker, child
    return None


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    """The temp dir of `up` and its workers: their own, short (the SQLite doorbell's socket paths must fit)."""
    path = Path(tempfile.mkdtemp(prefix="vc-rec-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("backend", ["sqlite", "aws"])
def test_a_worker_killed_mid_ffmpeg_has_its_job_done_again_before_its_lease_ends(
    backend: str, tmp_path: Path, temp_dir: Path, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    broker, prefix = "", ""
    if backend == "aws":
        moto: MotoServer = request.getfixturevalue("moto_server")
        broker, prefix = f'broker = "{moto.url("aws")}"', f"r{uuid.uuid4().hex[:8]}-"  # the server outlives us
        env.update(moto.environ())
    config_path = tmp_path / "videoconverter.toml"
    config_path.write_text(
        CONFIG.format(data=tmp_path / "data", broker=broker, prefix=prefix, visibility=VISIBILITY_TIMEOUT_SECONDS)
    )
    env.update(VIDEOCONVERTER_CONFIG=str(config_path), TMPDIR=str(temp_dir), VIDEOCONVERTER_FFMPEG_THREADS="1")
    config = load_config(environ=env)
    # About 1.5 s of FFmpeg here (one thread): long enough to be caught running, and the redo stays short.
    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=8)
    root = default_root(temp_dir)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "videoconverter", "up", "--no-web", "--no-reconcile"], env=env, stderr=log
    )
    svc = None
    try:
        wait_until(lambda: children(up.pid), 90, message="`up` to start its worker")
        svc = open_services(config)
        svc.store.put_file(config.input_bucket, "clip.mp4", clip)
        worker, ffmpeg = wait_until(lambda: worker_running_ffmpeg(up.pid), 60, 0.02, "the worker to run FFmpeg")  # type: ignore[misc]
        victim = identity_of(worker)
        assert victim is not None
        folder = root / victim.name
        assert [lease.queue for lease in read_leases(folder)] == [config.renditions[0].queue]
        assert (next(folder.glob("job-*")) / "source").is_file()  # the job's private copy of the upload
        (standby,) = wait_until(lambda: standbys(up.pid), 60, message="`up`'s standby worker")
        os.kill(worker, signal.SIGKILL)

        def done() -> bool:
            records = svc.jobs.find("clip.mp4")
            return bool(records) and records[0].state is JobState.DONE

        wait_until(done, RECOVERY_DEADLINE_SECONDS, 0.1, "the job to be done again, well before its lease ended")
        (record,) = svc.jobs.find("clip.mp4")
        assert record.attempts == 2, record
        assert not folder.exists(), "the killed worker's state folder (its temp dir and journal) is still there"
        assert identity_of(ffmpeg) is None  # FFmpeg died with its worker
        # The standby took the job (the log says so, below) and stays; a new one waits behind it.
        wait_until(lambda: len(standbys(up.pid)) == 2, 60, message="a new standby")
        assert standby in children(up.pid)
    finally:
        code = interrupt(up, 60)
        log.close()
        if svc is not None:
            svc.close()
    stderr = (tmp_path / "up.log").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "handed back message" in stderr  # the supervisor did it, not the lease's end
    assert f"the standby worker (pid {standby}) takes the place of a" in stderr
    assert [p.name for p in root.iterdir()] == [], "a worker that stopped cleanly leaves no state folder"
