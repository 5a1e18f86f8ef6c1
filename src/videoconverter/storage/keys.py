"""Object-key validation: keys become paths only after passing here."""

from __future__ import annotations

import string
import unicodedata

from videoconverter.errors import ConfigError, InvalidKeyError

MAX_KEY_BYTES = 1024  # as on S3
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
        if unicodedata.category(ch) in {"Cc", "Cs"}:
            raise InvalidKeyError(f"object key {key!r} contains a control character")
    for segment in key.split("/"):
        if segment in {"", ".", ".."}:
            raise InvalidKeyError(f"object key {key!r} has an empty, '.' or '..' path segment")
    return key


def validate_bucket(bucket: str) -> str:
    """Return ``bucket`` if it is a plausible S3 bucket name (which is also a safe folder name)."""
    ok = 3 <= len(bucket) <= 63 and bucket[0].isalnum() and bucket[-1].isalnum()
    ok = ok and all(c in _BUCKET_CHARS for c in bucket) and ".." not in bucket
    if not ok:
        raise InvalidKeyError(f"bucket name {bucket!r} is invalid: use 3-63 lowercase letters, digits, '.' or '-'")
    return bucket
