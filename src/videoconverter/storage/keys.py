"""Object-key validation: keys become paths only after passing here.

Two rules: :func:`validate_key` for every operation (what may safely become a path), and :func:`upload_key` for
a new upload (what we let anyone create). A key S3 already holds is used as S3 gives it, even in NFD or with a
format character: refusing it would strand an object someone else wrote. A new key is normalised to NFC, so
that ``café.mp4`` typed on macOS (NFD) and on Linux (NFC) is one object, and it may not contain characters that
make it look like another key. Both stores, the CLI's ``cp`` and the HTTP API's upload build keys through
:func:`upload_key`, so the key an uploader is told is the key of the object, of its event and of its jobs.
"""

from __future__ import annotations

import string
import unicodedata

from videoconverter.errors import ConfigError, InvalidKeyError

MAX_KEY_BYTES = 1024  # as on S3
#: What the outputs of a multi-file rendition add to their upload's key: ``/VERSION/4320p/seg_00001.m4s``,
#: ``/VERSION/thumbnails/00001.jpg`` and the like are under 40 bytes; the rest is headroom (millions of
#: thumbnails get longer numbers). A new upload's key keeps this much of S3's 1024 bytes free.
OUTPUT_SUFFIX_BYTES = 64
MAX_UPLOAD_KEY_BYTES = MAX_KEY_BYTES - OUTPUT_SUFFIX_BYTES
#: A new key's path segments: NAME_MAX of ext4, XFS, APFS and most others, as the file store makes each segment
#: a file or folder name (it adds no suffix to them). S3 has no such limit; uploads keep to it on every store,
#: so that a key that works on one store works on the other.
MAX_SEGMENT_BYTES = 255
#: Unicode categories a new key may not contain, with what they are.
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character (it can make a key look like another)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a lone surrogate (not UTF-8)",
}
_BUCKET_CHARS = frozenset(string.ascii_lowercase + string.digits + ".-")


def split_s3_url(text: str) -> tuple[str, str]:
    """``s3://BUCKET/KEY`` -> (bucket, key); the key may be empty. Raises ConfigError for anything else."""
    if not text.startswith("s3://"):
        raise ConfigError(f"{text!r} is not an s3://BUCKET/KEY location")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"{text!r} names no bucket")
    return bucket, key


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is safe to map onto a filesystem path, else raise InvalidKeyError.

    Refused: empty keys, keys over 1024 UTF-8 bytes, absolute keys, ``.`` or ``..`` segments, empty segments,
    NUL and other control characters (newlines included), and backslashes (a separator on Windows).
    Spaces, ``+``, ``%``, quotes, Unicode and a leading ``-`` are fine: keys never reach a command line.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKeyError(f"object key {key!r} is absolute: keys are relative to their bucket")
    if "\\" in key:
        raise InvalidKeyError(f"object key {key!r} contains a backslash")
    for ch in key:
        category = unicodedata.category(ch)
        if category in {"Cc", "Cs"}:
            raise InvalidKeyError(f"object key {key!r} contains U+{ord(ch):04X}, {REFUSED_CATEGORIES[category]}")
    for segment in key.split("/"):
        if segment in {"", ".", ".."}:
            raise InvalidKeyError(f"object key {key!r} has an empty, '.' or '..' path segment")
    return key


def upload_key(key: str) -> str:
    """The key a new upload is stored under: ``key`` in Unicode NFC, checked by :func:`validate_key` and for
    :data:`REFUSED_CATEGORIES`, segments over :data:`MAX_SEGMENT_BYTES` and a length over
    :data:`MAX_UPLOAD_KEY_BYTES`; raises InvalidKeyError with the reason.
    """
    validate_key(key)
    normalised = unicodedata.normalize("NFC", key)
    for ch in normalised:
        what = REFUSED_CATEGORIES.get(unicodedata.category(ch))
        if what is not None:
            name = unicodedata.name(ch, "unnamed")
            raise InvalidKeyError(f"object key {key!r} contains U+{ord(ch):04X} ({name}), {what}")
    check_segments(normalised, MAX_SEGMENT_BYTES)
    size = len(normalised.encode("utf-8"))
    if size > MAX_UPLOAD_KEY_BYTES:
        raise InvalidKeyError(
            f"object key is {size} bytes; a new upload's key may have {MAX_UPLOAD_KEY_BYTES} (its outputs go under "
            f"KEY/, and an S3 key has at most {MAX_KEY_BYTES})"
        )
    return validate_key(normalised)  # NFC can change the length


def check_segments(key: str, max_bytes: int) -> str:
    """``key`` if each of its path segments fits in ``max_bytes`` bytes of UTF-8, else raise InvalidKeyError."""
    for segment in key.split("/"):
        size = len(segment.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            shown = key if len(key) <= 60 else f"{key[:60]}..."
            raise InvalidKeyError(
                f"object key {shown!r} has a path segment of {size} bytes; the limit is {max_bytes} bytes "
                "(each segment becomes a file or folder name)"
            )
    return key


def validate_bucket(bucket: str) -> str:
    """Return ``bucket`` if it is a plausible S3 bucket name (which is also a safe folder name)."""
    ok = 3 <= len(bucket) <= 63 and bucket[0].isalnum() and bucket[-1].isalnum()
    ok = ok and all(c in _BUCKET_CHARS for c in bucket) and ".." not in bucket
    if not ok:
        raise InvalidKeyError(f"bucket name {bucket!r} is invalid: use 3-63 lowercase letters, digits, '.' or '-'")
    return bucket
