"""The dashboard's poster of an MP4 output: its first frame, at most 640 pixels wide, made with the converter's
hardened input arguments (probed first, the probed demuxer forced, only the ``file`` protocol)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import pytest

from videoconverter.transcode.samples import make_clip

pytestmark = pytest.mark.ffmpeg


def stored_output(client: Any, path: Path, key: str = "clip.mp4") -> str:
    """Put ``path`` in the ``small`` rendition's bucket as if a worker had written it; its poster's URL."""
    client.svc.store.put_file(client.svc.config.rendition("small").output_bucket, key, path)
    return f"/api/posters/small/{key}"


def jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:2] == b"\xff\xd8", "a JPEG"
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


@pytest.mark.parametrize(
    ("clip", "size"),
    [
        ({"width": 1280, "height": 720}, (640, 360)),  # scaled down to 640 wide
        ({"width": 320, "height": 180}, (320, 180)),  # never up
    ],
)
def test_the_poster_is_the_first_frame_at_most_640_wide(
    client: Any, auth: dict[str, str], tmp_path: Path, clip: dict[str, int], size: tuple[int, int]
) -> None:
    url = stored_output(client, make_clip(tmp_path / "out.mp4", seconds=0.5, audio=False, **clip))
    reply = client.get(url, headers=auth)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/jpeg"
    assert jpeg_size(reply.content) == size
    assert client.get(url).status_code == 401, "posters need the token"


def test_an_output_that_is_no_video_gets_no_poster_and_reads_nothing_else(
    client: Any, auth: dict[str, str], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-POSTER")
    playlist = tmp_path / "playlist.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n#EXT-X-ENDLIST\n")
    reply = client.get(stored_output(client, playlist), headers=auth)
    assert reply.status_code == 422 and reply.json()["error"]["code"] == "no_poster"
    assert "TOPSECRET" not in reply.text
