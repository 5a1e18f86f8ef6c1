"""`videoconverter up`: worker processes for every rendition, restarted if they die, stopped gracefully."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from videoconverter.config import Config
from videoconverter.processes import parent_death_signal

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0
_STOP_WITH_PARENT = parent_death_signal(signal.SIGTERM)
STOP_GRACE_SECONDS = 30.0


@dataclass
class _Child:
    rendition: str
    process: subprocess.Popen[bytes]
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)


def worker_command(rendition: str) -> list[str]:
    return [sys.executable, "-m", "videoconverter", "worker", rendition]


def supervise(config: Config, stop: threading.Event, concurrency: int = 1) -> None:
    """Run ``concurrency`` worker processes per rendition until ``stop`` is set; restart any that dies."""
    children = [_spawn(r.name) for r in config.renditions for _ in range(concurrency)]
    log.info("up: %d worker processes for %s", len(children), ", ".join(r.name for r in config.renditions))
    try:
        while not stop.wait(0.5):
            for i, child in enumerate(children):
                code = child.process.poll()
                if code is None:
                    continue
                log.warning("worker for %s exited with code %s; restarting", child.rendition, code)
                if time.monotonic() - child.started_at < RESTART_DELAY_SECONDS:
                    time.sleep(RESTART_DELAY_SECONDS)  # a worker that dies at once must not spin
                replacement = _spawn(child.rendition)
                replacement.restarts = child.restarts + 1
                children[i] = replacement
    finally:
        _stop_all(children)


def _spawn(rendition: str) -> _Child:
    # Own session: a terminal's Ctrl-C reaches only `up`, which stops each worker once, gracefully; the
    # parent-death signal stops the workers gracefully too if `up` itself is killed.
    process = subprocess.Popen(
        worker_command(rendition),
        env=os.environ.copy(),
        start_new_session=True,
        preexec_fn=_STOP_WITH_PARENT,  # one libc call in the child: safe after fork
    )
    return _Child(rendition, process)


def _stop_all(children: list[_Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)  # workers hand their current job back, then exit
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
