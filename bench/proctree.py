"""A process tree read from Linux's /proc: who runs FFmpeg, and what the Python processes around it cost.

The benchmarks use it to compare worker processes of different systems from outside, the same way for each:
every descendant of a root process (``videoconverter up``, a Celery master) is either a Python process (the
worker's own code: its CPU time and peak memory are what the system costs beside FFmpeg) or an FFmpeg process
(its command line is read back, to check that both systems ran the same ones). CPU times are a process's own
``utime + stime`` (``/proc/PID/stat``), which leave out its children, FFmpeg included; peak memory is
``VmHWM`` (peak resident set, shared pages counted in full), ``Pss`` (shared pages split between sharers) and the
private pages (``Private_Clean + Private_Dirty``: what the process alone holds, which another worker adds).

The file-backed part of ``VmHWM`` depends on the page cache, not only on the program: the same ``import av``
maps 32 MiB after ``drop_caches`` and 39 MiB right after pip wrote the libraries (more of each file is resident
and mapped around each fault). Compare private memory and PSS across systems; RSS only within a run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Process:
    """One process of the tree as last read."""

    pid: int
    ppid: int
    kind: str  # "python", "ffmpeg" or "other" (e.g. setpriv before it execs FFmpeg)
    started_at: float  # time.time() of its start (10 ms resolution)
    cpu_seconds: float  # its own user + system time, without its children's
    peak_rss_bytes: int  # VmHWM; 0 for FFmpeg (not read)
    pss_bytes: int  # proportional set size now, when read with memory=True; else 0
    private_bytes: int  # pages no other process maps, now, when read with memory=True; else 0
    args: tuple[str, ...]  # the command line (read for FFmpeg only)


def boot_time() -> float:
    """The ``time.time()`` of boot, to 10 ms (/proc/stat's ``btime`` is whole seconds: too coarse to tell
    whether a process started before or after an upload)."""
    with open(PROC / "uptime", encoding="ascii") as uptime:
        return time.time() - float(uptime.read().split()[0])


class Reader:
    """Reads processes from /proc; Linux only."""

    def __init__(self) -> None:
        self._boot = boot_time()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._python = os.path.realpath(sys.executable)
        self._args: dict[tuple[int, float], tuple[str, ...]] = {}  # an FFmpeg's command line does not change

    def descendants(self, root: int) -> list[int]:
        """Every process below ``root`` (not ``root`` itself), parents before children."""
        found: list[int] = []
        pending = [root]
        while pending:
            pid = pending.pop(0)
            for child in children(pid):
                found.append(child)
                pending.append(child)
        return found

    def read(self, pid: int, memory: bool = False) -> Process | None:
        """The process now, or None when it has gone; with ``memory``, a Python process's PSS too (reading it
        walks every mapping: not for each sample)."""
        try:
            stat = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
            exe = os.readlink(PROC / str(pid) / "exe")
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
        ppid, utime, stime, start_ticks = int(fields[1]), int(fields[11]), int(fields[12]), int(fields[19])
        started_at = self._boot + start_ticks / self._tick
        kind = "python" if os.path.realpath(exe) == self._python else "ffmpeg" if "ffmpeg" in exe else "other"
        peak, pss, private, args = 0, 0, 0, ()
        if kind == "python":
            peak = _kib_field(PROC / str(pid) / "status", "VmHWM:")
            if memory:
                rollup = PROC / str(pid) / "smaps_rollup"
                pss = _kib_field(rollup, "Pss:")
                private = _kib_field(rollup, "Private_Clean:") + _kib_field(rollup, "Private_Dirty:")
        elif kind == "ffmpeg":
            args = self._args.get((pid, started_at)) or self._command_line(pid, started_at)
        return Process(pid, ppid, kind, started_at, (utime + stime) / self._tick, peak, pss, private, args)

    def tree(self, root: int, memory: bool = False) -> list[Process]:
        """``root`` and every process below it, as they are now."""
        return [p for p in (self.read(pid, memory) for pid in [root, *self.descendants(root)]) if p is not None]

    def _command_line(self, pid: int, started_at: float) -> tuple[str, ...]:
        try:
            raw = (PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return ()
        args = tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1])
        if args:
            self._args[(pid, started_at)] = args
        return args


def children(pid: int) -> list[int]:
    """The direct children of ``pid``, from every one of its threads (a child belongs to the thread that
    forked it)."""
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(x) for x in (task / "children").read_text(encoding="ascii").split())
        except OSError:
            continue
    return found


def _kib_field(path: Path, name: str) -> int:
    try:
        with open(path, encoding="ascii") as lines:
            for line in lines:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Seen:
    """What a sampler saw of the tree: the latest reading of every process, gone ones included."""

    last: dict[tuple[int, float], Process] = field(default_factory=dict)  # by (pid, start): pids are reused

    def processes(self, kind: str) -> Iterator[Process]:
        return (p for p in self.last.values() if p.kind == kind)


class Sampler:
    """Reads ``root`` and the tree below it every ``interval_seconds`` in a thread, keeping each process's latest
    reading, so that a process's CPU time is known up to shortly before it ended; :meth:`sample` reads it once
    more at once (call it at the end of a measurement)."""

    def __init__(self, root: int, interval_seconds: float = 0.25) -> None:
        self.root = root
        self.interval_seconds = interval_seconds
        self.reader = Reader()
        self.seen = Seen()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proctree-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self, memory: bool = False) -> Seen:
        """Read the tree now (``memory``: PSS too); return a copy of everything seen so far."""
        tree = self.reader.tree(self.root, memory)
        with self._lock:
            for p in tree:
                self.seen.last[(p.pid, p.started_at)] = p
            return Seen(dict(self.seen.last))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self.sample()


def python_cpu_seconds(before: Seen, after: Seen, pids: set[int] | None = None) -> float:
    """CPU seconds the Python processes (``pids`` only, when given) used between two readings; a process
    started in between counts from zero."""
    total = 0.0
    for key, p in after.last.items():
        if p.kind != "python" or (pids is not None and p.pid not in pids):
            continue
        earlier = before.last.get(key)
        total += p.cpu_seconds - (earlier.cpu_seconds if earlier else 0.0)
    return total


def pids_named(comm: str) -> list[int]:
    """Every process whose command name (``/proc/PID/comm``) is ``comm``: a server outside the measured tree."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text(encoding="utf-8", errors="replace").strip() == comm:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def own_cpu_seconds(pids: list[int]) -> float:
    """The user + system CPU time the processes ``pids`` used so far (their children's left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick
