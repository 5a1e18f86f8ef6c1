"""The embedded pipeline of bench/overhead.py as `videoconverter up` runs it: one `videoconverter worker RENDITION`
process per rendition, watched from outside, never modified.

- :class:`Fleet` starts the worker processes on a fresh data dir (the config written as TOML) and stops them;
- :class:`CpuSampler` reads each worker's own CPU time (``/proc/PID/stat`` utime + stime: FFmpeg, a reaped
  child, is not in it) every few tens of milliseconds, so the CPU a worker used between two moments of its
  timeline can be read afterwards;
- :func:`recording_ffmpeg` is a stand-in FFmpeg (a shell script that notes its arguments, its parent and its
  directory, then execs the real one): one pipeline run with it gives the exact argument lists each worker ran,
  in order, for the runs by hand;
- :class:`JobsWait` runs `videoconverter jobs KEY --wait` beside the pipeline and notes when it printed.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from videoconverter.brokers.doorbell import Doorbell

READY_SECONDS = 120.0  # a loaded 2-core machine starts a worker (imports, provisioning done) in a few seconds
SAMPLE_SECONDS = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_config(data_dir: Path, renditions: Sequence[tuple[str, int]], fixed_crf: bool) -> Path:
    """A TOML config with these ``(name, short side)`` renditions in ``data_dir`` (defaults otherwise: a VMAF
    target per rendition unless ``fixed_crf``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [f'data_dir = "{data_dir}"']
    for name, short_side in renditions:
        lines += ["", "[[renditions]]", f'name = "{name}"', f"short_side = {short_side}"]
        lines += ["target_vmaf = 0"] if fixed_crf else []
    path = data_dir / "bench.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli_env(config_path: Path, **extra: str) -> dict[str, str]:
    """This environment, without other VIDEOCONVERTER_ settings, pointing at ``config_path``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    return {**clean, "VIDEOCONVERTER_CONFIG": str(config_path), **extra}


@dataclass
class Worker:
    rendition: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Fleet:
    """One worker process per rendition, each started as `up`'s supervisor starts them."""

    config_path: Path
    renditions: Sequence[str]
    ffmpeg: str = ""  # IMAGEIO_FFMPEG_EXE for the workers ("" for the usual binary)
    workers: list[Worker] = field(default_factory=list)

    def start(self) -> None:
        env = cli_env(self.config_path, **({"IMAGEIO_FFMPEG_EXE": self.ffmpeg} if self.ffmpeg else {}))
        for name in self.renditions:
            log = self.config_path.parent / f"worker-{name}.log"
            with open(log, "wb") as out:  # the worker's JSON log lines, as a terminal would take them
                command = [sys.executable, "-m", "videoconverter", "worker", name, "--no-provision"]
                process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self.workers.append(Worker(name, process, log))
        deadline = time.monotonic() + READY_SECONDS
        for worker in self.workers:  # listening: the line it logs just before its first receive
            while b"listening on" not in worker.log.read_bytes():
                if worker.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {worker.rendition} did not start: {worker.log.read_text()[-2000:]}")
                time.sleep(0.05)

    def pids(self) -> dict[str, int]:
        return {w.rendition: w.process.pid for w in self.workers}

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.workers.clear()


@contextlib.contextmanager
def running(fleet: Fleet) -> Iterator[Fleet]:
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()


def process_cpu_seconds(pid: int) -> tuple[float, float] | None:
    """``pid``'s own CPU seconds (utime + stime) and its reaped children's (cutime + cstime: FFmpeg, for a
    worker), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.read().rsplit(")", 1)[1].split()[11:15]]  # fields 14-17 of proc(5)
    except (OSError, ValueError):
        return None
    return (fields[0] + fields[1]) / CLOCK_TICKS, (fields[2] + fields[3]) / CLOCK_TICKS


class CpuSampler:
    """Samples each worker's own and its children's CPU seconds with the wall-clock time, in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self.samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            for name, pid in self._pids.items():
                cpu = process_cpu_seconds(pid)
                if cpu is not None:
                    self.samples[name].append((time.time(), *cpu))
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def used(self, name: str, start: float | None, end: float | None, children: bool = False) -> float | None:
        """CPU seconds ``name``'s worker (or, with ``children``, the FFmpeg runs it reaped) used between two
        wall-clock times, interpolated between samples."""
        if start is None or end is None or len(self.samples[name]) < 2:
            return None
        column = 2 if children else 1
        return self._at(name, end, column) - self._at(name, start, column)

    def _at(self, name: str, at: float, column: int) -> float:
        samples = self.samples[name]
        i = bisect.bisect_left([s[0] for s in samples], at)
        if i == 0:
            return samples[0][column]
        if i == len(samples):
            return samples[-1][column]
        before, after = samples[i - 1], samples[i]
        share = (at - before[0]) / (after[0] - before[0]) if after[0] > before[0] else 1.0
        return before[column] + (after[column] - before[column]) * share


# --- the FFmpeg argument lists a pipeline run used ----------------------------------------------------------


@dataclass(frozen=True)
class FFmpegRun:
    worker_pid: int
    workdir: str  # the job's private directory, where FFmpeg ran
    args: list[str]  # as the worker passed them (the stand-in's path first)
    order: int  # when it started, relative to the others


def recording_ffmpeg(folder: Path, real_ffmpeg: str) -> Path:
    """A stand-in FFmpeg that writes one record per run into ``folder`` (parent pid, directory, arguments:
    NUL-separated), then execs ``real_ffmpeg`` in its place."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "ffmpeg-recording.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'printf \'%s\\000\' "$PPID" "$PWD" "$0" "$@" > {shlex.quote(str(folder))}/run-$$.rec\n'
        f'exec {shlex.quote(real_ffmpeg)} "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def recorded_runs(folder: Path) -> list[FFmpegRun]:
    """The runs the stand-in recorded, in the order they started."""
    records = sorted(folder.glob("run-*.rec"), key=lambda p: p.stat().st_mtime_ns)
    runs = []
    for order, record in enumerate(records):
        ppid, workdir, *args = record.read_bytes().decode("utf-8", "surrogateescape").split("\0")[:-1]
        runs.append(FFmpegRun(int(ppid), workdir, args, order))
    return runs


def replayable(run: FFmpegRun, real_ffmpeg: str, workdir: Path) -> list[str]:
    """``run``'s arguments for the real FFmpeg in another directory (every mention of the job's directory, file
    names and filter options alike, moved to ``workdir``), with the folders they name made there (the worker
    makes some between runs, e.g. ``pertitle/``)."""
    args = [real_ffmpeg] + [a.replace(run.workdir, str(workdir)) for a in run.args[1:]]
    for arg in args[1:]:
        for path in re.findall(re.escape(str(workdir)) + r"/[^:'\",;=\s\[\]]+", arg):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return args


# --- `jobs --wait` beside the pipeline ---------------------------------------------------------------------


class JobsWait:
    """`videoconverter jobs KEY --wait` started before the upload; :attr:`printed_at` is when its output came."""

    def __init__(self, config_path: Path, jobs_database: Path, key: str) -> None:
        self._folder = _doorbell_folder(jobs_database)
        command = [sys.executable, "-m", "videoconverter", "jobs", key, "--wait", "900", "--json"]
        self.process = subprocess.Popen(
            command, env=cli_env(config_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        self.printed_at: float | None = None
        self.exited_at: float | None = None
        self._reader = threading.Thread(target=self._read, name="jobs-wait", daemon=True)
        self._reader.start()

    def wait_until_listening(self) -> None:
        """Until its job store listens to the doorbell (the first look is taken), so the upload is not missed."""
        deadline = time.monotonic() + READY_SECONDS
        while not any(self._folder.glob(f"{self.process.pid}-*.sock")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("`jobs --wait` ended or did not start listening")
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.process.stdout is not None
        if self.process.stdout.read(1):
            self.printed_at = time.time()
        self.process.stdout.read()
        self.process.wait()
        self.exited_at = time.time()

    def join(self, timeout_seconds: float = 60.0) -> None:
        self._reader.join(timeout_seconds)
        if self._reader.is_alive():
            self.process.kill()
            self._reader.join()


def _doorbell_folder(database: Path) -> Path:
    """Where the job store's waiters bind their sockets (brokers/doorbell.py names it after the database)."""
    doorbell = Doorbell(database)
    folder: Path = doorbell._folder
    return folder
