"""Publishing a multi-file output: its manifest, and a clean-up that touches only the previous version's files."""

from __future__ import annotations

import json
from pathlib import Path

from videoconverter.publish import manifest_name, previous_version, publish, remove_version
from videoconverter.storage.filesystem import FileSystemStore
from videoconverter.transcode.products import OutputFile, Produced

BUCKET = "out"


def make_store(tmp_path: Path) -> FileSystemStore:
    store = FileSystemStore(tmp_path / "root", ())
    store.create_bucket(BUCKET)
    return store


def put(store: FileSystemStore, tmp_path: Path, key: str) -> None:
    source = tmp_path / "content"
    source.write_bytes(key.encode())
    store.put_file(BUCKET, key, source)


def is_upload(name: str) -> bool:
    return name.lower().endswith(".mp4")


def keys(store: FileSystemStore) -> set[str]:
    return {o.key for o in store.list(BUCKET)}


def test_publish_writes_a_manifest_and_names_the_version_on_the_marker(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    files = []
    for name in ("v1/poster.jpg", "v1/thumbnails/00001.jpg", "index.json"):
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(b"x")
        files.append(OutputFile(name, path))
    marker = publish(store, BUCKET, "a.mp4", Produced(tuple(files)), {"source-etag": "e1"}, "v1", tmp_path)
    assert marker.key == "a.mp4/index.json" and marker.metadata["output-version"] == "v1"
    manifest = json.loads(b"".join(store.read_range(BUCKET, f"a.mp4/{manifest_name('v1')}", 0, 10_000)))
    assert manifest["files"] == ["v1/poster.jpg", "v1/thumbnails/00001.jpg", "v1/files.json"]
    assert previous_version(marker.metadata) == "v1"


def test_removing_a_version_deletes_only_what_its_manifest_names(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    for key in ("a.mp4/v1/poster.jpg", "a.mp4/v1/files.json", "a.mp4/v1/clip.mp4/index.json", "a.mp4/v2/poster.jpg"):
        put(store, tmp_path, key)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"files": ["v1/poster.jpg", "v1/files.json", "../b.mp4", "v2/poster.jpg"]}))
    store.put_file(BUCKET, "a.mp4/v1/files.json", manifest)
    assert remove_version(store, BUCKET, "a.mp4", "v1", tmp_path, is_upload) == 2
    # Names outside v1/ in the manifest are ignored; a file it does not name stays.
    assert keys(store) == {"a.mp4/v1/clip.mp4/index.json", "a.mp4/v2/poster.jpg"}


def test_an_output_from_before_manifests_is_cleaned_by_listing_around_other_uploads(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    own = ["k.mp4/v1/720p/init.mp4", "k.mp4/v1/720p/seg_00000.m4s", "k.mp4/v1/poster.jpg"]
    other = ["k.mp4/v1/x.mp4/index.json", "k.mp4/v1/x.mp4/abc/poster.jpg", "k.mp4/other.mp4/index.json"]
    for key in own + other:
        put(store, tmp_path, key)
    assert previous_version({"source-etag": "V1"}) == "v1"  # legacy markers name only their source ETag
    assert remove_version(store, BUCKET, "k.mp4", "v1", tmp_path, is_upload) == len(own)
    assert keys(store) == set(other)
