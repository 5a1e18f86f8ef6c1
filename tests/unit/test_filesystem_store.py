"""What only the filesystem store promises beyond the contract: events, hand-dropped files, containment."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import pytest

from videoconverter.errors import InvalidKeyError
from videoconverter.events import ObjectCreated
from videoconverter.storage import filesystem
from videoconverter.storage.base import Notification
from videoconverter.storage.filesystem import FileSystemStore


def make_store(tmp_path: Path, events: list[ObjectCreated]) -> FileSystemStore:
    store = FileSystemStore(tmp_path / "root", (Notification("in-bucket", (".mp4",), events.append),))
    store.create_bucket("in-bucket")
    store.create_bucket("out-bucket")
    return store


def test_a_put_into_the_notified_bucket_emits_one_event(tmp_path: Path) -> None:
    events: list[ObjectCreated] = []
    store = make_store(tmp_path, events)
    source = tmp_path / "src"
    source.write_bytes(b"video")
    info = store.put_file("in-bucket", "Holiday 1.MP4", source)  # suffixes match in any case
    store.put_file("in-bucket", "notes.txt", source)
    store.put_file("out-bucket", "Holiday 1.mp4", source)
    assert len(events) == 1
    event = events[0]
    assert (event.bucket, event.key, event.size, event.etag) == ("in-bucket", "Holiday 1.MP4", 5, info.etag)
    assert event.event_name == "ObjectCreated:Put" and event.sequencer


def test_sequencers_grow_for_successive_puts(tmp_path: Path) -> None:
    events: list[ObjectCreated] = []
    store = make_store(tmp_path, events)
    source = tmp_path / "src"
    source.write_bytes(b"video")
    for _ in range(3):
        store.put_file("in-bucket", "same.mp4", source)
    assert events[2].is_newer_than(events[1].sequencer) and events[1].is_newer_than(events[0].sequencer)


def test_a_file_dropped_in_by_hand_is_served_with_its_md5(tmp_path: Path) -> None:
    store = make_store(tmp_path, [])
    (tmp_path / "root" / "in-bucket" / "manual.mp4").write_bytes(b"by hand")
    head = store.head("in-bucket", "manual.mp4")
    assert head is not None and head.etag == hashlib.md5(b"by hand").hexdigest() and dict(head.metadata) == {}


def test_a_download_trusts_the_sidecar_only_for_the_file_it_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored object is copied by the kernel with its sidecar's ETag, in steps a progress callback sees; a
    file rewritten in place by hand (the sidecar's size no longer matches) or dropped in is hashed again."""
    monkeypatch.setattr(filesystem, "KERNEL_CHUNK_BYTES", 4)
    store = make_store(tmp_path, [])
    source = tmp_path / "src"
    source.write_bytes(b"stored content")
    put = store.put_file("in-bucket", "clip.mp4", source, metadata={"a": "b"})
    seen: list[int] = []
    got = store.get_file("in-bucket", "clip.mp4", tmp_path / "copy", lambda done, total: seen.append(done))
    assert (tmp_path / "copy").read_bytes() == b"stored content"
    assert (got.etag, got.size, dict(got.metadata)) == (put.etag, 14, {"a": "b"})
    assert seen == [4, 8, 12, 14]
    with open(tmp_path / "root" / "in-bucket" / "clip.mp4", "ab") as inode:  # same inode, new bytes
        inode.write(b" edited")
    edited = store.get_file("in-bucket", "clip.mp4", tmp_path / "copy")
    assert edited.etag == hashlib.md5(b"stored content edited").hexdigest() and dict(edited.metadata) == {"a": "b"}


