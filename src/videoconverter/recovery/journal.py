"""The lease journal: which deliveries a consumer holds now, in a file that outlives the process.

A worker writes an entry when it takes a lease and removes it before settling the message, each time by
replacing the whole file (write a temp file, rename: a reader sees the old list or the new one, never half).
Removing first errs on the safe side: a worker that dies between the two leaves a lease the broker's
visibility timeout ends, never an entry naming a lease that was already settled and handed to another worker.
An empty journal is no file at all, so a process that handled a thousand jobs leaves nothing behind.

Each entry names the broker (a digest of its URL, never the URL: it may carry a password) so that a reaper
connected to another broker leaves it alone, and when the lease ends unless extended (a conservative estimate:
heartbeats extend leases without touching the journal), so that a reaper that finds the journal long after the
process died does not hand back a lease that may have moved on to another worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from videoconverter.brokers.base import Delivery

log = logging.getLogger(__name__)
JOURNAL_PREFIX = "leases-"
JOURNAL_SUFFIX = ".json"
# Taken off each lease's end: the broker started its clock before the delivery reached us.
LEASE_MARGIN_SECONDS = 2.0


def broker_fingerprint(url: str) -> str:
    """What a journal calls the broker ``url`` names: a digest, since the URL may hold a password."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lease:
    """One journal entry: what ``Broker.release`` needs of the delivery, and where and until when it holds."""

    broker: str  # broker_fingerprint of the broker's URL
    queue: str
    message_id: str
    receipt: str
    attempt: int
    sent_at: float  # seconds since the epoch
    expires_at: float  # seconds since the epoch: the lease ends by then unless the holder extended it

    def delivery(self) -> Delivery:
        """The delivery to hand back (without its body, which ``release`` does not read)."""
        return Delivery(self.queue, self.message_id, "", self.receipt, self.attempt, self.sent_at)


class LeaseJournal:
    """The leases one consumer holds, in its own file of a state folder (safe for threads)."""

    def __init__(self, folder: Path, broker: str) -> None:
        self.path = folder / f"{JOURNAL_PREFIX}{uuid.uuid4().hex[:12]}{JOURNAL_SUFFIX}"
        self._broker = broker
        self._leases: dict[str, Lease] = {}  # by receipt
        self._lock = threading.Lock()

    def hold(self, delivery: Delivery, visibility_timeout_seconds: float) -> None:
        """Record that this consumer holds ``delivery``'s lease for ``visibility_timeout_seconds`` from now."""
        expires_at = time.time() + visibility_timeout_seconds - LEASE_MARGIN_SECONDS
        lease = Lease(
            self._broker,
            delivery.queue,
            delivery.message_id,
            delivery.receipt,
            delivery.attempt,
            delivery.sent_at,
            expires_at,
        )
        with self._lock:
            self._leases[delivery.receipt] = lease
            self._write()

    def drop(self, delivery: Delivery) -> None:
        """Forget ``delivery``'s lease (call it before settling the message). Nothing if it is not held."""
        with self._lock:
            if self._leases.pop(delivery.receipt, None) is not None:
                self._write()

    @contextlib.contextmanager
    def holding(self, delivery: Delivery, visibility_timeout_seconds: float) -> Iterator[None]:
        """Hold ``delivery``'s lease in the journal for the ``with`` block, dropping it however the block ends."""
        self.hold(delivery, visibility_timeout_seconds)
        try:
            yield
        finally:
            self.drop(delivery)

    def _write(self) -> None:
        """Replace the file; a failure is logged, never raised: without a journal, a dead worker's leases end
        with their visibility timeout, and that must not fail the job."""
        try:
            if not self._leases:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return
            partial = self.path.with_name(f".{self.path.name}.partial")
            text = json.dumps([asdict(lease) for lease in self._leases.values()])
            # No fsync: the journal serves a process's death, not the machine's (after a reboot every lease ends).
            try:
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            except FileNotFoundError:  # the process's folder is made on its first lease (inside a private root)
                self.path.parent.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(partial, self.path)
        except OSError as exc:
            log.warning("cannot write the lease journal %s: %s", self.path, exc)


def read_leases(folder: Path) -> list[Lease]:
    """Every lease the journals in ``folder`` name; a journal that cannot be read is skipped (logged): its
    leases end with their visibility timeout, as they would without a journal."""
    leases: list[Lease] = []
    try:
        paths = sorted(p for p in folder.iterdir() if _is_journal(p.name))
    except OSError:
        return leases
    for path in paths:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            leases.extend(Lease(**entry) for entry in entries)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("cannot read the lease journal %s: %s", path, exc)
    return leases


def _is_journal(name: str) -> bool:
    return name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX)
