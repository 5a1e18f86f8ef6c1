"""Run FFmpeg: its own process group, no stdin, a minimal environment, progress, a wall-clock limit."""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from videoconverter.errors import ShutdownRequested, TranscodeError, TranscodeTimeoutError
from videoconverter.processes import parent_death_signal

STDERR_TAIL_LINES = 40
# FFmpeg runs in its own session (so a timeout can kill its whole group), so it would outlive a worker killed
# with SIGKILL and keep burning CPU; the parent-death signal closes that gap. util-linux's setpriv sets it in
# the exec'd process for 0.5 ms; a pre-exec hook (a full fork, Python in the child) is the fallback.
_SETPRIV = shutil.which("setpriv")


def _die_with_parent(args: list[str]) -> list[str]:
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *args] if _SETPRIV else args


@dataclass(frozen=True)
class RunResult:
    elapsed_seconds: float
    stderr_tail: str
    #: How far the output got, in media time: the last ``out_time_us`` of ``-progress pipe:1`` (the latest of
    #: every output stream's), or None for a run without progress. A truncated source stops it early.
    out_time_seconds: float | None = None
    frames: int = 0  # the last frame count FFmpeg's progress reported (0 when it reported none)


def ffmpeg_executable() -> str:
    """The FFmpeg binary shipped in the imageio-ffmpeg wheel (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(
    args: list[str],
    *,
    workdir: Path,
    timeout_seconds: float,
    duration_seconds: float | None = None,
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Run ``args`` to completion and return; kill the whole process group on timeout or stop.

    ``on_progress`` receives the percentage done, parsed from ``-progress pipe:1`` against
    ``duration_seconds``. Raises :class:`TranscodeTimeoutError`, :class:`ShutdownRequested` (when
    ``should_stop`` turns true) or :class:`TranscodeError` for a non-zero exit.
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    process = start_ffmpeg(args, workdir)
    output = _Output(duration_seconds, on_progress)
    try:
        with selectors.DefaultSelector() as selector:
            assert process.stdout is not None and process.stderr is not None
            selector.register(process.stdout, selectors.EVENT_READ, "stdout")
            selector.register(process.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map():
                if time.monotonic() > deadline:
                    raise _timed_out(timeout_seconds, output)
                if should_stop():
                    raise ShutdownRequested()
                for key, _ in selector.select(timeout=0.25):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data == "stdout":
                        output.progress(chunk)
                    else:
                        output.stderr(chunk)
            output.close()
        exit_code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise _timed_out(timeout_seconds, output) from None
    except BaseException:
        _kill_group(process)
        raise
    if exit_code != 0:
        raise TranscodeError("FFmpeg failed", exit_code=exit_code, stderr_tail=output.tail)
    return RunResult(time.monotonic() - started, output.tail, output.out_time_seconds, output.frames)


def start_ffmpeg(args: list[str], workdir: Path, stdout: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start ``args`` as every FFmpeg run starts: in ``workdir``, in its own session (a timeout kills its group),
    no stdin, a minimal environment, killed when this process dies; stderr piped, stdout piped for progress
    unless given (``subprocess.DEVNULL``: what a run by hand does with it). :func:`run_ffmpeg` calls it; the
    benchmark's runs by hand too, so they start alike."""
    # A minimal environment: FFmpeg needs none of ours, and secrets (AWS keys, broker URLs) stay out of it.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LC_ALL": "C"}
    return subprocess.Popen(
        _die_with_parent(args),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=env,
        start_new_session=True,
        preexec_fn=None if _SETPRIV else parent_death_signal(signal.SIGKILL),  # system calls only: safe after fork
    )


def _timed_out(timeout_seconds: float, output: _Output) -> TranscodeTimeoutError:
    return TranscodeTimeoutError(
        f"FFmpeg ran past the {timeout_seconds:.0f} s limit and was killed", stderr_tail=output.tail
    )


class _Output:
    """What FFmpeg writes, read as it comes: progress lines on stdout, the last lines of stderr."""

    def __init__(self, duration_seconds: float | None, on_progress: Callable[[float], None] | None) -> None:
        self.duration_seconds = duration_seconds
        self.on_progress = on_progress
        self.out_time_seconds: float | None = None
        self.frames = 0  # the last ``frame=N`` of the progress lines
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stdout = b""
        self._stderr = b""

    @property
    def tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def progress(self, chunk: bytes) -> None:
        *lines, self._stdout = (self._stdout + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"out_time_us="):
                with contextlib.suppress(ValueError):
                    self.out_time_seconds = max(0.0, int(line.split(b"=", 1)[1]) / 1_000_000)
                    self._report()
            elif line.startswith(b"frame="):
                with contextlib.suppress(ValueError):
                    self.frames = int(line.split(b"=", 1)[1])

    def stderr(self, chunk: bytes) -> None:
        *lines, self._stderr = (self._stderr + chunk).split(b"\n")
        self._stderr_tail.extend(line.decode("utf-8", "replace") for line in lines if line.strip())

    def close(self) -> None:
        if self._stderr.strip():
            self._stderr_tail.append(self._stderr.decode("utf-8", "replace"))
            self._stderr = b""

    def _report(self) -> None:
        if self.on_progress is None or not self.duration_seconds or self.out_time_seconds is None:
            return
        self.on_progress(max(0.0, min(99.9, 100.0 * self.out_time_seconds / self.duration_seconds)))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill FFmpeg and anything it started; reap it so no zombie is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
