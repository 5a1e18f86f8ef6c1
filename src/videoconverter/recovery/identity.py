"""Which process a state folder belongs to, and whether that process still runs.

A pid alone is not an identity: the kernel reuses pids, so a folder named after a dead worker's pid could be
mistaken for a live process's (and kept forever) or, worse, a live process's folder for a dead one's. The
identity adds the process's start time (``/proc/<pid>/stat``, clock ticks after boot), the boot it started in
(the kernel's boot id) and its pid namespace (containers sharing a temp dir number their processes apart): no
two processes share all four. A process of another pid namespace cannot be looked up, so it counts as alive.
Where ``/proc`` is missing (not Linux), the start time, boot and namespace read 0 and a live pid counts as alive:
a reused pid then keeps a dead folder a while, which is safe, never the other way round.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
BOOT_ID = PROC / "sys" / "kernel" / "random" / "boot_id"
BOOT_ID_CHARACTERS = 8  # enough to tell this boot from earlier ones; keeps folder names short
UNKNOWN_BOOT = "0"
_START_FIELD = 19  # field 22 of /proc/<pid>/stat, counted after the command name's closing parenthesis
_GONE_STATES = {"Z", "X"}  # a zombie has exited and only waits for its parent to read its status; X is dead
_NAME = re.compile(r"(\d+)-(\d+)-([0-9a-f]+)-(\d+)")


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_ticks: int  # when the process started, in clock ticks after boot (0 where unknown)
    boot: str  # the first characters of the boot id of the boot it started in (UNKNOWN_BOOT where unknown)
    namespace: int = 0  # the inode of its pid namespace (0 where unknown)

    @property
    def name(self) -> str:
        """The identity as a folder name: ``PID-START-BOOT-NAMESPACE``."""
        return f"{self.pid}-{self.start_ticks}-{self.boot}-{self.namespace}"

    @classmethod
    def parse(cls, name: str) -> ProcessIdentity | None:
        """The identity ``name`` (as :attr:`name` writes it) stands for; None when it is not one."""
        match = _NAME.fullmatch(name)
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), match[3], int(match[4]))


def current_boot(boot_id: Path = BOOT_ID) -> str:
    try:
        return boot_id.read_text(encoding="ascii").strip().replace("-", "")[:BOOT_ID_CHARACTERS] or UNKNOWN_BOOT
    except OSError:
        return UNKNOWN_BOOT


def current_namespace(proc: Path = PROC) -> int:
    """The inode of this process's pid namespace: the pids ``proc`` shows are numbered in it."""
    try:
        return (proc / "self" / "ns" / "pid").stat().st_ino
    except OSError:
        return 0


def identity_of(pid: int, proc: Path = PROC, boot: str | None = None) -> ProcessIdentity | None:
    """The identity of the running process ``pid`` of this pid namespace; None when there is no such process, or
    it has exited (a zombie, whose parent has not read its status yet, runs no more code)."""
    boot = current_boot(proc / BOOT_ID.relative_to(PROC)) if boot is None else boot
    namespace = current_namespace(proc)
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None if proc.is_dir() else _without_proc(pid)
    except OSError:  # unreadable (another user's, under hidepid): it exists, start unknown
        return ProcessIdentity(pid, 0, boot, namespace)
    fields = stat.rpartition(")")[2].split()  # the command name in parentheses may hold spaces and parentheses
    if not fields or fields[0] in _GONE_STATES:
        return None
    try:
        return ProcessIdentity(pid, int(fields[_START_FIELD]), boot, namespace)
    except (IndexError, ValueError):
        return ProcessIdentity(pid, 0, boot, namespace)


def this_process() -> ProcessIdentity:
    identity = identity_of(os.getpid())
    assert identity is not None, "this process runs, so /proc or kill(0) finds it"
    return identity


def is_alive(identity: ProcessIdentity) -> bool:
    """Whether the process ``identity`` names still runs: the same pid, started at the same time in this boot;
    True for a process of another pid namespace, which cannot be looked up from here."""
    if identity.namespace not in (0, current_namespace()):
        return True
    current = identity_of(identity.pid)
    if current is None:
        return False
    if UNKNOWN_BOOT in (current.boot, identity.boot) or 0 in (current.start_ticks, identity.start_ticks):
        return True  # the pid runs, and there is no start time to compare: alive (the safe answer)
    return (current.start_ticks, current.boot) == (identity.start_ticks, identity.boot)


def _without_proc(pid: int) -> ProcessIdentity | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # exists, but another user's
        pass
    return ProcessIdentity(pid, 0, UNKNOWN_BOOT)
