"""What only the filesystem store promises beyond the contract: events, hand-dropped files, containment."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from videoconverter.errors import InvalidKeyError
from videoconverter.events import ObjectCreated
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
