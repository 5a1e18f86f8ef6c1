"""Media types and the compression rules of outputs served to players (web/streaming.py)."""

from __future__ import annotations

import gzip

import pytest

from videoconverter.web.streaming import MAX_COMPRESSED_SOURCE_BYTES, accepts_gzip, compressible, gzipped, media_type


@pytest.mark.parametrize(
    ("key", "packaged", "expected"),
    [
        ("clip.mp4/master.m3u8", True, "application/vnd.apple.mpegurl"),
        ("clip.mp4/v1/360p/index.m3u8", True, "application/vnd.apple.mpegurl"),
        ("clip.mp4/manifest.mpd", True, "application/dash+xml"),
        ("clip.mp4/v1/360p/init.mp4", True, "video/mp4"),
        ("clip.mp4/v1/360p/seg_00003.m4s", True, "video/mp4"),
        ("clip.mp4/v1/audio/a0-eng/init.mp4", True, "audio/mp4"),
        ("clip.mp4/v1/audio/a1-fra/seg_00000.M4S", True, "audio/mp4"),
        ("clip.mp4/v1/subs/s0-en/captions.vtt", True, "text/vtt"),
        ("clip.mp4/v1/package.json", True, "application/json"),
        ("clip.mp4/v1/poster.jpg", False, "image/jpeg"),
        ("audio/a/clip.mp4", False, "video/mp4"),  # an MP4 output whose upload key has an audio/ folder
        ("audio/seg.m4s", True, "video/mp4"),  # audio/ must be a package's folder of tracks, two above the file
        ("clip.mp4/v1/file.unknownsuffix", True, "application/octet-stream"),
    ],
)
def test_media_types_by_suffix_and_audio_folder(key: str, packaged: bool, expected: str) -> None:
    assert media_type(key, packaged) == expected


@pytest.mark.parametrize(
    ("key", "size", "expected"),
    [
        ("k/master.m3u8", 500, True),
        ("k/manifest.mpd", 500, True),
        ("k/v1/subs/s0-en/captions.vtt", MAX_COMPRESSED_SOURCE_BYTES, True),
        ("k/v1/package.json", 10, True),
        ("k/v1/360p/seg_00000.m4s", 500, False),
        ("k/v1/360p/init.mp4", 500, False),
        ("clip.mp4", 500, False),
        ("k/v1/subs/s0-en/captions.vtt", MAX_COMPRESSED_SOURCE_BYTES + 1, False),
    ],
)
def test_only_text_up_to_the_limit_is_compressible(key: str, size: int, expected: bool) -> None:
    assert compressible(key, size) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("br", False),
        ("gzip", True),
        ("GZip", True),
        ("x-gzip", True),
        ("gzip, deflate, br, zstd", True),  # Chromium's
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("gzip;q=nonsense", False),
        ("deflate;q=0.5, gzip ; q=0.2", True),
    ],
)
def test_accept_encoding_allows_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_gzipped_is_deterministic_and_round_trips() -> None:
    data = b"#EXTM3U\n" * 200
    assert gzipped(data) == gzipped(data)
    assert gzip.decompress(gzipped(data)) == data and len(gzipped(data)) < len(data)
