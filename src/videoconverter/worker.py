"""The worker of one rendition: receive -> download -> probe -> transcode -> write -> record -> ack.

Every step is idempotent, since delivery is at least once: the output key is the input key, writes are
atomic, the output carries the source ETag it was made from, and a redelivered event whose output exists is
acknowledged without work. Permanent errors dead-letter at once; transient ones are released with back-off
until ``max_receive_count`` attempts, then dead-lettered.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from videoconverter import telemetry
from videoconverter.brokers.base import Delivery
from videoconverter.chunking.handler import ChunkHandler
from videoconverter.chunking.messages import chunk_message
from videoconverter.chunking.plan import applies
from videoconverter.chunking.start import split_job
from videoconverter.chunking.steps import Steps
from videoconverter.config import takes_captions
from videoconverter.consumer import (
    ABANDONED,
    ACKED,
    STOP_CHECK_SECONDS,
    Consumer,
    Settlement,
    dead_lettered,
    released,
    settle,
)
from videoconverter.dead_letters import Sweeper
from videoconverter.errors import (
    InvalidEventError,
    InvalidKeyError,
    LeaseLost,
    LimitExceededError,
    PermanentError,
    ShutdownRequested,
    SourceMissingError,
    StaleReceiptError,
    TranscodeError,
    TransientError,
)
from videoconverter.events import ObjectCreated, parse_event
from videoconverter.heartbeat import Heartbeat, job_runner
from videoconverter.jobs.base import JobId
from videoconverter.jobs.log import JobLog
from videoconverter.jobs.timeline import Timeline, TimelineRecorder, parse_iso_time
from videoconverter.pipeline import Services
from videoconverter.publish import Target, output_size, publish_output
from videoconverter.recovery.journal import broker_fingerprint
from videoconverter.recovery.workspace import Workspace
from videoconverter.redelivery import Outcome, already_handled, drop_duplicate, superseded
from videoconverter.renditions import Rendition
from videoconverter.sidecars import Gathered, SidecarJob, add_sidecar, gather_sidecars, hand_back_late_sidecars
from videoconverter.storage.base import ObjectInfo
from videoconverter.storage.keys import validate_key
from videoconverter.transcode.probe import MediaInfo, probe
from videoconverter.transcode.produce import marker_name, output_key, output_version, produce
from videoconverter.transcode.products import Conversion, Produced, Runner
from videoconverter.transcode.runner import ffmpeg_executable
from videoconverter.transcode.subtitles_text import Caption

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        services: Services,
        rendition: Rendition,
        stop: threading.Event | None = None,
        ffmpeg: str | None = None,
        drain: threading.Event | None = None,
    ) -> None:
        self.svc = services
        self.config = services.config
        self.rendition = rendition
        self.stop = stop or threading.Event()  # set: hand the current job back and stop
        self.drain = drain or threading.Event()  # set: stop after the current job (scaling in)
        self.ffmpeg = ffmpeg or ffmpeg_executable()
        # This process's state folder: the jobs' temp dirs, and the journal of leases held, which `up`'s
        # supervisor hands back at once if this process dies (videoconverter.recovery).
        self.workspace = Workspace()
        self.leases = self.workspace.journal(broker_fingerprint(self.config.broker_url))
        self.chunks = ChunkHandler(Steps(services, rendition, self.ffmpeg, self.stop, Heartbeat, self._publish))

    # --- the loop -----------------------------------------------------------------------------------------

    def run(self, max_messages: int | None = None, exit_when_idle: bool = False) -> int:
        """Handle messages until stopped (or ``max_messages`` handled, or the queue is empty when
        ``exit_when_idle``); return how many were handled."""
        log.info("worker for %s listening on %s", self.rendition.name, self.rendition.queue)
        try:
            handled = self.consumer().run(max_messages, exit_when_idle)
        finally:
            self.workspace.remove_if_empty()  # a worker that stops cleanly leaves no state folder
        log.info("worker for %s stopped after %d messages", self.rendition.name, handled)
        return handled

    def consumer(self) -> Consumer:
        """The receive loop of this worker: one message at a time from the rendition's queue."""
        return Consumer(
            self.svc.broker,
            self.rendition.queue,
            self.handle,
            visibility_timeout_seconds=self.config.visibility_timeout_seconds,
            wait_seconds=min(self.config.receive_wait_seconds, STOP_CHECK_SECONDS),
            stop=self.stop,
            drain=self.drain,
            between=Sweeper(self.svc, [self.rendition], self.config.visibility_timeout_seconds),
        )

    def handle(self, delivery: Delivery) -> Settlement:
        """Handle one message and settle it; return what was done. Never raises for a problem with the message
        or the job."""
        self.leases.hold(delivery, self.config.visibility_timeout_seconds)
        try:
            settlement = self._decide(delivery, time.time())
        finally:
            self.leases.drop(delivery)  # before settling: a journal must never name a settled lease
        return settle(self.svc.broker, delivery, settlement)

    def _decide(self, delivery: Delivery, received_at: float) -> Settlement:
        try:
            chunk = chunk_message(delivery.body)  # a piece of a split job (chunking/), or None
            if chunk is not None:
                return self.chunks.handle(chunk, delivery)
            records = parse_event(delivery.body)
        except InvalidEventError as exc:
            log.warning(
                "dead-lettering malformed message %s: %s",
                delivery.message_id,
                exc,
                extra={"queue": delivery.queue, "message_id": delivery.message_id},
            )
            return dead_lettered(f"malformed message: {exc}")
        for record in records:
            uploaded, published = parse_iso_time(record.event_time), delivery.sent_at or None
            known = Timeline(uploaded=uploaded, published=published, received=received_at)
            settlement = self._handle_record(record, delivery, TimelineRecorder(known))
            if settlement is not None:
                return settlement
        return ACKED

    # --- one upload -----------------------------------------------------------------------------------------

    def _handle_record(self, record: ObjectCreated, delivery: Delivery, stamps: TimelineRecorder) -> Settlement | None:
        """Convert one upload of the message; None when done (the next record follows), else how to settle the
        message now."""
        if not self.config.accepts(record.bucket, record.key):
            log.info(
                "ignoring event for s3://%s/%s: not an input of this pipeline",
                record.bucket,
                record.key,
                extra={"key": record.key, "rendition": self.rendition.name},
            )
            return None
        if self.config.matches_caption(record.key) and not takes_captions(self.rendition):
            log.info(
                "ignoring caption s3://%s/%s: %s carries no captions",
                record.bucket,
                record.key,
                self.rendition.name,
                extra={"key": record.key, "rendition": self.rendition.name},
            )
            return None
        # Removed once the job is recorded (and before the message is settled): deleting a large source and its
        # output takes tens of milliseconds, which need not come before "done".
        with self.workspace.job_dir() as workdir:  # mode 0700: private
            return self._attempt(record, delivery, stamps, workdir)

    def _attempt(
        self, record: ObjectCreated, delivery: Delivery, stamps: TimelineRecorder, workdir: Path
    ) -> Settlement | None:
        job = JobId(record.key, record.etag, self.rendition.name)
        job_log = JobLog(
            self.svc.jobs, record.key, self.rendition.name, source_etag=record.etag, attempt=delivery.attempt
        )
        jobs = self.svc.jobs
        started = jobs.start(job, delivery.attempt, delivery.message_id, self.config.visibility_timeout_seconds)
        if started.holder != delivery.message_id:
            return drop_duplicate(started, delivery, job_log)
        job_log.info(f"attempt {delivery.attempt} started on {self.rendition.queue}")
        try:
            outcome = self._convert(record, delivery, job_log, stamps, workdir)
        except PermanentError as exc:
            stderr = getattr(exc, "stderr_tail", "")
            jobs.fail(job, exc.message, stderr, stamps.timeline())
            job_log.error(f"permanent failure, dead-lettered: {exc.message}")
            return dead_lettered(exc.message)
        except ShutdownRequested:
            jobs.retry(job, "worker stopped during the job; it was handed back to the queue", "", stamps.timeline())
            job_log.warning("worker stopping: job handed back to the queue")
            return released(0.0)
        except LeaseLost:
            job_log.warning("lease lost (the message went to another worker): abandoned without writing")
            return ABANDONED
        except Exception as exc:
            return self._transient_failure(job, job_log, delivery, exc, stamps.timeline())
        if outcome.pending:
            return None
        size = outcome.output_size
        if size is None:  # nothing written now (done before, superseded): the size of what exists, if any
            size = output_size(self.svc.store, outcome.output_url)
        done = jobs.finish(job, outcome.output_url, outcome.note, size, outcome.quality, stamps.timeline())
        job_log.info(
            f"done: {outcome.output_url or 'nothing written'}" + (f" ({outcome.note})" if outcome.note else "")
        )
        job_log.info(done.timeline.summary())
        if self.config.matches_input(record.key) and takes_captions(self.rendition):
            self._hand_back_sidecars(record.key, job_log)
        return None

    def _hand_back_sidecars(self, video_key: str, job_log: JobLog) -> None:
        """Queue the sidecars that arrived while the video converted (after its job is recorded done, so that
        a sidecar's own job either sees it done or is queued here); never fails the finished job."""
        try:
            hand_back_late_sidecars(self.svc, self.rendition, video_key, job_log)
        except Exception:
            log.exception("could not queue late sidecar captions", extra={"key": video_key})

    def _transient_failure(
        self, job: JobId, job_log: JobLog, delivery: Delivery, exc: Exception, timeline: Timeline
    ) -> Settlement:
        message = exc.message if isinstance(exc, TransientError) else f"{type(exc).__name__}: {exc}"
        stderr = exc.stderr_tail if isinstance(exc, TranscodeError) else ""
        if not isinstance(exc, TransientError):
            log.exception("unexpected error", extra={"key": job.key, "rendition": job.rendition})
        if delivery.attempt >= self.config.max_receive_count:
            reason = f"gave up after {delivery.attempt} attempts: {message}"
            self.svc.jobs.fail(job, reason, stderr, timeline)
            job_log.error(f"dead-lettered: {reason}")
            return dead_lettered(reason)
        delay = self.config.retry_delay_seconds(delivery.attempt)
        self.svc.jobs.retry(job, message, stderr, timeline)
        job_log.warning(f"attempt {delivery.attempt} failed, retrying in {delay:.0f} s: {message}")
        return released(delay)

    def _convert(
        self, record: ObjectCreated, delivery: Delivery, job_log: JobLog, stamps: TimelineRecorder, workdir: Path
    ) -> Outcome:
        store, config, rendition = self.svc.store, self.config, self.rendition
        try:
            validate_key(record.key)
        except InvalidKeyError as exc:
            raise InvalidEventError(exc.message) from exc
        if config.matches_caption(record.key):
            return self._add_sidecar(record, delivery, job_log, workdir)
        marker_key = output_key(record.key, marker_name(rendition))
        existing = store.head(rendition.output_bucket, marker_key)
        marker_url = store.url(rendition.output_bucket, marker_key)
        skip = already_handled(record, existing.metadata if existing else None, marker_url)
        if skip is not None:
            job_log.info(skip.note)
            return skip
        source = store.head(config.input_bucket, record.key)
        if source is None:
            raise SourceMissingError(f"s3://{record.bucket}/{record.key} no longer exists (deleted after upload)")
        if source.etag != record.etag:
            return superseded(job_log, source.etag)
        if source.size > config.limits.max_input_bytes:
            raise LimitExceededError(f"the upload is {source.size} bytes; the limit is {config.limits.max_input_bytes}")
        source_path = workdir / "source"
        fetched = store.get_file(config.input_bucket, record.key, source_path)
        stamps.stamp("downloaded")
        telemetry.bytes_in(rendition.name, fetched.size)
        if fetched.etag != record.etag:
            return superseded(job_log, fetched.etag)
        info = probe(source_path, config.limits)
        stamps.stamp("probed")
        job_log.info(
            f"probed: {info.width}x{info.height} {info.video_codec}, rotation "
            f"{info.rotation_degrees}, {info.duration_seconds or 0:.1f} s, "
            f"{'with' if info.has_audio else 'no'} audio"
            + (f", HDR ({info.color_transfer}, tone-mapped)" if info.is_hdr and rendition.hdr != "keep" else "")
            + (f", variable frame rate (avg {info.frame_rate:.2f} fps)" if info.variable_frame_rate else "")
        )
        chunking = config.chunking
        if applies(chunking.enabled, chunking.min_source_seconds, rendition.kind, info.duration_seconds):
            steps = self.chunks.steps
            return Outcome("", split_job(steps, record, info, source_path, workdir, delivery, job_log), pending=True)
        sidecars = Gathered()
        if takes_captions(rendition):
            sidecars = gather_sidecars(store, config, record.key, workdir, job_log)
        produced = self._produce(info, source_path, workdir, delivery, record, stamps, sidecars.captions)
        job_log.info(f"FFmpeg finished in {produced.elapsed_seconds:.1f} s ({len(produced.files)} file(s) to write)")
        if produced.quality is not None:
            job_log.info(produced.quality.log_line())
        self._check_lease(delivery)  # a worker that lost its lease must not write
        with Heartbeat(self.svc, delivery, config.visibility_timeout_seconds):  # a ladder is many files
            written = self._publish(record, produced, job_log, workdir, sidecars.metadata)
        stamps.stamp("written")
        quality = json.dumps(produced.quality.as_dict()) if produced.quality is not None else ""
        note = "; ".join(n for n in (produced.note, sidecars.note) if n)
        return Outcome(marker_url, note, quality, written.size)

    def _add_sidecar(self, record: ObjectCreated, delivery: Delivery, job_log: JobLog, workdir: Path) -> Outcome:
        """A sidecar caption's own job: add it to its video's output (sidecars.py)."""
        with Heartbeat(self.svc, delivery, self.config.visibility_timeout_seconds) as heartbeat:
            run = self._runner(workdir, record, heartbeat, TimelineRecorder(Timeline()))
            job = SidecarJob(
                self.svc.store, self.svc.jobs, self.config, self.rendition, self.ffmpeg, run, workdir, job_log,
                lambda: self._check_lease(delivery),
            )  # fmt: skip
            added = add_sidecar(job, record)
        return Outcome(added.output_url, added.note, output_size=added.output_size)

    def _produce(
        self,
        info: MediaInfo,
        source_path: Path,
        workdir: Path,
        delivery: Delivery,
        record: ObjectCreated,
        stamps: TimelineRecorder,
        captions: tuple[Caption, ...] = (),
    ) -> Produced:
        started = time.monotonic()
        with Heartbeat(self.svc, delivery, self.config.visibility_timeout_seconds) as heartbeat:
            try:
                run = self._runner(workdir, record, heartbeat, stamps)
                config = self.config
                job = Conversion(
                    self.ffmpeg, source_path, info, workdir, config.limits, run, output_version(record.etag),
                    config.ffmpeg_threads, captions,
                )  # fmt: skip
                produced = produce(self.rendition, job)
            except ShutdownRequested:
                if heartbeat.lost.is_set():
                    raise LeaseLost() from None
                raise
        return dataclasses.replace(produced, elapsed_seconds=time.monotonic() - started)

    def _publish(
        self,
        record: ObjectCreated,
        produced: Produced,
        job_log: JobLog,
        workdir: Path,
        extra_metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        target = Target(self.svc.store, self.rendition.output_bucket, self.rendition.name, self.config.matches_input)
        return publish_output(target, record, produced, job_log, workdir, extra_metadata)

    def _runner(self, workdir: Path, record: ObjectCreated, heartbeat: Heartbeat, stamps: TimelineRecorder) -> Runner:
        job = JobId(record.key, record.etag, self.rendition.name)
        timeout = self.config.limits.transcode_timeout_seconds
        stopping = lambda: self.stop.is_set() or heartbeat.lost.is_set()  # noqa: E731
        return job_runner(self.svc.jobs, job, workdir, timeout, stopping, stamps)

    def _check_lease(self, delivery: Delivery) -> None:
        try:
            self.svc.broker.extend(delivery, self.config.visibility_timeout_seconds)
        except StaleReceiptError as exc:
            telemetry.lease_extension(delivery.queue, "lost")
            raise LeaseLost() from exc
        telemetry.lease_extension(delivery.queue, "extended")
