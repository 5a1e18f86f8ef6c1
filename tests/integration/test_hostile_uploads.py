"""Hostile or broken uploads through the whole pipeline: a clear permanent error, no retry loop, no harm."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_pipeline import IN, drain, job
from videoconverter.config import load_config
from videoconverter.errors import InvalidKeyError
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.transcode.command import preamble
from videoconverter.transcode.produce import marker_name, output_key
from videoconverter.transcode.runner import ffmpeg_executable
from videoconverter.transcode.samples import make_truncated_clip

pytestmark = pytest.mark.ffmpeg
SECRET = f"TOPSECRET-{uuid.uuid4().hex}"


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP port on loopback that records every connection made to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            connections.append(conn)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    stop.set()
    thread.join()
    server.close()


def ffmpeg(*args: str) -> None:
    subprocess.run([*preamble(ffmpeg_executable()), *args], check=True)


def patch_box(data: bytes, box: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field at ``offset`` bytes after the type of every ``box`` (a crafted, lying header)."""
    out = bytearray(data)
    start = 0
    while (at := data.find(box, start)) != -1:
        struct.pack_into(fmt, out, at + offset, value)
        start = at + 4
    return bytes(out)


def huge_frame(_: Path, path: Path) -> None:
    """One black 16000x16000 Motion-JPEG frame: 1.5 MB on disk, 768 MB once decoded."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=black:size=16000x16000:rate=25:duration=0.04",
        "-frames:v",
        "1",
        "-c:v",
        "mjpeg",
        "-f",
        "mov",
        str(path),
    )


def absurd_duration(_: Path, path: Path) -> None:
    """Two frames 20,000 s apart: a file of a few kilobytes that lasts five and a half hours."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=1:duration=2",
        "-vf",
        "setpts=N*20000/TB",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(path),
    )


def many_streams(_: Path, path: Path) -> None:
    maps = [arg for _ in range(40) for arg in ("-map", "1:a")]
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:duration=0.2",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.2",
        "-map",
        "0:v",
        *maps,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        str(path),
    )


def audio_only(_: Path, path: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(path))


HOSTILE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "zero-byte": (lambda _clip, path: path.write_bytes(b""), "empty"),
    "text": (lambda _clip, path: path.write_text("hello, I am not a video\n" * 20), "not a readable video"),
    "truncated": (
        lambda clip, path: path.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2]),
        "not a readable video",
    ),
    "audio-only": (audio_only, "no video stream"),
    "huge-frame": (huge_frame, "larger than the limit of 33177600 pixels"),
    "absurd-duration": (absurd_duration, "the limit is 14400 s"),
    "many-streams": (many_streams, "streams; the limit is 32"),
}


#: Probing and FFmpeg treat hostile media alike whatever the backend: these cases run on the embedded and the
#: RabbitMQ set-ups; on AWS, dead-lettering is covered by the fault tests and the key tests below (test time).
NOT_ON_AWS = pytest.mark.parametrize("pipeline_config_path", ["sqlite", "rabbitmq"], indirect=True)
#: ... and a truncated upload once more with its MP4 jobs split (how far each piece read does not depend on the
#: backend either).
NOT_ON_AWS_AND_SPLIT = pytest.mark.parametrize(
    ("pipeline_config_path", "split_jobs"),
    [("sqlite", False), ("rabbitmq", False), ("sqlite", True)],
    ids=["sqlite", "rabbitmq", "sqlite-split"],
    indirect=True,
)


@NOT_ON_AWS
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_broken_or_hostile_uploads_are_dead_lettered_once_with_a_clear_reason(
    svc: Services, small_clip: Path, tmp_path: Path, kind: str
) -> None:
    make, reason = HOSTILE[kind]
    path = tmp_path / f"{kind}.mp4"
    make(small_clip, path)
    uploaded = svc.store.put_file(IN, f"{kind}.mp4", path)
    drain(svc)
    for rendition in svc.config.renditions:
        record = job(svc, f"{kind}.mp4", uploaded.etag, rendition.name)
        assert (record.state, record.attempts) == (JobState.FAILED, 1), record.error
        assert reason in record.error
        assert svc.store.head(rendition.output_bucket, f"{kind}.mp4") is None
        letters = svc.broker.dead_letters(rendition.queue)
        assert [d.reason for d in letters] == [record.error]


