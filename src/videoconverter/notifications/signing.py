"""Webhook signatures: the Standard Webhooks scheme, and our own older header (deprecated).

Standard Webhooks (https://www.standardwebhooks.com), which receivers verify with a stock library (the
``standardwebhooks`` package, Svix's libraries): headers ``webhook-id`` (the event id, the same on every
retry), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature: v1,<base64>``, the
HMAC-SHA256 of ``"<id>.<timestamp>.<body>"``. The key is the secret's base64 after the ``whsec_`` prefix, or,
for a plain secret, its UTF-8 bytes: a receiver then uses ``"whsec_" + base64(secret)``
(:func:`receiver_secret`).

Deprecated, kept for one release: ``X-Videoconverter-Signature: t=<unix time>,v1=<hex>``, HMAC-SHA256 keyed
with the secret exactly as configured over ``"<unix time>." + body`` (check it with :func:`verify`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of a Standard Webhooks secret, not a secret
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
SIGNATURE_HEADER = "X-Videoconverter-Signature"  # deprecated: the Standard Webhooks headers replace it
TOLERANCE_SECONDS = 300


def signing_key(secret: str) -> bytes:
    """The HMAC key of ``secret``: the base64 after ``whsec_``, else the secret's UTF-8 bytes.

    Raises ``ValueError`` for a ``whsec_`` secret whose rest is not base64, or is empty.
    """
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a whsec_ secret must continue in base64") from exc
    if not key:
        raise ValueError("a whsec_ secret must not be empty")
    return key


def receiver_secret(secret: str) -> str:
    """The ``whsec_`` form of ``secret``, which a receiver gives its Standard Webhooks library."""
    return secret if secret.startswith(SECRET_PREFIX) else SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


def signature_headers(secret: str, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that sign ``body`` sent at ``timestamp``: the Standard Webhooks three and the deprecated one."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        STANDARD_SIGNATURE_HEADER: "v1," + base64.b64encode(digest).decode(),
        SIGNATURE_HEADER: sign(secret, body, timestamp),
    }


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The deprecated ``X-Videoconverter-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, now: float | None = None, tolerance_seconds: int = TOLERANCE_SECONDS
) -> bool:
    """Whether the deprecated ``header`` signs ``body`` with ``secret`` and is recent (what a receiver checks)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
