"""Watching the upload while a piece's FFmpeg runs: a newer upload of the key stops the piece early.

The steps check the source's ETag before they encode and before they write; a piece of a long source runs
for minutes between the two, and every worker encoding a piece of the old upload would finish its piece for
nothing. So while FFmpeg runs, a thread asks the store for the key's ETag at the heartbeat's pace (a third of
the visibility timeout): once it changed, FFmpeg is stopped and the piece writes nothing.
"""

from __future__ import annotations

import logging
import threading

from videoconverter.storage.base import ObjectStore

log = logging.getLogger(__name__)


class Superseded(Exception):
    """The upload was replaced while the step ran: it stopped and writes nothing."""

    def __init__(self, newer_etag: str) -> None:
        super().__init__(newer_etag)
        self.newer_etag = newer_etag


class SourceWatch:
    """Looks at ``bucket``/``key`` every ``interval_seconds`` until closed; ``newer_etag`` is set (and
    ``replaced``) once its ETag is no longer ``etag``. A deleted key is left to the steps' own check (it fails the
    job); a failed look is tried again at the next."""

    def __init__(self, store: ObjectStore, bucket: str, key: str, etag: str, interval_seconds: float) -> None:
        self._store, self._bucket, self._key, self._etag = store, bucket, key, etag
        self._interval = max(0.5, interval_seconds)
        self._done = threading.Event()
        self.replaced = threading.Event()
        self.newer_etag = ""
        self._thread = threading.Thread(target=self._watch, name="source-watch", daemon=True)

    def __enter__(self) -> SourceWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self._interval):
            try:
                info = self._store.head(self._bucket, self._key)
            except Exception:  # a passing store hiccup: the next look tries again
                log.warning("looking for a newer upload failed", exc_info=True)
                continue
            if info is not None and info.etag != self._etag:
                self.newer_etag = info.etag
                self.replaced.set()
                return