def test_a_download_copies_through_python_where_the_kernel_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(filesystem.os, "copy_file_range", unsupported)
    store = make_store(tmp_path, [])
    source = tmp_path / "src"
    source.write_bytes(b"stored content")
    put = store.put_file("in-bucket", "clip.mp4", source)
    got = store.get_file("in-bucket", "clip.mp4", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"stored content" and got.etag == put.etag


def test_a_symlink_out_of_the_bucket_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path, [])
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    os.symlink(secret, tmp_path / "root" / "in-bucket" / "link.mp4")
    with pytest.raises(InvalidKeyError):
        store.get_file("in-bucket", "link.mp4", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_a_key_under_an_existing_object_is_a_clear_error(tmp_path: Path) -> None:
    store = make_store(tmp_path, [])
    source = tmp_path / "src"
    source.write_bytes(b"x")
    store.put_file("out-bucket", "a", source)
    with pytest.raises(InvalidKeyError, match="conflicts"):
        store.put_file("out-bucket", "a/b.mp4", source)


def test_a_failed_put_leaves_no_temp_file(tmp_path: Path) -> None:
    store = make_store(tmp_path, [])

    class Broken:
        def read(self, n: int) -> bytes:
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        store.put_stream("out-bucket", "x.mp4", Broken())  # type: ignore[arg-type]
    assert list((tmp_path / "root" / ".tmp").iterdir()) == []
    assert store.head("out-bucket", "x.mp4") is None


def test_a_segment_over_the_file_name_limit_is_refused_before_any_byte_is_read(tmp_path: Path) -> None:
    store = make_store(tmp_path, [])

    class Unread:
        def read(self, n: int) -> bytes:
            raise AssertionError("the body was read before the key was checked")

    for key in ["x" * 256, "a/" + "é" * 128 + "/b.mp4"]:
        with pytest.raises(InvalidKeyError, match="path segment of 256 bytes; the limit is 255"):
            store.put_stream("out-bucket", key, Unread())  # type: ignore[arg-type]
    assert list((tmp_path / "root" / ".tmp").iterdir()) == []
    assert list((tmp_path / "root" / "out-bucket").iterdir()) == []


@pytest.mark.parametrize("first", ["victim.mp4", "victim.mp4.vc-meta.json/x.mp4"])
def test_no_key_reaches_the_metadata_and_no_empty_folder_is_left(tmp_path: Path, first: str) -> None:
    store = make_store(tmp_path, [])
    other = ({"victim.mp4", "victim.mp4.vc-meta.json/x.mp4"} - {first}).pop()
    store.put_stream("out-bucket", first, io.BytesIO(b"1"), metadata={"n": "1"})
    store.put_stream("out-bucket", other, io.BytesIO(b"2"), metadata={"n": "2"})
    store.delete("out-bucket", other)
    store.delete("out-bucket", first)
    assert list((tmp_path / "root" / "out-bucket").iterdir()) == []
    sidecars = [p for p in (tmp_path / "root" / ".sidecars").rglob("*") if p.is_file()]
    assert sidecars == []


def test_sidecars_of_the_previous_layout_are_read_then_replaced(tmp_path: Path) -> None:
    """A data dir made by the previous version: ``.meta/<bucket>/<key>.vc-meta.json`` sidecars."""
    root = tmp_path / "root"
    (root / "out-bucket" / "dir").mkdir(parents=True)
    content = root / "out-bucket" / "dir" / "old.mp4"
    content.write_bytes(b"old bytes")
    legacy = root / ".meta" / "out-bucket" / "dir" / "old.mp4.vc-meta.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(
        json.dumps(
            {"etag": "multipart-etag-2", "size": 9, "inode": content.stat().st_ino, "metadata": {"source-etag": "s"}}
        )
    )
    store = FileSystemStore(root)
    head = store.head("out-bucket", "dir/old.mp4")
    assert head is not None and (head.etag, dict(head.metadata)) == ("multipart-etag-2", {"source-etag": "s"})
    store.put_stream("out-bucket", "dir/old.mp4", io.BytesIO(b"new"), metadata={"v": "2"})
    assert not legacy.exists() and not legacy.parent.exists()  # the old sidecar, and its emptied folder, are gone
    head = store.head("out-bucket", "dir/old.mp4")
    assert head is not None and dict(head.metadata) == {"v": "2"}


def test_a_sidecar_of_the_previous_layout_is_deleted_with_its_object(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "out-bucket").mkdir(parents=True)
    (root / "out-bucket" / "gone.mp4").write_bytes(b"x")
    legacy = root / ".meta" / "out-bucket" / "gone.mp4.vc-meta.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("{}")
    FileSystemStore(root).delete("out-bucket", "gone.mp4")
    assert not legacy.exists()


def store_with_objects(tmp_path: Path, keys: tuple[str, ...]) -> tuple[FileSystemStore, Path]:
    """A store whose bucket ``in-bucket`` holds ``keys``; and that bucket's folder, to plant things in."""
    store = make_store(tmp_path, [])
    source = tmp_path / "src"
    source.write_bytes(b"video")
    for key in keys:
        store.put_file("in-bucket", key, source)
    return store, tmp_path / "root" / "in-bucket"


def test_listing_skips_planted_symlinks_and_bad_names_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, bucket = store_with_objects(tmp_path, ("real.mp4",))
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", bucket / "link.mp4")
    os.symlink(bucket / "real.mp4", bucket / "inside.mp4")  # even one that stays inside the bucket
    os.symlink(tmp_path, bucket / "folder-link")
    os.symlink(tmp_path / "nowhere", bucket / "dangling.mp4")
    (bucket / "new\nline.mp4").write_bytes(b"by hand")
    with caplog.at_level(logging.WARNING, logger="videoconverter.storage.filesystem"):
        assert [o.key for o in store.list("in-bucket")] == ["real.mp4"]
    warnings = " ".join(r.getMessage() for r in caplog.records)
    for name in ("link.mp4", "inside.mp4", "folder-link", "dangling.mp4", "U+000A"):
        assert name in warnings


def test_a_listing_by_prefix_reads_only_the_folders_that_can_hold_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, bucket = store_with_objects(tmp_path, ("talks/talk.mp4", "talks/talk.en.vtt", "other/clip.mp4"))
    os.symlink(tmp_path, bucket / "other" / "planted")  # seen, and warned about, only where the walk goes
    os.symlink(bucket / "talks", bucket / "linked")
    with caplog.at_level(logging.WARNING, logger="videoconverter.storage.filesystem"):
        assert [o.key for o in store.list("in-bucket", "talks/talk.")] == ["talks/talk.en.vtt", "talks/talk.mp4"]
        assert not caplog.records
        assert list(store.list("in-bucket", "linked/")) == []  # a planted link is no folder of the bucket
        assert [o.key for o in store.list("in-bucket")] == ["other/clip.mp4", "talks/talk.en.vtt", "talks/talk.mp4"]
    assert "planted" in " ".join(r.getMessage() for r in caplog.records)
