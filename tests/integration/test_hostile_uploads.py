"""Hostile or broken uploads through the whole pipeline: a clear permanent error, no retry loop, no harm."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_pipeline import IN, drain, job
from videoconverter.errors import InvalidKeyError
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import Services
from videoconverter.transcode.runner import ffmpeg_executable

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
    subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


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
        "import sys\nfrom pathlib import Path\nfrom videoconverter.config import Limits\n"
        "from videoconverter.errors import LimitExceededError\nfrom videoconverter.transcode.probe import probe\n"
        "try:\n    probe(Path(sys.argv[1]), Limits())\nexcept LimitExceededError:\n    pass\nelse:\n    sys.exit(3)\n"
        # VmHWM is this process's own peak: ru_maxrss would include the pytest process it was forked from.
        "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    peak_mib = int(result.stdout) / 1024
    assert peak_mib < 200, f"probing used {peak_mib:.0f} MiB (one decoded frame would be 768 MiB)"
