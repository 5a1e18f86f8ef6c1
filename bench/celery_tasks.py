"""The Celery peer of bench/peer.py: a plain Celery app whose one task runs an FFmpeg command line given to it.

The worker runs as::

    PEER_CELERY_URL=redis://127.0.0.1:6379/15 PYTHONPATH=bench \\
        .venv/bin/python -m celery -A celery_tasks worker --pool prefork --concurrency 2 --prefetch-multiplier 1 -Q ...

It imports nothing of videoconverter (the command lines are built by the benchmark, with the package's own
functions), so its processes are what a small Celery deployment of the same work would be. The task runs FFmpeg
as the pipeline's runner does (no stdin, its own session, a minimal environment, in a private temporary
directory, ``setpriv --pdeathsig KILL`` so that FFmpeg dies with a killed worker), discards the progress lines
FFmpeg writes on stdout and keeps the end of its stderr; then it moves the output where it was asked to.

At-least-once settings, as Celery's documentation describes them for work that must survive a worker crash:
``task_acks_late`` (the message is acknowledged after the task, not before), ``task_reject_on_worker_lost``
(a task whose pool process died is rejected and requeued rather than acknowledged and marked failed: without it
acks_late alone loses the job), ``worker_prefetch_multiplier = 1`` (a process reserves one message at a time).
On the Redis transport an unacknowledged message lives in the ``unacked`` hash; a rejected one is put back
into its queue at once, and ``visibility_timeout`` (here 30 s, the pipeline's lease) restores messages of a
worker that vanished without rejecting (the whole worker killed, not one pool process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery

URL_VARIABLE = "PEER_CELERY_URL"
#: CPU time (ms) each task spends in Python before its FFmpeg, as the pipeline's worker does on its job's
#: records, the download and the probe (bench/peer.py --celery-busy-ms): 0 for a plain Celery worker.
BUSY_VARIABLE = "PEER_BUSY_MS"
DEFAULT_URL = "redis://127.0.0.1:6379/15"
VISIBILITY_TIMEOUT_SECONDS = 30
STDERR_TAIL_BYTES = 4000
SETPRIV = shutil.which("setpriv")

app = Celery(
    "peer", broker=os.environ.get(URL_VARIABLE, DEFAULT_URL), backend=os.environ.get(URL_VARIABLE, DEFAULT_URL)
)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    worker_hijack_root_logger=False,
)


@app.task(name="peer.ffmpeg")
def ffmpeg(args: list[str], output: str) -> dict[str, Any]:
    """Run ``args`` (which write ``output.mp4`` in the working directory) and move that file to ``output``;
    return when it started and finished (``time.time()``) and which process ran it."""
    started = time.time()
    _busy(float(os.environ.get(BUSY_VARIABLE) or 0) / 1000)
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "LC_ALL": "C"}
        done = subprocess.run(
            [SETPRIV, "--pdeathsig", "KILL", "--", *args] if SETPRIV else args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=tmp,
            env=env,
            start_new_session=True,
            check=False,
        )
        if done.returncode != 0:
            tail = done.stderr[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
            raise RuntimeError(f"FFmpeg exited with {done.returncode}: {tail}")
        shutil.move(Path(tmp) / "output.mp4", output)
    return {"started": started, "finished": time.time(), "pid": os.getpid()}


def _busy(cpu_seconds: float) -> None:
    """Spend ``cpu_seconds`` of this process's CPU time."""
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass
