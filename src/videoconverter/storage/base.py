"""The object store interface: buckets of keyed, immutable-once-written objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, Self

from videoconverter.events import ObjectCreated

#: Called after an object becomes visible in a bucket that has notifications, by the process that wrote it. Where
#: the bucket also notifies a topic itself (S3 to SNS: ``ObjectStore.notify_topic``), that topic announces every
#: write, and the listener need only record what this process wrote.
ObjectCreatedListener = Callable[[ObjectCreated], None]

#: Progress of a long copy: (bytes done, bytes in total or None when unknown).
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str  # hex MD5 of the content, without quotes (S3's single-part ETag)
    last_modified: float  # seconds since the epoch
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """Emit ObjectCreated events for keys in ``bucket`` that end with one of ``suffixes`` (any case)."""

    bucket: str
    suffixes: tuple[str, ...]
    listener: ObjectCreatedListener

    def matches(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.lower().endswith(tuple(s.lower() for s in self.suffixes))


class ObjectStore(Protocol):
    """Buckets of objects. Writes are atomic: a reader sees the whole old object or the whole new one.

    :class:`ObjectStoreBackend` adds how one is opened.
    """

    #: The kinds of topic address (a broker's ``capabilities.topic_address``) that this store's buckets can send
    #: their own ObjectCreated events to: S3's bucket notifications reach SNS topics. Empty where writes are
    #: announced only by the process that writes (the listeners of its :class:`Notification`).
    notification_targets: frozenset[str]
    #: Whether the store is this machine's own (folders): whoever uploads may create its input bucket, so an
    #: upload does not wait for ``provision``. False for a service, where buckets need their owner's rights.
    embedded: bool

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket``; succeed silently if it already exists."""

    def bucket_exists(self, bucket: str) -> bool:
        """Whether ``bucket`` exists."""

    def put_file(
        self,
        bucket: str,
        key: str,
        source: Path,
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Store the file at ``source`` under ``key``, replacing any object there, atomically.

        Then notify the listener of a matching :class:`Notification`. Raises ``InvalidKeyError`` for a bad key
        and ``BucketNotFoundError`` when the bucket does not exist.
        """

    def put_stream(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        metadata: Mapping[str, str] | None = None,
        size_hint: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Like :meth:`put_file`, reading the content from ``stream`` until EOF without holding it in memory."""

    def get_file(
        self, bucket: str, key: str, destination: Path, progress: ProgressCallback | None = None
    ) -> ObjectInfo:
        """Write the object's content to ``destination`` (streamed) and return its info.

        Raises ``ObjectNotFoundError`` when there is no such object.
        """

    def read_range(self, bucket: str, key: str, start: int, length: int) -> Iterator[bytes]:
        """Stream ``length`` bytes of the object from byte ``start`` (0-based), in chunks of at most 1 MiB.

        The object is opened before this returns, so a missing one raises ``ObjectNotFoundError`` at once; the
        bytes come from that one version even if it is replaced meanwhile. A range past the end is cut short.
        """

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""

    def delete(self, bucket: str, key: str) -> None:
        """Remove the object; succeed silently when it does not exist."""

    def url(self, bucket: str, key: str) -> str:
        """A human-readable location of the object (``s3://bucket/key``)."""

    def notify_topic(self, bucket: str, suffixes: tuple[str, ...], topic_address: str) -> None:
        """Have ``bucket`` itself send an ObjectCreated event for every new object whose key ends with one of
        ``suffixes`` to the topic at ``topic_address`` (a broker's ``allow_bucket`` gives it), whoever wrote it.

        Idempotent: replaces what an earlier call set and keeps other notifications. The address must be of a kind
        in :attr:`notification_targets`; a store with none raises ConfigError.
        """


class ObjectStoreBackend(ObjectStore, Protocol):
    """An object store that a URL opens: every class in :data:`videoconverter.storage.BACKENDS`."""

    @classmethod
    def from_url(cls, url: str, notifications: tuple[Notification, ...] = ()) -> Self:
        """Open the store ``url`` names (its scheme chose this class), calling ``notifications``' listeners after
        each matching write. Raises ConfigError when the URL is malformed."""

    @classmethod
    def describe_notifications(cls, bucket: str, suffixes: tuple[str, ...], topic: str) -> list[str]:
        """What :meth:`notify_topic` ensures for ``topic``, in words, without connecting (``provision --dry-run``)."""
