"""Removing the state folders of dead worker processes, handing their leases back first.

A folder is reaped only if its name is an identity (``PID-START-BOOT-NAMESPACE``, or ``reaping-<reaper's identity>-X``
for one a reaper claimed), it is a real folder of this user's, and the process it names no longer runs. It is
claimed by renaming it, so two reapers (two workers starting at once) never hand back the same lease twice.

Which leases are handed back (``Broker.release(delivery, 0)``, so the message is visible again at once):

- the folder of a process the caller saw die a moment ago (:meth:`Reaper.reap`, `up`'s supervisor for its
  child): every lease of the journal, since the worker's heartbeats kept them all until it died;
- a folder found later (:meth:`Reaper.reap_dead`, at start-up): only the leases whose recorded end has not
  passed; a later one may have ended and gone to another worker (SQS accepts some stale receipts).

Only leases of the reaper's own broker are handed back, and only where the broker keeps a dead holder's leases
(``Capabilities.leases_outlive_holder``; RabbitMQ requeues them itself when the connection closes). A refused
receipt (``StaleReceiptError``) means another worker has the message already: fine. A folder holding leases of
another broker that have not ended yet loses its jobs' temp dirs but keeps its journals for that broker's reaper.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from videoconverter.brokers.base import Broker
from videoconverter.errors import QueueNotFoundError, StaleReceiptError
from videoconverter.recovery import identity as identities
from videoconverter.recovery.identity import ProcessIdentity
from videoconverter.recovery.journal import Lease, read_leases
from videoconverter.recovery.workspace import JOB_PREFIX

log = logging.getLogger(__name__)
CLAIMED_PREFIX = "reaping-"
_CLAIMED = re.compile(rf"{CLAIMED_PREFIX}(\d+-\d+-[0-9a-f]+-\d+)-[0-9a-f]+")


@dataclass(frozen=True)
class Reaped:
    folders: int = 0  # state folders removed
    released: int = 0  # leases handed back

    def __add__(self, other: Reaped) -> Reaped:
        return Reaped(self.folders + other.folders, self.released + other.released)


class Reaper:
    """Reaps the state folders under ``root`` (see the module docstring), handing leases back on ``broker``
    (whose fingerprint is ``broker_id``); with ``broker`` None, none are handed back."""

    def __init__(
        self,
        root: Path,
        broker: Broker | None,
        broker_id: str,
        *,
        is_alive: Callable[[ProcessIdentity], bool] = identities.is_alive,
        clock: Callable[[], float] = time.time,
        me: ProcessIdentity | None = None,
    ) -> None:
        self.root = root
        self._broker = broker if broker is not None and broker.capabilities.leases_outlive_holder else None
        self._broker_id = broker_id
        self._is_alive = is_alive
        self._clock = clock
        self._me = me or identities.this_process()

    def reap(self, dead: ProcessIdentity) -> Reaped:
        """Reap the folder of ``dead``, a process the caller saw die a moment ago, handing every lease back."""
        folder = self.root / dead.name
        if not _owned_folder(folder):
            return Reaped()
        return self._claim_and_reap(folder, every_lease=True)

    def reap_dead(self) -> Reaped:
        """Reap the folder of every process under ``root`` that no longer runs; leave all others alone."""
        reaped = Reaped()
        try:
            entries = sorted(self.root.iterdir()) if _owned_folder(self.root) else []
        except OSError as exc:
            log.warning("cannot list the worker state folders in %s: %s", self.root, exc)
            return reaped
        for folder in entries:
            owner = _owner(folder.name)
            if owner is None or not _owned_folder(folder) or self._is_alive(owner):
                continue
            if any(self._keep(lease) for lease in read_leases(folder)):
                _remove_job_dirs(folder)
                continue
            reaped += self._claim_and_reap(folder, every_lease=False)
        return reaped

    def _keep(self, lease: Lease) -> bool:
        """Whether ``lease`` is another broker's and may still hold: its reaper may yet hand it back."""
        return lease.broker != self._broker_id and lease.expires_at > self._clock()

    def _claim_and_reap(self, folder: Path, *, every_lease: bool) -> Reaped:
        claimed = folder.with_name(f"{CLAIMED_PREFIX}{self._me.name}-{uuid.uuid4().hex[:8]}")
        try:
            folder.rename(claimed)
        except OSError:  # another reaper took it first
            return Reaped()
        released = 0
        for lease in read_leases(claimed):
            if lease.broker == self._broker_id and (every_lease or lease.expires_at > self._clock()):
                released += self._release(lease, folder.name)
        shutil.rmtree(claimed, ignore_errors=True)  # what cannot go now goes with a later reaper
        log.info("removed the state folder of dead worker %s (%d leases handed back)", folder.name, released)
        return Reaped(0 if claimed.exists() else 1, released)

    def _release(self, lease: Lease, owner: str) -> int:
        if self._broker is None:
            return 0
        try:
            self._broker.release(lease.delivery(), 0.0)
        except (StaleReceiptError, QueueNotFoundError):
            return 0  # settled, or with another worker already; or its queue is gone
        except Exception as exc:  # a broker hiccup: the lease ends with its visibility timeout instead
            log.warning("cannot hand back message %s of dead worker %s: %s", lease.message_id, owner, exc)
            return 0
        log.info("handed back message %s on %s, leased by dead worker %s", lease.message_id, lease.queue, owner)
        return 1


def _owner(name: str) -> ProcessIdentity | None:
    """The process whose death lets the folder ``name`` be reaped: its owner's, or for a claimed folder its
    reaper's (a reaper that died midway leaves it to the next)."""
    claimed = _CLAIMED.fullmatch(name)
    return ProcessIdentity.parse(claimed[1] if claimed else name)


def _owned_folder(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _remove_job_dirs(folder: Path) -> None:
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.name.startswith(JOB_PREFIX) and _owned_folder(entry):
                shutil.rmtree(entry, ignore_errors=True)
