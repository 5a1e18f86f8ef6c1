"""Object keys and bucket names: what may become a filesystem path."""

from __future__ import annotations

import pytest

from videoconverter.errors import InvalidKeyError
from videoconverter.storage.keys import MAX_KEY_BYTES, validate_bucket, validate_key


@pytest.mark.parametrize(
    "key",
    [
        "clip.mp4",
        "red flower.mp4",
        "red+flower.mp4",
        "100%.mp4",
        "%2B.mp4",
        "vidéo/日本語.mp4",
        "emoji 🎬.mp4",
        "-rf.mp4",
        "--help",
        "it's.mp4",
        '"quoted".mp4',
        "a/b/c.mp4",
        "...mp4",
        "a/..b/c",
        ".hidden",
        "x" * MAX_KEY_BYTES,
        "é" * (MAX_KEY_BYTES // 2),  # two bytes each: exactly the limit
    ],
)
def test_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "/",
        "../x",
        "..",
        ".",
        "a/../b",
        "a/..",
        "a//b",
        "a/",
        "./a",
        "a/./b",
        "a\x00b",
        "a\nb",
        "a\rb",
        "tab\there",
        "a\x7fb",
        "a\\b",
        "..\\x",
        "x" * (MAX_KEY_BYTES + 1),
        "é" * (MAX_KEY_BYTES // 2 + 1),  # 1026 bytes though only 513 characters
        "\ud800",  # a lone surrogate cannot be a UTF-8 key
    ],
)
def test_refuses(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_refusal_message_names_the_problem() -> None:
    with pytest.raises(InvalidKeyError, match="absolute"):
        validate_key("/etc/passwd")
    with pytest.raises(InvalidKeyError, match=r"'\.\.'"):
        validate_key("a/../b")
    with pytest.raises(InvalidKeyError, match="1024 bytes"):
        validate_key("x" * 1025)


@pytest.mark.parametrize(
    "bucket",
    ["videoconverter-input", "videoconverter-output-720p", "abc", "a.b.c", "1bucket", "a" * 63],
)
def test_bucket_accepts(bucket: str) -> None:
    assert validate_bucket(bucket) == bucket


@pytest.mark.parametrize(
    "bucket",
    [
        "VideoConverter",
        "videoconverter-Input",
        "my..bucket",
        "ab",
        "",
        "a" * 64,
        "vidéo",
        "bücket-name",
        "-bucket",
        "bucket-",
        ".bucket",
        "bucket.",
        "under_score",
        "has space",
        "a/b",
        "../x",
    ],
)
def test_bucket_refuses(bucket: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_bucket(bucket)
