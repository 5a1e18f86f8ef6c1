"""Object keys and bucket names: what may become a filesystem path."""

from __future__ import annotations

import pytest

from videoconverter.errors import InvalidKeyError
from videoconverter.storage.keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    MAX_UPLOAD_KEY_BYTES,
    upload_key,
    validate_bucket,
    validate_key,
)
from videoconverter.transcode.produce import output_key, output_version

NFC = "caf\u00e9.mp4"
NFD = "cafe\u0301.mp4"


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


# --- new uploads: one form of each key, nothing invisible, segments that fit a file name ---------------------


def test_an_upload_key_is_normalised_to_nfc() -> None:
    assert NFC != NFD
    assert upload_key(NFD) == NFC == upload_key(NFC)
    assert upload_key(f"dossier/{NFD}") == f"dossier/{NFC}"
    assert upload_key("emoji 🎬.mp4") == "emoji 🎬.mp4"


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("invoice\u202egnp.mp4", "U+202E (RIGHT-TO-LEFT OVERRIDE), an invisible format character"),
        ("zero\u200bwidth.mp4", "U+200B (ZERO WIDTH SPACE), an invisible format character"),
        ("\ufeffbom.mp4", "U+FEFF (ZERO WIDTH NO-BREAK SPACE), an invisible format character"),
        ("soft\u00adhyphen.mp4", "U+00AD (SOFT HYPHEN), an invisible format character"),
        ("line\u2028sep.mp4", "U+2028 (LINE SEPARATOR), a line separator"),
        ("para\u2029sep.mp4", "U+2029 (PARAGRAPH SEPARATOR), a paragraph separator"),
        ("next\x85line.mp4", "U+0085, a control character"),
        ("a\nb.mp4", "U+000A, a control character"),
        ("\udcff.mp4", "U+DCFF, a lone surrogate"),
    ],
)
def test_an_upload_key_with_control_or_format_characters_is_refused_with_the_reason(key: str, named: str) -> None:
    with pytest.raises(InvalidKeyError) as info:
        upload_key(key)
    assert named in info.value.message


@pytest.mark.parametrize(
    "key",
    [
        "x" * MAX_SEGMENT_BYTES,
        "a/" + "x" * MAX_SEGMENT_BYTES + "/b.mp4",
        "é" * 127 + "x",  # 255 bytes
        "/".join(["x" * 191] * 5),  # 959 bytes in all
    ],
)
def test_an_upload_key_may_use_whole_file_names(key: str) -> None:
    assert upload_key(key) == key


@pytest.mark.parametrize("key", ["x" * (MAX_SEGMENT_BYTES + 1), "a/" + "x" * 256 + "/b.mp4", "é" * 128])
def test_an_upload_key_with_a_segment_over_a_file_name_is_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError, match=r"path segment of 256 bytes; the limit is 255"):
        upload_key(key)


def test_segments_are_measured_once_composed() -> None:
    assert upload_key("e\u0301" * 86) == "é" * 86  # 258 bytes as sent, 172 in NFC


def test_keys_that_exist_are_used_as_given() -> None:
    """An object S3 already holds in NFD, or with a format character, is read and converted under that key."""
    assert validate_key(NFD) == NFD
    assert validate_key("invoice\u202egnp.mp4") == "invoice\u202egnp.mp4"
    assert validate_key("x" * 300) == "x" * 300  # S3 has no segment limit (the file store checks its own)


def test_an_upload_key_leaves_room_for_its_outputs_names() -> None:
    key = "/".join(["k" * 239] * 3 + ["k" * 240])
    assert len(key) == MAX_UPLOAD_KEY_BYTES and upload_key(key) == key
    version = output_version("0123456789abcdef0123456789abcdef-10000")
    for name in [
        f"{version}/4320p/seg_{99_999:05d}.m4s",
        f"{version}/thumbnails/{9_999_999:05d}.jpg",  # a month of thumbnails, one a second
        f"{version}/sprites/{99_999:03d}.jpg",
        f"{version}/files.json",
        "master.m3u8",
    ]:
        assert validate_key(output_key(key, name))
    with pytest.raises(InvalidKeyError, match="a new upload's key may have 960"):
        upload_key(key + "k")