#: The tiny pipeline's two MP4 renditions and one of each other kind, every kind measuring how far it read.
EVERY_KIND_TOML = """
[[renditions]]
name = "ladder"
kind = "hls"
{ladder_queue}ladder = [90, 120]
preset = "ultrafast"
segment_seconds = 2
keyframe_interval_seconds = 1

[[renditions]]
name = "pictures"
kind = "thumbnails"
{pictures_queue}thumbnail_interval_seconds = 1
thumbnail_width = 64
"""


def every_kind(config_path: Path, accept_truncated_sources: bool) -> Services:
    """The pipeline of ``config_path`` with a ladder and thumbnails added, provisioned. The file itself is
    extended, so that the fixture's clean-up deletes the added queues too (RabbitMQ's outlive the test)."""
    text = config_path.read_text()
    # On RabbitMQ the fixture gave its queues a unique prefix: the added ones get it too.
    prefix = match.group(1) if (match := re.search(r'queue = "(\S+)small"', text)) else ""
    queues = {f"{name}_queue": f'queue = "{prefix}{name}"\n' if prefix else "" for name in ("ladder", "pictures")}
    text += EVERY_KIND_TOML.format(**queues)
    if accept_truncated_sources:
        text += "\n[limits]\naccept_truncated_sources = true\n"
    config_path.write_text(text)
    services = open_services(load_config(environ={}, path=config_path))
    provision(services)
    return services


@pytest.fixture(scope="module")
def truncated_upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interrupted transfer: the index at the front promises 10 s, the data stops after about 4.9 s."""
    return make_truncated_clip(tmp_path_factory.mktemp("truncated") / "cut.mp4")


def read_of(kind: str) -> str:
    """How far each kind reports the upload could be read: the video kinds to the frame, the pictures to a
    frame of the poster's luma scan (4 a second)."""
    return "4.8" if kind == "thumbnails" else "4.9"


@contextlib.contextmanager
def truncated_upload_converted(
    config_path: Path, upload: Path, accept: bool
) -> Iterator[tuple[Services, Callable[[str], Any]]]:
    """Upload ``upload`` to the every-kind pipeline and drain it; yields each rendition's job record by name
    (after checking that every kind is there)."""
    svc = every_kind(config_path, accept_truncated_sources=accept)
    try:
        uploaded = svc.store.put_file(IN, "interrupted.mp4", upload)
        drain(svc)
        assert sorted(r.kind for r in svc.config.renditions) == ["hls", "mp4", "mp4", "thumbnails"]
        yield svc, lambda name: job(svc, "interrupted.mp4", uploaded.etag, name)
    finally:
        svc.close()


@NOT_ON_AWS_AND_SPLIT
def test_a_truncated_upload_fails_permanently_for_every_kind(
    pipeline_config_path: Path, truncated_upload: Path
) -> None:
    with truncated_upload_converted(pipeline_config_path, truncated_upload, accept=False) as (svc, record_of):
        for rendition in svc.config.renditions:
            record = record_of(rendition.name)
            assert (record.state, record.attempts) == (JobState.FAILED, 1), record.error
            assert record.error == f"the upload is truncated: {read_of(rendition.kind)} s of 10.0 s could be read"
            marker = output_key("interrupted.mp4", marker_name(rendition))
            assert svc.store.head(rendition.output_bucket, marker) is None
            assert [d.reason for d in svc.broker.dead_letters(rendition.queue)] == [record.error]


