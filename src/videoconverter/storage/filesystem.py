"""The embedded object store: a bucket is a folder under a root directory.

Layout under the root: ``<bucket>/<key>`` holds the content; ``.sidecars/<bucket>/<hh>/<sha256 of key>.json`` its
ETag and user metadata; ``.tmp/`` the files being written. Content is written to ``.tmp`` and renamed into place,
so a reader never sees half an object. The sidecar names the key and the inode it describes; a file dropped into
a bucket by hand (no sidecar) is still served, with its ETag computed from its bytes.

Sidecars are named by a hash of the key, not by the key: no key can reach them (``a.mp4.vc-meta.json/x.mp4`` once
made a folder where the sidecar of ``a.mp4`` had to go), and their names add nothing to a key's segments, so each
segment may use the filesystem's whole name limit (NAME_MAX, 255 bytes on most), checked before any byte is
written. Stores made before this layout kept sidecars at ``.meta/<bucket>/<key>.vc-meta.json``: those are read
when a key has no new sidecar (the inode check still applies), and removed when their object is written again
or deleted; nothing is migrated in bulk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from videoconverter.errors import BucketNotFoundError, ConfigError, InvalidKeyError, ObjectNotFoundError
from videoconverter.events import ObjectCreated, new_sequencer
from videoconverter.registry import path_from_url
from videoconverter.storage.base import Notification, ObjectInfo, ProgressCallback
from videoconverter.storage.keys import MAX_SEGMENT_BYTES, check_segments, validate_bucket, validate_key

CHUNK_BYTES = 1024 * 1024
KERNEL_CHUNK_BYTES = 64 * CHUNK_BYTES  # per copy_file_range call: a progress callback between them
#: copy_file_range cannot copy between these files (another filesystem on an old kernel, no support at all).
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP}
SIDECARS = ".sidecars"
LEGACY_SIDECARS = ".meta"  # the layout before sidecars were named by hash: read only
log = logging.getLogger(__name__)


class FileSystemStore:
    """Object store on a local (or shared) filesystem. URL: ``file://PATH``.

    Only the process that writes announces a write (its notifications' listeners): no bucket notifies a topic.
    """

    notification_targets: frozenset[str] = frozenset()
    embedded = True

    def __init__(self, root: Path, notifications: tuple[Notification, ...] = ()) -> None:
        self.root = Path(root).absolute()
        self.notifications = notifications
        for private in (SIDECARS, ".tmp", ".locks"):
            (self.root / private).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_segment_bytes = _name_max(self.root)
        self._legacy_sidecars = (self.root / LEGACY_SIDECARS).is_dir()  # a store made before sidecars had hashes

    @classmethod
    def from_url(cls, url: str, notifications: tuple[Notification, ...] = ()) -> FileSystemStore:
        """The store in the folder ``url`` names (``file://PATH``), created if missing."""
        return cls(path_from_url(url), notifications)

    @classmethod
    def describe_notifications(cls, bucket: str, suffixes: tuple[str, ...], topic: str) -> list[str]:
        raise ConfigError(f"a file:// bucket cannot notify a topic itself ({bucket} -> {topic})")

    # --- buckets ----------------------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        self._bucket_dir(validate_bucket(bucket)).mkdir(parents=True, exist_ok=True)

    def bucket_exists(self, bucket: str) -> bool:
        return self._bucket_dir(validate_bucket(bucket)).is_dir()

    # --- writing ----------------------------------------------------------------------------------------

    def put_file(
        self,
        bucket: str,
        key: str,
        source: Path,
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        with open(source, "rb") as stream:
            return self.put_stream(bucket, key, stream, metadata, os.fstat(stream.fileno()).st_size, progress)

    def put_stream(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        metadata: Mapping[str, str] | None = None,
        size_hint: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        target = self._object_path(bucket, key)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / ".tmp", prefix="put-")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if progress:
                        progress(size, size_hint)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            info = self._commit(bucket, key, tmp, target, digest.hexdigest(), size, dict(metadata or {}))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._notify(info)
        return info

    def _commit(
        self, bucket: str, key: str, tmp: Path, target: Path, etag: str, size: int, metadata: dict[str, str]
    ) -> ObjectInfo:
        stat = tmp.stat()
        sidecar = {"key": key, "etag": etag, "size": size, "inode": stat.st_ino, "metadata": metadata}
        meta_path = self._meta_path(bucket, key)
        with self._bucket_lock(bucket):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise InvalidKeyError(f"key {key!r} conflicts with an existing object that is a prefix of it") from exc
            if target.is_dir():
                raise InvalidKeyError(f"key {key!r} conflicts with existing objects under {key}/")
            meta_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(meta_path, json.dumps(sidecar))
            # Sidecar first, content second: in between, a reader sees an inode mismatch and recomputes.
            os.replace(tmp, target)
            self._drop_legacy_sidecar(bucket, key)
        return ObjectInfo(bucket, key, size, etag, stat.st_mtime, metadata)

    def _notify(self, info: ObjectInfo) -> None:
        for notification in self.notifications:
            if notification.matches(info.bucket, info.key):
                notification.listener(ObjectCreated(info.bucket, info.key, info.size, info.etag, new_sequencer()))

    # --- reading ----------------------------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._object_path(bucket, key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        sidecar = self._read_sidecar(bucket, key)
        if sidecar and sidecar.get("inode") == stat.st_ino and sidecar.get("size") == stat.st_size:
            return ObjectInfo(bucket, key, stat.st_size, sidecar["etag"], stat.st_mtime, sidecar["metadata"])
        return ObjectInfo(bucket, key, stat.st_size, _md5_of(path), stat.st_mtime, {})

    def get_file(
        self, bucket: str, key: str, destination: Path, progress: ProgressCallback | None = None
    ) -> ObjectInfo:
        path = self._object_path(bucket, key)
        try:
            # Open once: the content read is the one whose info is returned, even if replaced meanwhile.
            source = open(path, "rb")  # noqa: SIM115
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(f"no object s3://{bucket}/{key}") from exc
        with source:
            stat = os.fstat(source.fileno())
            sidecar = self._read_sidecar(bucket, key)
            if sidecar is not None and sidecar.get("inode") != stat.st_ino:
                sidecar = None  # it describes another version of the key
            with open(destination, "wb") as out:
                if sidecar is not None and sidecar.get("size") == stat.st_size:
                    # This store never changes a file in place (a write renames a new inode over it), so the
                    # sidecar's ETag is the content's: the kernel copies it, and nothing is hashed again.
                    done, etag = _copy_in_kernel(source, out, stat.st_size, progress), str(sidecar["etag"])
                else:  # a file put here by hand (or rewritten in place): its ETag from the bytes copied
                    done, etag = _copy_hashing(source, out, stat.st_size, progress)
        metadata = sidecar["metadata"] if sidecar is not None else {}
        return ObjectInfo(bucket, key, done, etag, stat.st_mtime, metadata)

    def read_range(self, bucket: str, key: str, start: int, length: int) -> Iterator[bytes]:
        path = self._object_path(bucket, key)
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(f"no object s3://{bucket}/{key}") from exc
        return _read_chunks(source, start, length)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._bucket_dir(validate_bucket(bucket))
        if not base.is_dir():
            raise BucketNotFoundError(f"bucket {bucket!r} does not exist: run `videoconverter provision` first")
        for key in sorted(self._listed_keys(bucket, base, prefix)):
            info = self.head(bucket, key)
            if info is not None:
                yield info

    def _listed_keys(self, bucket: str, base: Path, prefix: str = "") -> Iterator[str]:
        """The keys of the regular files under ``base`` that start with ``prefix``. A symbolic link (this store
        never makes one: someone planted it) or a name that is not a valid key is skipped with a warning, so one
        bad entry does not make the whole bucket unlistable.

        Only folders that can hold such keys are read: a worker looks for an upload's caption files next to it
        (``talk.``) once or twice per job, and that must not cost a walk of every upload in the bucket.
        """
        top = _prefix_folder(base, prefix)
        for dirpath, dirs, files in os.walk(top):  # does not follow links to folders
            relative = Path(dirpath).relative_to(base).as_posix()
            folder = "" if relative == "." else relative + "/"
            dirs[:] = [name for name in dirs if _may_hold(folder + name + "/", prefix)]  # prunes the walk
            for name in dirs:
                if Path(dirpath, name).is_symlink():
                    log.warning("bucket %s: skipping %r, a symbolic link to a folder", bucket, folder + name)
            for name in files:
                key = folder + name
                if not key.startswith(prefix):
                    continue
                if Path(dirpath, name).is_symlink():
                    log.warning("bucket %s: skipping %r, a symbolic link, not an object", bucket, key)
                    continue
                try:
                    yield validate_key(key)
                except InvalidKeyError as exc:
                    log.warning("skipping a file in bucket %s: %s", bucket, exc.message)

    def delete(self, bucket: str, key: str) -> None:
        with self._bucket_lock(bucket):  # puts create folders under the same lock
            path, meta_path = self._object_path(bucket, key), self._meta_path(bucket, key)
            path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            # As on S3, a "folder" exists only while objects are under it: a later key of the same name fits.
            _remove_empty_parents(path.parent, self._bucket_dir(bucket))
            self._drop_legacy_sidecar(bucket, key)

    def url(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def notify_topic(self, bucket: str, suffixes: tuple[str, ...], topic_address: str) -> None:
        raise ConfigError(f"a file:// bucket cannot notify a topic itself ({bucket} -> {topic_address})")

    # --- paths ------------------------------------------------------------------------------------------

    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / bucket

    def _object_path(self, bucket: str, key: str) -> Path:
        base = self._bucket_dir(validate_bucket(bucket))
        if not base.is_dir():
            raise BucketNotFoundError(f"bucket {bucket!r} does not exist: run `videoconverter provision` first")
        path = base / check_segments(validate_key(key), self.max_segment_bytes)
        # Defence in depth against symlinks planted inside a bucket folder.
        if not path.resolve().is_relative_to(base.resolve()):
            raise InvalidKeyError(f"key {key!r} resolves outside its bucket")
        return path

    def _meta_path(self, bucket: str, key: str) -> Path:
        """Where ``key``'s sidecar goes: named by a hash, so that no key's path can be, or be under, a sidecar's."""
        digest = hashlib.sha256(validate_key(key).encode("utf-8", "surrogatepass")).hexdigest()
        return self.root / SIDECARS / bucket / digest[:2] / f"{digest}.json"

    def _legacy_meta_path(self, bucket: str, key: str) -> Path:
        return self.root / LEGACY_SIDECARS / bucket / f"{key}.vc-meta.json"

    def _read_sidecar(self, bucket: str, key: str) -> dict[str, Any] | None:
        paths = [self._meta_path(bucket, key)]
        if self._legacy_sidecars:
            paths.append(self._legacy_meta_path(bucket, key))
        for path in paths:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(loaded, dict) and loaded.get("key", key) == key:
                return loaded
        return None

    def _drop_legacy_sidecar(self, bucket: str, key: str) -> None:
        """Remove the sidecar an older version of this store kept for ``key``, if any (called under the lock)."""
        if not self._legacy_sidecars:
            return
        legacy = self._legacy_meta_path(bucket, key)
        with contextlib.suppress(OSError):  # none (the usual case), or a name too long to have ever existed
            legacy.unlink()
            _remove_empty_parents(legacy.parent, self.root / LEGACY_SIDECARS / bucket)

    @contextlib.contextmanager
    def _bucket_lock(self, bucket: str) -> Iterator[None]:
        with open(self.root / ".locks" / f"{bucket}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _name_max(root: Path) -> int:
    """The longest file name the filesystem under ``root`` takes, in bytes."""
    try:
        return int(os.pathconf(root, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return MAX_SEGMENT_BYTES


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sidecar-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_chunks(source: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with source:
        source.seek(start)
        left = length
        while left > 0 and (chunk := source.read(min(CHUNK_BYTES, left))):
            left -= len(chunk)
            yield chunk


def _copy_hashing(source: BinaryIO, out: BinaryIO, total: int, progress: ProgressCallback | None) -> tuple[int, str]:
    """Copy through this process, hashing: (bytes copied, their MD5)."""
    digest = hashlib.md5(usedforsecurity=False)
    done = 0
    while chunk := source.read(CHUNK_BYTES):
        out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)
    return done, digest.hexdigest()


def _copy_in_kernel(source: BinaryIO, out: BinaryIO, total: int, progress: ProgressCallback | None) -> int:
    """Copy without the bytes passing through this process (``copy_file_range``: a reflink where the filesystem
    shares extents, an in-kernel copy elsewhere); where the kernel cannot, through this process. Bytes copied."""
    done = 0
    try:
        while True:
            copied = os.copy_file_range(source.fileno(), out.fileno(), KERNEL_CHUNK_BYTES)
            if not copied:
                return done
            done += copied
            if progress:
                progress(done, total)
    except OSError as exc:
        if done or exc.errno not in _NO_KERNEL_COPY:
            raise
    return _copy_hashing(source, out, total, progress)[0]


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_relative_to(stop):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or already gone): the folders above are not empty either
        folder = folder.parent


def _may_hold(folder: str, prefix: str) -> bool:
    """Whether keys under ``folder`` (ending in ``/``) can start with ``prefix``."""
    return folder.startswith(prefix) or prefix.startswith(folder)


def _prefix_folder(base: Path, prefix: str) -> Path:
    """The deepest folder of ``base`` that holds every key starting with ``prefix``: the prefix's whole segments
    (``talks/2024/ta`` -> ``talks/2024``) when they are a valid key and a real folder, not a planted link."""
    folder = prefix.rpartition("/")[0]
    if not folder:
        return base
    try:
        top = base / validate_key(folder)
    except InvalidKeyError:
        return base  # no key can be under it; the walk from the top finds none either
    if top.is_dir() and top.resolve() == base.resolve() / folder:
        return top
    return base
