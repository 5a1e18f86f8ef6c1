"""What every step of a split job shares: the worker's parts it runs with, FFmpeg runs under a heartbeat, the
lease check before writing, and the checks that the job is still wanted (not done, not failed, not replaced by
a newer upload of its key)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from videoconverter import telemetry
from videoconverter.brokers.base import Delivery
from videoconverter.chunking.messages import ChunkMessage
from videoconverter.chunking.watch import SourceWatch, Superseded
from videoconverter.chunking.work import WorkArea, work_area
from videoconverter.errors import LeaseLost, ShutdownRequested, SourceMissingError, StaleReceiptError
from videoconverter.events import ObjectCreated
from videoconverter.jobs.base import JobId
from videoconverter.jobs.log import JobLog
from videoconverter.pipeline import Services
from videoconverter.renditions import Rendition
from videoconverter.transcode.produce import marker_name, output_key
from videoconverter.transcode.products import Produced, Runner
from videoconverter.transcode.runner import RunResult, run_ffmpeg


class Beating(Protocol):
    """The worker's heartbeat while FFmpeg runs (``worker.Heartbeat``): ``lost`` is set when the lease is."""

    lost: threading.Event

    def __enter__(self) -> Beating: ...

    def __exit__(self, *exc: object) -> None: ...


#: ``(services, delivery, visibility_timeout_seconds)`` -> a heartbeat to run FFmpeg in.
HeartbeatFactory = Callable[[Services, Delivery, int], Beating]
#: The worker's own write of an output (the marker last, with the source's identity and, last, metadata of its
#: own for the marker: the sidecar captions it carries).
Publisher = Callable[[ObjectCreated, Produced, JobLog, Path, Mapping[str, str] | None], object]


@dataclass(frozen=True)
class Steps:
    """A rendition worker's parts, as the steps of split jobs use them."""

    svc: Services
    rendition: Rendition
    ffmpeg: str
    stop: threading.Event
    heartbeat: HeartbeatFactory
    publish: Publisher

    def job_of(self, message: ChunkMessage) -> JobId:
        return JobId(message.key, message.etag, message.rendition)

    def area_of(self, message: ChunkMessage) -> WorkArea:
        return work_area(self.rendition.output_bucket, message.rendition, message.key, message.etag)

    def beat(self, delivery: Delivery) -> Beating:
        return self.heartbeat(self.svc, delivery, self.svc.config.visibility_timeout_seconds)

    def watch(self, message: ChunkMessage) -> SourceWatch:
        """A watch on the upload's key while a step's FFmpeg runs, at the heartbeat's pace."""
        config = self.svc.config
        interval = config.visibility_timeout_seconds / 3
        return SourceWatch(self.svc.store, config.input_bucket, message.key, message.etag, interval)

    def runner(self, workdir: Path, heartbeat: Beating, watch: SourceWatch | None = None) -> Runner:
        """FFmpeg in ``workdir`` with the job's timeout, stopped when the worker stops, the lease is lost
        (:class:`LeaseLost`) or ``watch`` sees a newer upload (:class:`Superseded`). No progress: a split job's
        progress is its pieces'."""

        def stopping() -> bool:
            return self.stop.is_set() or heartbeat.lost.is_set() or (watch is not None and watch.replaced.is_set())

        def run(args: list[str], duration_seconds: float | None) -> RunResult:
            try:
                result = run_ffmpeg(
                    args,
                    workdir=workdir,
                    timeout_seconds=self.svc.config.limits.transcode_timeout_seconds,
                    duration_seconds=duration_seconds,
                    should_stop=stopping,
                )
            except ShutdownRequested:
                if heartbeat.lost.is_set():
                    raise LeaseLost() from None
                if watch is not None and watch.replaced.is_set() and not self.stop.is_set():
                    raise Superseded(watch.newer_etag) from None
                raise
            telemetry.ffmpeg_ran(self.rendition.name, result.elapsed_seconds, result.frames)
            return result

        return run

    def check_lease(self, delivery: Delivery) -> None:
        """Raise :class:`LeaseLost` unless this worker still holds ``delivery`` (extended for another timeout)."""
        try:
            self.svc.broker.extend(delivery, self.svc.config.visibility_timeout_seconds)
        except StaleReceiptError as exc:
            telemetry.lease_extension(delivery.queue, "lost")
            raise LeaseLost() from exc
        telemetry.lease_extension(delivery.queue, "extended")

    def output_written(self, message: ChunkMessage) -> bool:
        """Whether the output of this upload exists already (a join that ran, delivered again)."""
        marker = self.svc.store.head(self.rendition.output_bucket, output_key(message.key, marker_name(self.rendition)))
        return marker is not None and marker.metadata.get("source-etag") == message.etag

    def superseded(self, message: ChunkMessage) -> str:
        """The newer ETag of the upload's key when it was replaced since ("" while it is the same). Raises
        SourceMissingError when it is gone (deleted after upload: the job fails, as a whole encode's)."""
        source = self.svc.store.head(self.svc.config.input_bucket, message.key)
        if source is None:
            raise SourceMissingError(f"s3://{message.bucket}/{message.key} no longer exists (deleted after upload)")
        return "" if source.etag == message.etag else source.etag

    def still_wanted(self, message: ChunkMessage, job_log: JobLog) -> bool:
        """Whether this step has work to do: no output yet, the job neither done nor failed, and the upload
        not replaced (a replaced upload's job is done as superseded, and its work area deleted)."""
        if self.output_written(message):
            job_log.info(f"{message.step} step: the output already exists (delivered again)")
            return False
        record = self.svc.jobs.get(self.job_of(message))
        if record is not None and record.state.terminal:
            job_log.info(f"{message.step} step skipped: the job is {record.state} already")
            return False
        newer = self.superseded(message)
        if newer:
            self.supersede(message, newer, job_log)
            return False
        return True

    def redelivered(self, message: ChunkMessage, delivery: Delivery) -> None:
        """A step delivered again (after a failure, a hand-back or a lost worker) is another attempt of the job,
        as a whole job's: running again, its attempts the most any of its messages took."""
        if delivery.attempt > 1:
            self.svc.jobs.start(self.job_of(message), delivery.attempt)

    def retry(self, message: ChunkMessage, error: str, stderr_tail: str = "") -> None:
        """A step that will be delivered again: the job is queued again with the error, as a whole job is,
        unless it ended meanwhile (another piece failed it, or a newer upload superseded it)."""
        record = self.svc.jobs.get(self.job_of(message))
        if record is not None and not record.state.terminal:
            self.svc.jobs.retry(self.job_of(message), error, stderr_tail)

    def supersede(self, message: ChunkMessage, newer_etag: str, job_log: JobLog) -> None:
        note = f"superseded: the object was replaced (now etag {newer_etag}); its own event converts it"
        record = self.svc.jobs.get(self.job_of(message))
        if record is None or not record.state.terminal:
            self.svc.jobs.finish(self.job_of(message), "", note)
        removed = self.area_of(message).clear(self.svc.store)
        job_log.info(f"{note} (pieces stopped; {removed} objects of the work area deleted)")
