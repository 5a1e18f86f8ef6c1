"""Object stores: buckets of keyed objects, written atomically, announcing uploads to the ingest.

The URL's scheme picks the backend (:data:`BACKENDS`); its module is imported only when a URL names it, so the
optional dependency (boto3) stays optional.
"""

from videoconverter.registry import Registry
from videoconverter.storage.base import Notification, ObjectInfo, ObjectStore, ObjectStoreBackend

#: URL scheme -> ``module:Class [extra]`` of the object store it opens (the pip extra that installs what it needs).
BACKENDS = Registry[ObjectStoreBackend](
    "storage",
    {"file": "videoconverter.storage.filesystem:FileSystemStore", "s3": "videoconverter.storage.s3:S3Store [aws]"},
)


def open_store(url: str, notifications: tuple[Notification, ...] = ()) -> ObjectStore:
    """The object store ``url`` names, opened by its class's ``from_url``. Every store calls ``notifications``
    after each matching write in this process (see :class:`~videoconverter.storage.base.Notification`)."""
    return BACKENDS.backend_class(url).from_url(url, notifications)


__all__ = ["Notification", "ObjectInfo", "ObjectStore", "ObjectStoreBackend"]
