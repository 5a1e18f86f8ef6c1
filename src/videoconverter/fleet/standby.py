"""The standby worker `up` keeps ready, so that a worker that dies is replaced at once rather than after an
interpreter's start.

A fresh worker process spends most of a second (seconds, on a machine busy with FFmpeg) importing its modules
and loading its client libraries' data (boto3's service models) before it takes a job: time on the path from a
killed worker to its job running again (``bench/peer.py recovery``). A standby is a worker process that has
done that and opened its backends, then waits: the supervisor assigns it a role by writing one line to its
stdin, a JSON list of the renditions to serve (empty: every rendition, as a pool worker), and from then on it is
an ordinary worker. While it waits it is an idle worker that serves no queue: it holds no lease, and its
connections are those of any idle worker (the RabbitMQ broker's I/O thread answers heartbeats and reconnects).
End of input (the supervisor gone) or a stop signal ends it.
"""

from __future__ import annotations

import json
import select
import subprocess
import threading
from typing import IO

from videoconverter.config import Config
from videoconverter.errors import ConfigError
from videoconverter.renditions import Rendition

POLL_SECONDS = 0.5  # how soon a waiting standby notices a stop signal


def assignment(renditions: list[str] | None) -> bytes:
    """The line that makes a standby serve ``renditions`` (None: every rendition)."""
    return (json.dumps(renditions or []) + "\n").encode()


def parse_assignment(line: bytes, config: Config) -> list[Rendition]:
    """The renditions a standby was assigned (each a configured one; every rendition for an empty list)."""
    try:
        names = json.loads(line)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"standby: expected a JSON list of rendition names, got {line[:200]!r}")
    return [config.rendition(name) for name in names] or list(config.renditions)


def await_assignment(stream: IO[bytes], stop: threading.Event) -> bytes | None:
    """The assignment line from ``stream``; None when the stream ends or ``stop`` is set first."""
    while not stop.is_set():
        ready, _, _ = select.select([stream], [], [], POLL_SECONDS)
        if ready:
            line = stream.readline()
            return line if line.strip() else None
    return None


def assign(process: subprocess.Popen[bytes], renditions: list[str] | None) -> bool:
    """Give a waiting standby its role; False when it cannot take one (it has died, or was never a standby)."""
    if process.stdin is None or process.poll() is not None:
        return False
    try:
        process.stdin.write(assignment(renditions))
        process.stdin.flush()
        process.stdin.close()
    except (BrokenPipeError, ValueError):  # died meanwhile; ValueError: its stdin was closed already
        return False
    return True
