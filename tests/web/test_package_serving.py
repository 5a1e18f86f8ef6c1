"""A streaming package through GET/HEAD /api/outputs: media types, gzip for text only, ranges on segments, and
relative URLs in the manifests resolving under the output route (a hand-made package: no FFmpeg)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.web.conftest import TOKEN
from videoconverter.web.streaming import gzipped

MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",LANGUAGE="en",NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="v1/audio/a0-en/index.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",LANGUAGE="en",NAME="English",URI="v1/subs/s0-en/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180,CODECS="avc1.64000d,mp4a.40.2",AUDIO="aac",SUBTITLES="subs"
v1/180p/index.m3u8
"""
FILES = {
    "master.m3u8": MASTER.encode() * 20,  # long enough that gzip shrinks it
    "manifest.mpd": b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"></MPD>' * 20,
    "v1/180p/index.m3u8": b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n' + b"#EXTINF:2.0,\nseg_00000.m4s\n" * 30,
    "v1/180p/init.mp4": bytes(range(256)) * 4,
    "v1/180p/seg_00000.m4s": bytes(range(256)) * 40,
    "v1/audio/a0-en/init.mp4": b"\x00" * 700,
    "v1/audio/a0-en/seg_00000.m4s": b"\x01" * 5000,
    "v1/audio/a0-en/index.m3u8": b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.0,\nseg_00000.m4s\n',
    "v1/subs/s0-en/index.m3u8": b"#EXTM3U\n#EXTINF:2.0,\ncaptions.vtt\n",
    "v1/subs/s0-en/captions.vtt": b"WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello\n" * 30,
    "v1/package.json": b'{"version": "v1", "rungs": []}' * 30,
}
PREFIX = "/api/outputs/hls/clip.mp4/"
GZIP = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip, deflate, br"}
IDENTITY = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "identity"}


@pytest.fixture
def package_client(web_config: Any, tmp_path: Path) -> Iterator[Any]:
    """The app with one ``hls`` rendition whose bucket holds :data:`FILES` under ``clip.mp4/``."""
    from fastapi.testclient import TestClient

    from videoconverter.pipeline import open_services, provision
    from videoconverter.renditions import default_rendition
    from videoconverter.web.app import create_app

    config = replace(web_config, renditions=(default_rendition(180, kind="hls"),))
    svc = open_services(config)
    provision(svc)
    bucket = config.rendition("hls").output_bucket
    for name, data in FILES.items():
        path = tmp_path / "file"
        path.write_bytes(data)
        svc.store.put_file(bucket, f"clip.mp4/{name}", path)
    try:
        with TestClient(create_app(config, svc)) as client:
            yield client
    finally:
        svc.close()


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("manifest.mpd", "application/dash+xml"),
        ("v1/180p/index.m3u8", "application/vnd.apple.mpegurl"),
        ("v1/subs/s0-en/captions.vtt", "text/vtt; charset=utf-8"),
        ("v1/package.json", "application/json"),
    ],
)
def test_text_goes_gzipped_when_accepted_and_plain_otherwise(package_client: Any, name: str, content_type: str) -> None:
    compressed = gzipped(FILES[name])
    got = package_client.get(PREFIX + name, headers=GZIP)
    assert got.status_code == 200 and got.headers["content-type"] == content_type
    assert got.headers["content-encoding"] == "gzip" and got.headers["vary"] == "Accept-Encoding"
    assert int(got.headers["content-length"]) == len(compressed) < len(FILES[name])
    assert got.content == FILES[name]  # httpx decoded the gzip body
    assert "accept-ranges" not in got.headers
    head = package_client.head(PREFIX + name, headers=GZIP)
    assert head.status_code == 200 and head.content == b""
    for header in ("content-type", "content-encoding", "content-length", "etag", "vary"):
        assert head.headers[header] == got.headers[header], header

    plain = package_client.get(PREFIX + name, headers=IDENTITY)
    assert plain.status_code == 200 and plain.headers["content-type"] == content_type
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    assert int(plain.headers["content-length"]) == len(FILES[name]) and plain.content == FILES[name]
    assert plain.headers["etag"] != got.headers["etag"]  # two representations, two validators
    plain_head = package_client.head(PREFIX + name, headers=IDENTITY)
    assert plain_head.headers["content-length"] == plain.headers["content-length"]
    assert "content-encoding" not in plain_head.headers


