"""What the S3 store does beyond the object store contract, against moto's server over HTTP."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws import MotoServer
from videoconverter.errors import ConfigError, InvalidKeyError, TransientError
from videoconverter.storage.s3 import MAX_PARTS_IN_MEMORY, MIB, PART_BYTES, S3Store
from videoconverter.transcode.samples import GeneratedStream

#: 20 parts: far larger than what the store may hold in memory, (MAX_PARTS_IN_MEMORY + 1) parts (24 MiB).
STREAM_BYTES = 160 * MIB


@pytest.fixture
def bucket(moto_server: MotoServer) -> Iterator[str]:
    """A fresh bucket on the shared moto server, emptied and deleted afterwards."""
    name = f"s3-store-{uuid.uuid4().hex[:12]}"
    yield name
    store = S3Store.from_url(moto_server.url("s3"))
    if store.bucket_exists(name):
        for info in list(store.list(name)):
            store.delete(name, info.key)
        store._client.delete_bucket(Bucket=name)


@pytest.fixture
def store(moto_server: MotoServer, bucket: str) -> S3Store:
    s = S3Store.from_url(moto_server.url("s3"))
    s.create_bucket(bucket)
    return s


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as source:
        while chunk := source.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_large_stream_goes_up_in_parts_with_flat_memory_and_round_trips(
    store: S3Store, bucket: str, tmp_path: Path
) -> None:
    stream = GeneratedStream(STREAM_BYTES)
    seen: list[tuple[int, int | None]] = []
    tracemalloc.start()
    try:
        info = store.put_stream(
            bucket, "big.mp4", stream, metadata={"k": "v"}, size_hint=STREAM_BYTES,
            progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert stream.position == STREAM_BYTES
    assert info.size == STREAM_BYTES and dict(info.metadata) == {"k": "v"}
    parts = re.fullmatch(r"[0-9a-f]{32}-(\d+)", info.etag)
    assert parts, f"expected a multipart ETag, got {info.etag!r}"
    assert int(parts[1]) == -(-STREAM_BYTES // PART_BYTES)
    # Flat memory: a few parts at a time, never the object (20 parts).
    assert peak_bytes < STREAM_BYTES / 4, f"heap peak {peak_bytes / MIB:.1f} MiB"
    assert peak_bytes < (MAX_PARTS_IN_MEMORY + 2) * PART_BYTES, f"heap peak {peak_bytes / MIB:.1f} MiB"
    assert seen[-1] == (STREAM_BYTES, STREAM_BYTES)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    got = store.get_file(bucket, "big.mp4", tmp_path / "big.mp4")
    assert got.etag == info.etag and got.size == STREAM_BYTES
    assert file_md5(tmp_path / "big.mp4") == stream.md5.hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["big.mp4"]  # no temporary file left behind


def test_a_file_over_the_threshold_goes_up_in_parts(store: S3Store, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "src.mp4"
    source.write_bytes(os.urandom(PART_BYTES + 1))
    seen: list[int] = []
    info = store.put_file(bucket, "clip.mp4", source, progress=lambda done, total: seen.append(done))
    assert re.fullmatch(r"[0-9a-f]{32}-2", info.etag)
    assert seen[-1] == PART_BYTES + 1
    store.get_file(bucket, "clip.mp4", tmp_path / "dst.mp4")
    assert file_md5(tmp_path / "dst.mp4") == file_md5(source)


def test_a_key_with_spaces_and_unicode_round_trips(store: S3Store, bucket: str, tmp_path: Path) -> None:
    key = "mes vidéos/été 2024 ✓/clip (1) +%.mp4"
    source = tmp_path / "src"
    source.write_bytes(b"content")
    store.put_file(bucket, key, source)
    assert store.head(bucket, key) is not None
    assert [o.key for o in store.list(bucket, "mes vidéos/")] == [key]
    store.get_file(bucket, key, tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == b"content"
    assert store.url(bucket, key) == f"s3://{bucket}/{key}"


@pytest.mark.parametrize("key", ["../up.mp4", "a//b.mp4", "/abs.mp4", "tab\there.mp4"])
def test_a_bad_key_is_refused_before_any_request(store: S3Store, bucket: str, tmp_path: Path, key: str) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"x")
    with pytest.raises(InvalidKeyError):
        store.put_file(bucket, key, source)
    with pytest.raises(InvalidKeyError):
        store.get_file(bucket, key, tmp_path / "dst")
    assert list(store.list(bucket)) == []


def test_an_unknown_url_parameter_is_a_config_error(moto_server: MotoServer) -> None:
    with pytest.raises(ConfigError, match="unknown parameter"):
        S3Store.from_url(f"{moto_server.url('s3')}&bucket=mine")
    with pytest.raises(ConfigError, match="names no bucket"):
        S3Store.from_url("s3://my-bucket")


def test_an_unreachable_endpoint_is_a_transient_error_naming_it(moto_server: MotoServer) -> None:
    import boto3
    from botocore.config import Config

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = boto3.client("s3", endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}))
    with pytest.raises(TransientError, match=f"cannot reach S3 at {endpoint}") as caught:
        S3Store(client).bucket_exists("some-bucket")
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(caught.value).replace(endpoint, "")
