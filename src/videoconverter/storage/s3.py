"""The Amazon S3 object store (or any S3-compatible one: moto's server, MinIO). URL: ``s3://``.

Uploads are boto3 managed transfers: one request below :data:`MULTIPART_THRESHOLD_BYTES`, a multipart upload of
:data:`PART_BYTES` parts above it. A file is sent from disk by up to :data:`MAX_CONCURRENT_PARTS` threads; a
stream is read one part at a time and at most :data:`MAX_PARTS_IN_MEMORY` parts wait in memory, so memory stays
flat however large the object (for a stream of unknown size, 10,000 parts of 8 MiB: about 78 GiB at most).
Downloads are one GET streamed to a temporary file beside the destination and renamed into place, so the bytes
written are the one version whose info is returned; a broken stream resumes where it stopped (same ETag only).
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)

from videoconverter.aws import provision
from videoconverter.aws.clients import DEFAULT_REGION, SNS_TOPIC_ARN, AwsLocation, error_code
from videoconverter.errors import (
    BucketNotFoundError,
    ConfigError,
    ObjectNotFoundError,
    TransientError,
    VideoConverterError,
)
from videoconverter.events import ObjectCreated, new_sequencer
from videoconverter.logs import redact
from videoconverter.storage.base import Notification, ObjectInfo, ProgressCallback
from videoconverter.storage.keys import validate_bucket, validate_key
from videoconverter.storage.s3_errors import no_bucket, translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
MULTIPART_THRESHOLD_BYTES = 8 * MIB
PART_BYTES = 8 * MIB
MAX_CONCURRENT_PARTS = 8  # threads sending parts of one upload
MAX_PARTS_IN_MEMORY = 2  # parts of a *stream* read ahead and held in memory while they are sent
DOWNLOAD_CHUNK_BYTES = MIB
DOWNLOAD_ATTEMPTS = 5  # GETs per download: the first, then resumptions of a broken stream


class S3Store:
    """Object store on S3. URL: ``s3://`` or ``s3://?endpoint_url=http://host:port&region=eu-west-1``.

    Without parameters boto3's environment applies (``AWS_ENDPOINT_URL``, ``AWS_REGION``, credentials chain).
    ``notifications`` are called after each put that matches, as the filesystem store does: that is how an
    S3-compatible store (MinIO, Ceph, R2) feeds the SQLite or RabbitMQ broker. With a broker whose topics are SNS
    topics the listener only records the queued jobs (see :func:`videoconverter.pipeline.open_services`): S3
    delivers the ObjectCreated event itself, through the bucket notification that :meth:`notify_topic` sets up at
    ``videoconverter provision``. Objects written by other tools reach the pipeline only through S3's notification,
    or through ``videoconverter up``'s reconciliation.

    An :class:`ObjectInfo`'s ``etag`` is S3's ETag without quotes: the hex MD5 of the content for an object
    uploaded in one request, but ``"<hex>-<parts>"`` (an MD5 of the parts' MD5s) for a multipart upload, i.e. any
    object over :data:`MULTIPART_THRESHOLD_BYTES`. Compare ETags only with ETags, never with a hash of the bytes.
    User metadata keys come back lowercased (S3 sends them as HTTP headers); values should be ASCII. Objects
    from :meth:`list` carry no metadata (S3 lists do not return it): :meth:`head` one to read it.
    """

    notification_targets = frozenset({SNS_TOPIC_ARN})
    embedded = False

    def __init__(
        self, client: S3Client, region: str = DEFAULT_REGION, notifications: tuple[Notification, ...] = ()
    ) -> None:
        self._client = client
        self._region = region
        self._transfer_config = _transfer_config()
        self.notifications = notifications

    @classmethod
    def from_url(cls, url: str, notifications: tuple[Notification, ...] = ()) -> S3Store:
        """The store ``url`` names, calling ``notifications`` after matching puts (see the class docstring)."""
        location = AwsLocation.from_url(url)
        if location.name:
            raise ConfigError(
                f"the storage URL {redact(url)!r} names {location.name!r}: an s3:// storage URL names no bucket "
                "(buckets come from the configuration); use s3:// or s3://?endpoint_url=...&region=..."
            )
        return cls(location.client("s3"), location.region, notifications)

    @classmethod
    def describe_notifications(cls, bucket: str, suffixes: tuple[str, ...], topic: str) -> list[str]:
        return provision.steps(bucket, suffixes, topic)

    @property
    def endpoint(self) -> str:
        """Where requests go (for messages; credentials never appear in it)."""
        return redact(str(self._client.meta.endpoint_url))

    # --- buckets ----------------------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` in the store's region; succeed silently when this account already owns it."""
        validate_bucket(bucket)
        where: dict[str, Any] = {}
        if self._region != "us-east-1":  # the one region that refuses to be named
            where = {"CreateBucketConfiguration": {"LocationConstraint": self._region}}
        with translated(self.endpoint, bucket):
            try:
                self._client.create_bucket(Bucket=bucket, **where)
            except ClientError as exc:
                if error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def bucket_exists(self, bucket: str) -> bool:
        """Whether ``bucket`` exists (a HEAD request)."""
        validate_bucket(bucket)
        try:
            with translated(self.endpoint, bucket):
                self._client.head_bucket(Bucket=bucket)
        except BucketNotFoundError:
            return False
        return True

    # --- writing ----------------------------------------------------------------------------------------

    def put_file(
        self,
        bucket: str,
        key: str,
        source: Path,
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Upload the file at ``source`` (multipart above 8 MiB, parts sent concurrently from disk)."""
        validate_bucket(bucket)
        validate_key(key)
        tracker = _Progress(progress, os.stat(source).st_size)
        with translated(self.endpoint, bucket, key):
            self._client.upload_file(
                str(source), bucket, key, ExtraArgs=self._extra_args(key, metadata),
                Callback=tracker, Config=self._transfer_config,
            )  # fmt: skip
        return self._uploaded(bucket, key, tracker)

    def put_stream(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        metadata: Mapping[str, str] | None = None,
        size_hint: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Upload ``stream`` until EOF, one part at a time: at most a few parts are ever held in memory."""
        validate_bucket(bucket)
        validate_key(key)
        tracker = _Progress(progress, size_hint)
        with translated(self.endpoint, bucket, key):
            self._client.upload_fileobj(
                stream, bucket, key, ExtraArgs=self._extra_args(key, metadata),
                Callback=tracker, Config=self._transfer_config,
            )  # fmt: skip
        return self._uploaded(bucket, key, tracker)

    def _extra_args(self, key: str, metadata: Mapping[str, str] | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"Metadata": dict(metadata or {})}
        content_type, _encoding = mimetypes.guess_type(key, strict=False)
        if content_type:
            extra["ContentType"] = content_type
        return extra

    def _uploaded(self, bucket: str, key: str, tracker: _Progress) -> ObjectInfo:
        info = self.head(bucket, key)
        if info is None:  # deleted by someone else at once: S3 is strongly consistent, so nothing else explains it
            raise ObjectNotFoundError(f"s3://{bucket}/{key} vanished right after its upload")
        tracker.finish(info.size)
        for notification in self.notifications:
            if notification.matches(bucket, key):
                notification.listener(ObjectCreated(bucket, key, info.size, info.etag, new_sequencer()))
        return info

    # --- reading ----------------------------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's info (one HEAD request), or None. Raises ``BucketNotFoundError`` for a missing bucket."""
        validate_bucket(bucket)
        validate_key(key)
        try:
            with translated(self.endpoint, bucket, key):
                response = self._client.head_object(Bucket=bucket, Key=key)
        except ObjectNotFoundError:
            # A HEAD's 404 has no body to tell a missing key from a missing bucket.
            if not self.bucket_exists(bucket):
                raise BucketNotFoundError(no_bucket(bucket)) from None
            return None
        return _info(bucket, key, response)

    def read_range(self, bucket: str, key: str, start: int, length: int) -> Iterator[bytes]:
        """One ranged GET, streamed."""
        validate_bucket(bucket)
        validate_key(key)
        if length <= 0:
            if self.head(bucket, key) is None:
                raise ObjectNotFoundError(f"no object s3://{bucket}/{key}")
            return iter(())
        try:
            with translated(self.endpoint, bucket, key):
                response = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
        except VideoConverterError as exc:
            if error_code(exc.__cause__ or exc) == "InvalidRange":  # starts past the end: nothing to read
                return iter(())
            raise
        return _body_chunks(response["Body"])

    def get_file(
        self, bucket: str, key: str, destination: Path, progress: ProgressCallback | None = None
    ) -> ObjectInfo:
        """Download to ``destination`` atomically: a temporary file beside it is renamed into place when whole."""
        validate_bucket(bucket)
        validate_key(key)
        destination = Path(destination)
        fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                info = self._download(bucket, key, out, progress)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, destination)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return info

    def _download(self, bucket: str, key: str, out: IO[bytes], progress: ProgressCallback | None) -> ObjectInfo:
        info: ObjectInfo | None = None
        raw_etag = ""
        done = 0
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                with translated(self.endpoint, bucket, key):
                    if info is None:
                        response = self._client.get_object(Bucket=bucket, Key=key)
                        info = _info(bucket, key, response)
                        raw_etag = response["ETag"]
                    else:  # resume the very same version where the broken stream stopped
                        response = self._client.get_object(
                            Bucket=bucket, Key=key, Range=f"bytes={done}-", IfMatch=raw_etag
                        )
            except VideoConverterError as exc:
                replaced = error_code(exc.__cause__ or exc) in {"PreconditionFailed", "412"}
                if not replaced or attempt == DOWNLOAD_ATTEMPTS:
                    raise
                info, done = None, 0  # replaced meanwhile: start again on the new version
                out.seek(0)
                out.truncate()
                continue
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, info.size)
                return info
            except (HTTPClientError, IncompleteReadError) as exc:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise TransientError(
                        f"download of s3://{bucket}/{key} from {self.endpoint} broke off after {done} bytes, "
                        f"{attempt} times: {redact(str(exc))}"
                    ) from exc
            finally:
                body.close()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` in key order (S3 lists in UTF-8 byte order, which is code point order).

        One request per 1,000 objects; the infos carry no metadata.
        """
        validate_bucket(bucket)
        paginator = self._client.get_paginator("list_objects_v2")
        with translated(self.endpoint, bucket):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        bucket, item["Key"], item["Size"], item["ETag"].strip('"'), item["LastModified"].timestamp()
                    )

    def delete(self, bucket: str, key: str) -> None:
        """Delete the object; S3 succeeds silently when there is none."""
        validate_bucket(bucket)
        validate_key(key)
        with translated(self.endpoint, bucket, key):
            self._client.delete_object(Bucket=bucket, Key=key)

    def url(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"

    def notify_topic(self, bucket: str, suffixes: tuple[str, ...], topic_address: str) -> None:
        """Point the bucket's ``s3:ObjectCreated:*`` notifications at the SNS topic whose ARN is ``topic_address``."""
        with translated(self.endpoint, validate_bucket(bucket)):
            provision.wire_notifications(self._client, bucket, suffixes, topic_address)


def _body_chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(DOWNLOAD_CHUNK_BYTES)
    finally:
        body.close()


class _Progress:
    """boto3's ``Callback(bytes_since_last_call)`` (from several threads; negative when a part is retried) as a
    ProgressCallback that only ever moves forward."""

    def __init__(self, report: ProgressCallback | None, total: int | None) -> None:
        self._report = report
        self._total = total
        self._lock = threading.Lock()
        self._done = 0
        self._reported = 0

    def __call__(self, bytes_amount: int) -> None:
        with self._lock:
            self._done += bytes_amount
            if self._report and self._done > self._reported:
                self._reported = self._done
                self._report(self._done, self._total)

    def finish(self, size: int) -> None:
        with self._lock:
            if self._report and self._reported < size:
                self._reported = size
                self._report(size, self._total)


def _transfer_config() -> TransferConfig:
    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=MAX_CONCURRENT_PARTS,
        preferred_transfer_client="classic",
    )
    # Not a constructor argument of boto3's TransferConfig, but honoured by its transfer manager.
    config.max_in_memory_upload_chunks = MAX_PARTS_IN_MEMORY
    return config


def _info(bucket: str, key: str, response: Mapping[str, Any]) -> ObjectInfo:
    """From a HEAD's or a whole GET's response."""
    etag, modified = str(response["ETag"]).strip('"'), response["LastModified"].timestamp()
    return ObjectInfo(bucket, key, response["ContentLength"], etag, modified, dict(response.get("Metadata", {})))
