"""Keeping a lease while a job works: a thread extends it every third of the visibility timeout and notices when
it is lost (the message went to another worker), so the job stops instead of writing; and the FFmpeg runner of
a job, which that lost lease (or a shutdown) stops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from videoconverter import telemetry
from videoconverter.brokers.base import Delivery
from videoconverter.errors import StaleReceiptError
from videoconverter.jobs.base import JobId, JobStore
from videoconverter.jobs.timeline import TimelineRecorder
from videoconverter.pipeline import Services
from videoconverter.transcode.products import Runner
from videoconverter.transcode.runner import RunResult, run_ffmpeg

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_SECONDS = 1.0  # a job's progress is written at most this often


class Heartbeat:
    """Extends the lease every third of the visibility timeout while FFmpeg runs; notices a lost lease."""

    def __init__(self, services: Services, delivery: Delivery, visibility_timeout_seconds: int) -> None:
        self._svc = services
        self._delivery = delivery
        self._timeout = visibility_timeout_seconds
        self._done = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = max(0.5, self._timeout / 3)
        while not self._done.wait(interval):
            try:
                self._svc.broker.extend(self._delivery, self._timeout)
            except StaleReceiptError:
                telemetry.lease_extension(self._delivery.queue, "lost")
                self.lost.set()
                return
            except Exception:  # a passing broker hiccup: the next beat tries again before the lease ends
                telemetry.lease_extension(self._delivery.queue, "failed")
                log.warning("heartbeat failed", exc_info=True)
            else:
                telemetry.lease_extension(self._delivery.queue, "extended")


def job_runner(
    jobs: JobStore,
    job: JobId,
    workdir: Path,
    timeout_seconds: float,
    should_stop: Callable[[], bool],
    stamps: TimelineRecorder,
) -> Runner:
    """The :data:`Runner` a job's conversion gets: FFmpeg in the job's private directory with the job's timeout,
    stopped when ``should_stop`` says so (a shutdown, a lost lease), its progress recorded at most once a
    second, its first start and last end stamped on the job's timeline."""
    last_report = 0.0
    lock = threading.Lock()  # a ladder's rungs may run side by side

    def on_progress(percent: float) -> None:
        nonlocal last_report
        with lock:
            if time.monotonic() - last_report < PROGRESS_INTERVAL_SECONDS:
                return
            last_report = time.monotonic()
        jobs.progress(job, percent)

    def run(args: list[str], duration_seconds: float | None) -> RunResult:
        stamps.first("ffmpeg_started")  # the job's first run (a VMAF search or a ladder runs several)
        try:
            result = run_ffmpeg(
                args,
                workdir=workdir,
                timeout_seconds=timeout_seconds,
                duration_seconds=duration_seconds,
                on_progress=on_progress,
                should_stop=should_stop,
            )
        finally:
            stamps.stamp("ffmpeg_finished")  # the latest run to end so far
        telemetry.ffmpeg_ran(job.rendition, result.elapsed_seconds, result.frames)
        return result

    return run
