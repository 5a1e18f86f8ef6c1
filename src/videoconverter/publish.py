"""Write a rendition's files to its bucket, the marker last, then remove the files of this key's previous
version, and nothing else.

A multi-file output (an HLS ladder, thumbnails) lives under ``KEY/VERSION/`` with its marker at
``KEY/MARKER``. Other uploads' outputs can live under the same prefix (``holiday.mp4/clip2.mp4`` is a key
of its own), so the previous version is never found by listing a prefix: each version writes a manifest,
``KEY/VERSION/files.json``, naming its files, and the marker's metadata names the version. Clean-up deletes
exactly the names in the previous version's manifest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from videoconverter import telemetry
from videoconverter.errors import InvalidKeyError, ObjectNotFoundError
from videoconverter.events import ObjectCreated
from videoconverter.jobs.log import JobLog
from videoconverter.storage.base import ObjectInfo, ObjectStore
from videoconverter.storage.keys import split_s3_url, validate_key
from videoconverter.transcode.produce import output_key, output_version
from videoconverter.transcode.products import OutputFile, Produced

log = logging.getLogger(__name__)
PUBLISH_THREADS = 8  # a ladder's segments are uploaded side by side (one S3 round trip each)
MANIFEST_NAME = "files.json"
MANIFEST_BYTES_LIMIT = 16 * 1024 * 1024  # a manifest names at most some 100,000 files
VERSION_METADATA = "output-version"  # on the marker: which KEY/VERSION/ the output's files are in


def output_size(store: ObjectStore, url: str) -> int | None:
    """The size of the output at ``url`` (a job's ``output_url``, ``s3://BUCKET/KEY``), for its ``job.done`` event;
    None when there is none or it cannot be read: the size is a courtesy, never worth failing a job over."""
    if not url:
        return None
    try:
        info = store.head(*split_s3_url(url))
    except Exception:
        log.warning("could not read the size of %s", url, exc_info=True)
        return None
    return info.size if info else None


def manifest_name(version: str) -> str:
    return f"{version}/{MANIFEST_NAME}"


def publish(
    store: ObjectStore,
    bucket: str,
    key: str,
    produced: Produced,
    metadata: Mapping[str, str],
    version: str,
    workdir: Path,
) -> ObjectInfo:
    """Write ``produced``'s files under ``key`` in ``bucket``, the marker last with ``metadata``; return the
    marker's info. A multi-file output also gets its manifest (before the marker) and the version's name in
    the marker's metadata."""

    def put(file: OutputFile) -> None:
        store.put_file(bucket, output_key(key, file.name), file.path)

    files = list(produced.files[:-1])
    marker = produced.marker
    if marker.name:
        manifest = workdir / "output-manifest.json"
        names = [f.name for f in files] + [manifest_name(version)]
        manifest.write_text(json.dumps({"version": version, "files": names}))
        files.append(OutputFile(manifest_name(version), manifest))
        metadata = {**metadata, VERSION_METADATA: version}
    with ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix="publish") as pool:
        for _ in pool.map(put, files):
            pass  # every file before the marker, side by side; map re-raises the first failure
    return store.put_file(bucket, output_key(key, marker.name), marker.path, metadata=metadata)


def previous_version(marker_metadata: Mapping[str, str] | None) -> str | None:
    """The version a marker's metadata names (outputs written before manifests existed: from its source ETag)."""
    if not marker_metadata:
        return None
    version = marker_metadata.get(VERSION_METADATA)
    if version:
        return version
    etag = marker_metadata.get("source-etag")
    return output_version(etag) if etag else None


def remove_version(
    store: ObjectStore,
    bucket: str,
    key: str,
    version: str,
    workdir: Path,
    is_other_upload: Callable[[str], bool],
) -> int:
    """Delete the files of ``key``'s output ``version`` (not the marker); return how many were deleted.

    The names come from that version's manifest. An output written before manifests existed has none: then
    the files under ``KEY/VERSION/`` are listed, leaving out any that lie in another upload's folder (a path
    segment before the file's name for which ``is_other_upload`` is true, such as ``clip2.mp4``).
    """
    names = _manifest_names(store, bucket, key, version, workdir)
    if names is None:
        names = _legacy_names(store, bucket, key, version, is_other_upload)
    for name in names:
        store.delete(bucket, output_key(key, name))
    return len(names)


def _manifest_names(store: ObjectStore, bucket: str, key: str, version: str, workdir: Path) -> list[str] | None:
    target = workdir / "previous-manifest.json"
    try:
        info = store.get_file(bucket, output_key(key, manifest_name(version)), target)
    except ObjectNotFoundError:
        return None
    if info.size > MANIFEST_BYTES_LIMIT:
        return []
    try:
        listed = json.loads(target.read_text(encoding="utf-8")).get("files", [])
    except (ValueError, AttributeError):
        return []  # not a manifest of ours: delete nothing
    return _own_names(listed, version)


def _own_names(listed: Sequence[object], version: str) -> list[str]:
    """Only names inside ``VERSION/`` that are valid keys: a manifest never reaches outside its version."""
    names = []
    for name in listed:
        if not isinstance(name, str) or not name.startswith(f"{version}/"):
            continue
        try:
            validate_key(name)
        except InvalidKeyError:
            continue
        names.append(name)
    return names


def _legacy_names(
    store: ObjectStore, bucket: str, key: str, version: str, is_other_upload: Callable[[str], bool]
) -> list[str]:
    prefix = output_key(key, f"{version}/")
    names = []
    for listed in store.list(bucket, prefix):
        relative = listed.key[len(key) + 1 :]
        folders = relative.split("/")[1:-1]  # between VERSION and the file's own name
        if not any(is_other_upload(folder) for folder in folders):
            names.append(relative)
    return names


@dataclass(frozen=True)
class Target:
    """Where a rendition's outputs go, and which keys of its bucket are other uploads' (never removed)."""

    store: ObjectStore
    bucket: str
    rendition: str
    is_upload_key: Callable[[str], bool]


def publish_output(
    target: Target,
    record: ObjectCreated,
    produced: Produced,
    job_log: JobLog,
    workdir: Path,
    extra_metadata: Mapping[str, str] | None = None,
) -> ObjectInfo:
    """Write every file, the marker last with the source's identity (and ``extra_metadata``: the sidecars it
    carries); then remove the files of the version the previous marker named (multi-file outputs only), and
    nothing else under the key."""
    store, bucket = target.store, target.bucket
    marker_key = output_key(record.key, produced.marker.name)
    previous = store.head(bucket, marker_key) if produced.marker.name else None
    metadata = {
        **(extra_metadata or {}),
        "source-etag": record.etag,
        "source-sequencer": record.sequencer,
        "rendition": target.rendition,
    }
    version = output_version(record.etag)
    size = sum(f.path.stat().st_size for f in produced.files)
    written = publish(store, bucket, record.key, produced, metadata, version, workdir)
    telemetry.bytes_out(target.rendition, size)
    job_log.info(
        f"wrote {store.url(bucket, marker_key)} ({written.size} bytes"
        + (f", after {len(produced.files) - 1} other files)" if len(produced.files) > 1 else ")")
    )
    old_version = previous_version(previous.metadata if previous else None)
    if old_version and old_version != version:
        removed = remove_version(store, bucket, record.key, old_version, workdir, target.is_upload_key)
        if removed:
            job_log.info(f"removed {removed} files of an earlier version of this upload")
    return written