def test_the_gzip_body_on_the_wire_is_the_compressed_object(package_client: Any) -> None:
    with package_client.stream("GET", PREFIX + "master.m3u8", headers=GZIP) as reply:
        wire = b"".join(reply.iter_raw())
    assert wire == gzipped(FILES["master.m3u8"]) and gzip.decompress(wire) == FILES["master.m3u8"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("v1/180p/init.mp4", "video/mp4"),
        ("v1/180p/seg_00000.m4s", "video/mp4"),
        ("v1/audio/a0-en/init.mp4", "audio/mp4"),
        ("v1/audio/a0-en/seg_00000.m4s", "audio/mp4"),
    ],
)
def test_segments_are_never_compressed_and_keep_ranges(package_client: Any, name: str, content_type: str) -> None:
    data = FILES[name]
    whole = package_client.get(PREFIX + name, headers=GZIP)
    assert whole.status_code == 200 and whole.headers["content-type"] == content_type
    assert "content-encoding" not in whole.headers and "vary" not in whole.headers
    assert whole.headers["accept-ranges"] == "bytes" and whole.content == data
    part = package_client.get(PREFIX + name, headers={**GZIP, "Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == data[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}" and part.headers["content-length"] == "200"
    assert "content-encoding" not in part.headers
    head = package_client.head(PREFIX + name, headers={**GZIP, "Range": "bytes=-10"})
    size = len(data)
    assert head.status_code == 206 and head.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    beyond = package_client.get(PREFIX + name, headers={**GZIP, "Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416


def test_a_range_of_a_playlist_is_answered_uncompressed(package_client: Any) -> None:
    part = package_client.get(PREFIX + "master.m3u8", headers={**GZIP, "Range": "bytes=0-6"})
    assert part.status_code == 206 and part.content == b"#EXTM3U" and "content-encoding" not in part.headers


def test_relative_urls_in_the_master_resolve_under_the_output_route(package_client: Any) -> None:
    master_url = "http://testserver" + PREFIX + "master.m3u8"
    master = package_client.get(master_url, headers=GZIP).text
    uris = [line for line in master.splitlines() if line and not line.startswith("#")]
    uris += [part.split('URI="')[1].rstrip('"') for part in master.splitlines() if 'URI="' in part]
    assert len(set(uris)) == 3
    for uri in set(uris):
        playlist_url = urljoin(master_url, uri)
        playlist = package_client.get(playlist_url, headers=GZIP)
        assert playlist.status_code == 200 and playlist.text.startswith("#EXTM3U"), uri
    segment = package_client.get(urljoin(urljoin(master_url, "v1/180p/index.m3u8"), "seg_00000.m4s"), headers=GZIP)
    assert segment.status_code == 200 and segment.content == FILES["v1/180p/seg_00000.m4s"]


def test_the_dashboard_loads_its_players_from_the_package_under_its_policy(client: Any) -> None:
    from videoconverter.web.guard import CONTENT_SECURITY_POLICY
    from videoconverter.web.streaming import DASH_JS_VERSION, HLS_JS_VERSION

    page = client.get("/")
    assert '<script src="/static/player.js"></script>' in page.text
    player = client.get("/static/player.js").text
    for asset in ("/static/players/hls.min.js", "/static/players/dash.mediaplayer.min.js"):
        assert f'"{asset}"' in player
        reply = client.get(asset)
        assert reply.status_code == 200 and "javascript" in reply.headers["content-type"], asset
    assert f'"{HLS_JS_VERSION}"' in client.get("/static/players/hls.min.js").text
    assert f'"{DASH_JS_VERSION}"' in client.get("/static/players/dash.mediaplayer.min.js").text
    notes = client.get("/static/players/README.md").text
    assert f"hls.js {HLS_JS_VERSION} and dash.js {DASH_JS_VERSION}" in notes
    assert "Apache-2.0" in notes and "BSD-3-Clause" in notes
    for licence in ("hls.js-LICENSE", "dash.js-LICENSE.md"):
        assert client.get(f"/static/players/{licence}").status_code == 200
    # MSE players hand the <video> a blob: URL (hls.js its <track> a data: one); scripts stay this server's own.
    assert "media-src 'self' blob: data:;" in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "worker-src" not in CONTENT_SECURITY_POLICY
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