@NOT_ON_AWS_AND_SPLIT
def test_a_truncated_upload_is_converted_with_a_note_when_the_setting_accepts_it(
    pipeline_config_path: Path, truncated_upload: Path
) -> None:
    with truncated_upload_converted(pipeline_config_path, truncated_upload, accept=True) as (svc, record_of):
        for rendition in svc.config.renditions:
            record = record_of(rendition.name)
            assert (record.state, record.attempts) == (JobState.DONE, 1), record.error
            truncated = f"the upload is truncated: {read_of(rendition.kind)} s of 10.0 s could be read"
            assert record.note.endswith(f"{truncated}; converted what was there"), record.note
            marker = svc.store.head(rendition.output_bucket, output_key("interrupted.mp4", marker_name(rendition)))
            assert marker is not None and marker.metadata["source-etag"] == record.id.source_etag
            assert svc.broker.dead_letters(rendition.queue) == []


PLAYLISTS = {
    "hls": "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n#EXTINF:1,\nhttp://127.0.0.1:{port}/a.ts\n"
    "#EXT-X-ENDLIST\n",
    "concat": "ffconcat version 1.0\nfile '{secret}'\nfile 'http://127.0.0.1:{port}/b.mp4'\n",
    "subfile": "subfile,,start,0,end,0,,:{secret}\n",
}


@NOT_ON_AWS
@pytest.mark.parametrize("kind", sorted(PLAYLISTS))
def test_playlists_disguised_as_mp4_read_no_local_file_and_open_no_connection(
    svc: Services, tmp_path: Path, listener: tuple[int, list[object]], kind: str
) -> None:
    port, connections = listener
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    playlist = tmp_path / "playlist.mp4"
    playlist.write_text(PLAYLISTS[kind].format(secret=secret, port=port))
    uploaded = svc.store.put_file(IN, f"{kind}.mp4", playlist)
    drain(svc)
    record = job(svc, f"{kind}.mp4", uploaded.etag, "small")
    assert (record.state, record.attempts) == (JobState.FAILED, 1)
    assert connections == []
    trail = [record.error, record.stderr_tail, *(line.message for line in svc.jobs.logs(f"{kind}.mp4"))]
    trail += [d.reason for r in svc.config.renditions for d in svc.broker.dead_letters(r.queue)]
    assert not any(SECRET in text for text in trail)
    for rendition in svc.config.renditions:
        assert list(svc.store.list(rendition.output_bucket)) == []


AWKWARD_KEYS = [
    "holiday clip.mp4",
    "a+b.mp4",
    "100%2B.mp4",
    "vidéo été 🎬.mp4",
    "-i evil.mp4",
    'it\'s "quoted".mp4',
    "nested/dir/clip.MP4",
    "$(touch pwned).mp4",
]


def test_awkward_keys_convert_to_the_same_key(svc: Services, small_clip: Path, tmp_path: Path) -> None:
    uploaded = {key: svc.store.put_file(IN, key, small_clip) for key in AWKWARD_KEYS}
    drain(svc)
    for key, info in uploaded.items():
        assert {r.state for r in svc.jobs.find(key)} == {JobState.DONE}, key
        for rendition in svc.config.renditions:
            output = svc.store.head(rendition.output_bucket, key)
            assert output is not None and output.metadata["source-etag"] == info.etag
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


@pytest.mark.parametrize("key", ["../escape.mp4", "a/../../b.mp4", "line\nbreak.mp4", "/abs.mp4", "nul\x00.mp4"])
def test_keys_that_could_escape_are_refused_at_upload(svc: Services, small_clip: Path, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        svc.store.put_file(IN, key, small_clip)
    assert all(svc.broker.depth(r.queue).total == 0 for r in svc.config.renditions)


def test_probing_a_huge_frame_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.mp4"
    huge_frame(path, path)
    script = (
        "import sys\nfrom pathlib import Path\nfrom videoconverter.renditions import Limits\n"
        "from videoconverter.errors import LimitExceededError\nfrom videoconverter.transcode.probe import probe\n"
        "try:\n    probe(Path(sys.argv[1]), Limits())\nexcept LimitExceededError:\n    pass\nelse:\n    sys.exit(3)\n"
        # VmHWM is this process's own peak: ru_maxrss would include the pytest process it was forked from.
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    peak_mib = int(result.stdout) / 1024
    assert peak_mib < 200, f"probing used {peak_mib:.0f} MiB (one decoded frame would be 768 MiB)"
