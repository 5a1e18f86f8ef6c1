"""How outputs go to a player: each file's media type, and which files go gzip-compressed.

Apple's HLS authoring spec (10.1) wants playlists served compressed; manifests, playlists, captions and JSON are
text that shrinks several-fold, while media segments are already compressed and must stay byte-addressable for
``Range`` requests, so only the text is compressed, and only for a whole-object request.
"""

from __future__ import annotations

import gzip
import mimetypes
from pathlib import PurePosixPath

#: The players the dashboard vendors in static/players (see its README.md), the versions the browser tests pin.
HLS_JS_VERSION = "1.7.4"
DASH_JS_VERSION = "5.2.1"

MEDIA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/mp4",
    ".mp4": "video/mp4",
    ".vtt": "text/vtt",
    ".json": "application/json",
}
#: A streaming package keeps its audio renditions in ``VERSION/audio/<track>/``; their fMP4 holds no video.
AUDIO_FOLDER = "audio"
AUDIO_MEDIA_TYPE = "audio/mp4"
COMPRESSIBLE_SUFFIXES = frozenset({".m3u8", ".mpd", ".vtt", ".json"})
#: Larger text (hours of captions) goes uncompressed rather than held whole in memory to compress it.
MAX_COMPRESSED_SOURCE_BYTES = 8 * 1024 * 1024
GZIP_LEVEL = 6


def media_type(key: str, packaged: bool) -> str:
    """The ``Content-Type`` of the output ``key``; ``packaged`` when it belongs to a streaming package (an ``hls``
    output), where the segments under ``audio/<track>/`` are audio."""
    path = PurePosixPath(key)
    suffix = path.suffix.lower()
    if packaged and suffix in (".m4s", ".mp4") and len(path.parts) >= 3 and path.parts[-3] == AUDIO_FOLDER:
        return AUDIO_MEDIA_TYPE
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def compressible(key: str, size: int) -> bool:
    """Whether the output ``key`` of ``size`` bytes is text that is sent gzip-compressed to clients that accept it."""
    return PurePosixPath(key).suffix.lower() in COMPRESSIBLE_SUFFIXES and size <= MAX_COMPRESSED_SOURCE_BYTES


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip: ``gzip`` (or ``x-gzip``) or ``*`` with a non-zero
    weight, unless gzip itself is refused with ``q=0`` (RFC 9110 12.5.3). No header: no compression."""
    if not header:
        return False
    weights: dict[str, float] = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        weights[name.strip().lower()] = _weight(params)
    for name in ("gzip", "x-gzip"):
        if name in weights:
            return weights[name] > 0
    return weights.get("*", 0.0) > 0


def _weight(params: str) -> float:
    """The ``q`` of an ``Accept-Encoding`` item's parameters (1 without one, 0 when malformed)."""
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def gzipped(data: bytes) -> bytes:
    """``data`` gzip-compressed, byte for byte the same every time (no timestamp), so GET and HEAD agree."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
