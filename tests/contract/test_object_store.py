"""The object store contract: every backend passes these tests unchanged."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from videoconverter.errors import BucketNotFoundError, ConfigError, InvalidKeyError, ObjectNotFoundError
from videoconverter.storage.base import ObjectStore

BUCKET = "contract-bucket"
AWKWARD_KEYS = [
    "red flower.mp4",
    "a+b.mp4",
    "100%2B.mp4",
    "vidéo-été.mp4",
    "-rf.mp4",
    'it\'s "quoted".mp4',
    "deep/er/clip.MP4",
]


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_create_bucket_is_idempotent(store: ObjectStore) -> None:
    assert store.bucket_exists(BUCKET)
    store.create_bucket(BUCKET)
    assert not store.bucket_exists("no-such-bucket")


def test_put_then_get_round_trips_content_etag_size_and_metadata(store: ObjectStore, tmp_path: Path) -> None:
    content = b"\x00\x01video" * 1000
    info = store.put_file(BUCKET, "clip.mp4", write(tmp_path, "src", content), metadata={"source-etag": "abc"})
    assert (info.bucket, info.key, info.size) == (BUCKET, "clip.mp4", len(content))
    assert info.etag == hashlib.md5(content).hexdigest()
    head = store.head(BUCKET, "clip.mp4")
    assert head is not None
    assert (head.size, head.etag, dict(head.metadata)) == (len(content), info.etag, {"source-etag": "abc"})
    got = store.get_file(BUCKET, "clip.mp4", tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == content
    assert got.etag == info.etag and dict(got.metadata) == {"source-etag": "abc"}


def test_put_stream_reads_until_eof_and_reports_progress(store: ObjectStore) -> None:
    content = bytes(range(256)) * 20_000  # 5 MB: several chunks
    seen: list[int] = []
    info = store.put_stream(
        BUCKET,
        "streamed.mp4",
        io.BytesIO(content),
        size_hint=len(content),
        progress=lambda done, total: seen.append(done),
    )
    assert info.size == len(content) and info.etag == hashlib.md5(content).hexdigest()
    assert seen and seen[-1] == len(content) and seen == sorted(seen)


def test_a_put_replaces_the_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file(BUCKET, "k.mp4", write(tmp_path, "one", b"one"), metadata={"v": "1"})
    store.put_file(BUCKET, "k.mp4", write(tmp_path, "two", b"two!"))
    head = store.head(BUCKET, "k.mp4")
    assert head is not None and head.size == 4 and dict(head.metadata) == {}


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_awkward_keys_round_trip(store: ObjectStore, tmp_path: Path, key: str) -> None:
    store.put_file(BUCKET, key, write(tmp_path, "src", key.encode()))
    store.get_file(BUCKET, key, tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == key.encode()
    assert [o.key for o in store.list(BUCKET)] == [key]


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../escape.mp4", "a/../../b.mp4", "a\x00b.mp4", "line\nbreak.mp4", "a//b.mp4"]
)
def test_unsafe_keys_are_refused_and_nothing_is_written(
    store_factory: Callable[[], ObjectStore], store: ObjectStore, tmp_path: Path, key: str
) -> None:
    source = write(tmp_path, "src", b"payload")
    with pytest.raises(InvalidKeyError):
        store.put_file(BUCKET, key, source)
    with pytest.raises(InvalidKeyError):
        store.head(BUCKET, key)
    assert list(store.list(BUCKET)) == []
    assert not (tmp_path / "escape.mp4").exists()


@pytest.mark.parametrize(
    "key",
    [
        "x" * 255,  # a whole file name: the store may add nothing to it (no sidecar suffix, no temp suffix)
        "é" * 127 + "x",  # 255 bytes of UTF-8
        "f" * 255 + "/" + "g" * 251 + ".mp4",  # as a folder too, as the outputs under KEY/ make it
    ],
)
def test_a_key_segment_as_long_as_a_file_name_round_trips(store: ObjectStore, tmp_path: Path, key: str) -> None:
    store.put_stream(BUCKET, key, io.BytesIO(b"long"), metadata={"source-etag": "e"})
    head = store.head(BUCKET, key)
    assert head is not None and dict(head.metadata) == {"source-etag": "e"}
    store.get_file(BUCKET, key, tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == b"long"
    assert [o.key for o in store.list(BUCKET)] == [key]
    store.delete(BUCKET, key)
    assert list(store.list(BUCKET)) == []


@pytest.mark.parametrize("first", ["victim.mp4", "victim.mp4.vc-meta.json/x.mp4"])
def test_keys_that_look_like_the_stores_own_names_are_independent(
    store: ObjectStore, tmp_path: Path, first: str
) -> None:
    """Both orders: neither key's object (or metadata) may block or change the other's."""
    keys = [first, *({"victim.mp4", "victim.mp4.vc-meta.json/x.mp4"} - {first})]
    for key in keys:
        store.put_file(BUCKET, key, write(tmp_path, "src", key.encode()), metadata={"k": str(len(key))})
    for key in keys:
        head = store.head(BUCKET, key)
        assert head is not None and head.size == len(key) and dict(head.metadata) == {"k": str(len(key))}
    assert sorted(o.key for o in store.list(BUCKET)) == sorted(keys)
    store.delete(BUCKET, keys[0])
    assert [o.key for o in store.list(BUCKET)] == [keys[1]]
    store.put_file(BUCKET, keys[0], write(tmp_path, "src", b"again"))
    assert store.head(BUCKET, keys[0]) is not None and store.head(BUCKET, keys[1]) is not None


def test_keys_are_stored_as_given_nfd_included(store: ObjectStore, tmp_path: Path) -> None:
    """A store does not normalise: an output is written under its source's key exactly as S3 gave it (new
    uploads are normalised before they reach a store: storage.keys.upload_key)."""
    nfd, nfc = "cafe\u0301.mp4", "caf\u00e9.mp4"
    store.put_file(BUCKET, nfd, write(tmp_path, "src", b"nfd"))
    assert [o.key for o in store.list(BUCKET)] == [nfd]
    assert store.head(BUCKET, nfd) is not None and store.head(BUCKET, nfc) is None


def test_missing_objects_and_buckets(store: ObjectStore, tmp_path: Path) -> None:
    assert store.head(BUCKET, "missing.mp4") is None
    with pytest.raises(ObjectNotFoundError):
        store.get_file(BUCKET, "missing.mp4", tmp_path / "dst")
    with pytest.raises(BucketNotFoundError):
        store.put_file("no-such-bucket", "a.mp4", write(tmp_path, "src", b"x"))
    with pytest.raises(BucketNotFoundError):
        list(store.list("no-such-bucket"))


def test_list_filters_by_prefix_in_key_order(store: ObjectStore, tmp_path: Path) -> None:
    source = write(tmp_path, "src", b"x")
    for key in ["b.mp4", "a/2.mp4", "a/1.mp4", "c.txt"]:
        store.put_file(BUCKET, key, source)
    assert [o.key for o in store.list(BUCKET)] == ["a/1.mp4", "a/2.mp4", "b.mp4", "c.txt"]
    assert [o.key for o in store.list(BUCKET, "a/")] == ["a/1.mp4", "a/2.mp4"]


def test_a_prefix_may_end_anywhere_in_a_key(store: ObjectStore, tmp_path: Path) -> None:
    source = write(tmp_path, "src", b"x")
    for key in ["talks/2024/talk.mp4", "talks/2024/talk.en.vtt", "talks/2024x/talk.mp4", "talks.mp4", "b/talk.mp4"]:
        store.put_file(BUCKET, key, source)
    assert [o.key for o in store.list(BUCKET, "talks/2024/talk.")] == ["talks/2024/talk.en.vtt", "talks/2024/talk.mp4"]
    assert [o.key for o in store.list(BUCKET, "talks/2024")] == [
        "talks/2024/talk.en.vtt",
        "talks/2024/talk.mp4",
        "talks/2024x/talk.mp4",
    ]
    assert [o.key for o in store.list(BUCKET, "talks")] == [
        "talks.mp4",  # "." sorts before "/"
        "talks/2024/talk.en.vtt",
        "talks/2024/talk.mp4",
        "talks/2024x/talk.mp4",
    ]
    assert list(store.list(BUCKET, "talks/2025/")) == []
    assert list(store.list(BUCKET, "talks/../b/")) == []


def test_read_range_streams_the_asked_bytes(store: ObjectStore, tmp_path: Path) -> None:
    content = bytes(range(256)) * 12_000  # 3 MB: several chunks
    store.put_file(BUCKET, "ranged.mp4", write(tmp_path, "src", content))
    assert b"".join(store.read_range(BUCKET, "ranged.mp4", 0, len(content))) == content
    assert b"".join(store.read_range(BUCKET, "ranged.mp4", 1000, 2_000_000)) == content[1000:2_001_000]
    assert b"".join(store.read_range(BUCKET, "ranged.mp4", len(content) - 5, 100)) == content[-5:]
    assert b"".join(store.read_range(BUCKET, "ranged.mp4", 10, 0)) == b""
    assert all(len(chunk) <= 1024 * 1024 for chunk in store.read_range(BUCKET, "ranged.mp4", 0, len(content)))
    with pytest.raises(ObjectNotFoundError):
        store.read_range(BUCKET, "missing.mp4", 0, 10)


def test_delete_is_idempotent(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file(BUCKET, "gone.mp4", write(tmp_path, "src", b"x"))
    store.delete(BUCKET, "gone.mp4")
    store.delete(BUCKET, "gone.mp4")
    assert store.head(BUCKET, "gone.mp4") is None


def test_url_names_bucket_and_key(store: ObjectStore) -> None:
    assert store.url(BUCKET, "a b.mp4") == f"s3://{BUCKET}/a b.mp4"


def test_readers_never_see_half_an_object(
    store_factory: Callable[[], ObjectStore], store: ObjectStore, tmp_path: Path
) -> None:
    size = 2 * 1024 * 1024
    versions = [write(tmp_path, f"v{c}", bytes([c]) * size) for c in (ord("a"), ord("b"))]
    store.put_file(BUCKET, "hot.mp4", versions[0])
    stop = threading.Event()

    def writer() -> None:
        own = store_factory()
        i = 0
        while not stop.is_set():
            own.put_file(BUCKET, "hot.mp4", versions[i % 2])
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for n in range(15):
            store.get_file(BUCKET, "hot.mp4", tmp_path / f"read{n}")
            content = (tmp_path / f"read{n}").read_bytes()
            assert len(content) == size and content in (b"a" * size, b"b" * size)
    finally:
        stop.set()
        thread.join()


def test_a_store_notifies_a_topic_itself_only_where_it_has_notification_targets(store: ObjectStore) -> None:
    if store.notification_targets:  # S3 -> SNS: set up for real in tests/integration/test_aws_pipeline.py
        steps = type(store).describe_notifications(BUCKET, (".mp4",), "topic")
        assert steps and all(BUCKET in step for step in steps), steps
        return
    with pytest.raises(ConfigError):
        store.notify_topic(BUCKET, (".mp4",), "arn:aws:sns:us-east-1:123456789012:topic")
    with pytest.raises(ConfigError):
        type(store).describe_notifications(BUCKET, (".mp4",), "topic")
