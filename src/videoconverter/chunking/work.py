"""The work area of a split job: where its pieces meet, whichever machines encoded them.

It lies in the rendition's output bucket under ``.chunks/DIGEST/``, where ``DIGEST`` is a SHA-256 of the
rendition, the upload's key and its ETag: one directory per job (a new upload of the key gets its own), a key
of fixed, short length whatever the upload's key, and nothing a viewer of the outputs looks for (outputs live
at the upload's key). The join deletes it once the output is written; a superseded job deletes its own.
Pieces are written whole (the stores write atomically), so a piece that exists is a piece that is complete.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from videoconverter.storage.base import ObjectStore
from videoconverter.storage.keys import validate_key

PREFIX = ".chunks/"
DIGEST_CHARACTERS = 32


@dataclass(frozen=True)
class WorkArea:
    bucket: str
    prefix: str  # ".chunks/DIGEST/"

    def video_key(self, index: int, rung: str = "") -> str:
        """Video piece ``index`` (of an HLS ladder: of its rung ``rung``, "720p")."""
        return validate_key(f"{self.prefix}video-{index:05d}{'-' + rung if rung else ''}.mp4")

    def audio_key(self) -> str:
        return validate_key(f"{self.prefix}audio.m4a")

    def clear(self, store: ObjectStore) -> int:
        """Delete every object of this work area; return how many."""
        keys = [info.key for info in store.list(self.bucket, self.prefix) if info.key.startswith(self.prefix)]
        for key in keys:
            store.delete(self.bucket, key)
        return len(keys)


def work_area(bucket: str, rendition: str, key: str, etag: str) -> WorkArea:
    digest = hashlib.sha256("\0".join((rendition, key, etag)).encode("utf-8", "surrogatepass")).hexdigest()
    return WorkArea(bucket, f"{PREFIX}{digest[:DIGEST_CHARACTERS]}/")
