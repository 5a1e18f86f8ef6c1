"""Running a split job's pieces and its join, on whichever worker of the rendition leases them.

A piece: check the job is still wanted, encode the piece from the source (downloaded, probed again: the
worker may never have seen it), check the upload was not replaced meanwhile and the lease is still ours, write
the piece to the work area, count it. The worker that counts the last piece queues the join; the join
concatenates, writes the output with the marker last, finishes the job and deletes the work area. A piece that
exists in the work area is not encoded again; a join delivered again finds the output and stops, so every step
may run twice.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from videoconverter.brokers.base import Delivery
from videoconverter.chunking.encode import (
    audio_piece_command,
    ladder_piece_command,
    readable_command,
    video_piece_command,
)
from videoconverter.chunking.join import Joiner
from videoconverter.chunking.messages import ChunkMessage, Step
from videoconverter.chunking.plan import Piece, with_preroll
from videoconverter.chunking.steps import Steps
from videoconverter.chunking.watch import Superseded
from videoconverter.chunking.work import WorkArea
from videoconverter.consumer import ABANDONED, ACKED, Settlement, dead_lettered, released
from videoconverter.errors import LeaseLost, PermanentError, ShutdownRequested, TranscodeError
from videoconverter.jobs.log import JobLog
from videoconverter.renditions import Rendition
from videoconverter.transcode.command import kept_audio_tracks
from videoconverter.transcode.framerate import frames_per_interval
from videoconverter.transcode.geometry import output_size as picture_size
from videoconverter.transcode.loudness import loudness_note, measure_output, plan_loudness
from videoconverter.transcode.probe import MediaInfo, probe
from videoconverter.transcode.produce import check_output_size
from videoconverter.transcode.products import Conversion, Runner
from videoconverter.transcode.runner import RunResult
from videoconverter.transcode.truncation import check_read, is_truncated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoded:
    """A piece encoded, before it is written to the work area (its metadata goes with it, for the join)."""

    paths: tuple[Path, ...]  # in the order of the piece's keys (:func:`piece_keys`): an HLS piece has one a rung
    frames: int | None  # the video frames it holds (0: it starts past the end of a truncated source); audio: None
    note: str = ""  # a truncated source accepted: what the job's note says of it
    preroll_frames: int = 0  # encoded before the piece's own first frame: the join drops them

    def metadata(self) -> dict[str, str]:
        return {
            **({"frames": str(self.frames)} if self.frames is not None else {}),
            **({"note": self.note} if self.note else {}),
            **({"preroll-frames": str(self.preroll_frames)} if self.preroll_frames else {}),
        }


class ChunkHandler:
    """Handles the chunk messages of one rendition's queue (see :mod:`videoconverter.chunking.messages`)."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps
        self.joiner = Joiner(steps)

    def handle(self, message: ChunkMessage, delivery: Delivery) -> Settlement:
        """Run the step ``message`` names; return how to settle ``delivery`` (never raises for the job)."""
        steps = self.steps
        if message.rendition != steps.rendition.name:
            return dead_lettered(f"a piece of rendition {message.rendition!r} on the queue of {steps.rendition.name!r}")
        job = steps.job_of(message)
        job_log = JobLog(
            steps.svc.jobs, message.key, message.rendition, source_etag=message.etag, attempt=delivery.attempt
        )
        try:
            if message.step is Step.JOIN:
                self.joiner.join(message, delivery, job_log)
            else:
                self._piece(message, delivery, job_log)
        except PermanentError as exc:
            steps.svc.jobs.fail(job, exc.message, getattr(exc, "stderr_tail", ""))
            job_log.error(f"{_name(message)}: permanent failure, dead-lettered: {exc.message}")
            return dead_lettered(exc.message)
        except ShutdownRequested:
            steps.retry(message, f"worker stopped during {_name(message)}; it was handed back to the queue")
            job_log.warning(f"worker stopping: {_name(message)} handed back to the queue")
            return released(0.0)
        except LeaseLost:
            job_log.warning(f"{_name(message)}: lease lost (the message went to another worker): nothing written")
            return ABANDONED
        except Exception as exc:
            return self._transient(message, delivery, job_log, exc)
        return ACKED

    def _transient(self, message: ChunkMessage, delivery: Delivery, job_log: JobLog, exc: Exception) -> Settlement:
        text = exc.message if isinstance(exc, TranscodeError) else f"{type(exc).__name__}: {exc}"
        stderr = exc.stderr_tail if isinstance(exc, TranscodeError) else ""
        if not isinstance(exc, TranscodeError):
            log.exception("unexpected error", extra={"key": message.key, "rendition": message.rendition})
        config = self.steps.svc.config
        if delivery.attempt >= config.max_receive_count:
            reason = f"gave up after {delivery.attempt} attempts: {_name(message)}: {text}"  # as a whole job's
            self.steps.svc.jobs.fail(self.steps.job_of(message), reason, stderr)
            job_log.error(f"dead-lettered: {reason}")
            return dead_lettered(reason)
        delay = config.retry_delay_seconds(delivery.attempt)
        self.steps.retry(message, f"{_name(message)}: {text}", stderr)
        job_log.warning(f"{_name(message)}: attempt {delivery.attempt} failed, retrying in {delay:.0f} s: {text}")
        return released(delay)

    # --- a piece ----------------------------------------------------------------------------------------------

    def _piece(self, message: ChunkMessage, delivery: Delivery, job_log: JobLog) -> None:
        steps, store = self.steps, self.steps.svc.store
        if not steps.still_wanted(message, job_log):
            return
        steps.redelivered(message, delivery)
        area = steps.area_of(message)
        keys = piece_keys(area, message)
        if store.head(area.bucket, keys[-1]) is not None:  # the last is written last
            job_log.info(f"{_name(message)} is in the work area already (delivered again)")
        else:
            with tempfile.TemporaryDirectory(prefix="videoconverter-") as tmp:  # mode 0700: private
                workdir = Path(tmp)
                try:
                    encoded = self._encode(message, delivery, workdir, job_log)
                except Superseded as exc:
                    job_log.info(f"{_name(message)}: the upload was replaced while FFmpeg ran: stopped early")
                    steps.supersede(message, exc.newer_etag, job_log)
                    return
                if encoded is None:
                    return
                steps.check_lease(delivery)  # a worker that lost its lease must not write
                newer = steps.superseded(message)
                if newer:  # replaced while this piece was encoded: it writes nothing
                    steps.supersede(message, newer, job_log)
                    return
                for key, path in zip(keys, encoded.paths, strict=True):
                    store.put_file(area.bucket, key, path, encoded.metadata())
        count = steps.svc.jobs.piece_done(steps.job_of(message), message.index)
        job_log.info(f"{_name(message)} done: {count.done} of {count.planned} pieces")
        if count.done == count.planned and (count.newly or delivery.attempt > 1):  # a redelivery may be the last
            steps.svc.broker.send(
                steps.rendition.queue, dataclasses.replace(message, step=Step.JOIN, index=-1).to_json()
            )
            job_log.info(f"every piece is done: join queued on {steps.rendition.queue}")

    def _encode(self, message: ChunkMessage, delivery: Delivery, workdir: Path, job_log: JobLog) -> Encoded | None:
        """The piece, encoded into ``workdir``; None when the upload was replaced before its download."""
        steps, config = self.steps, self.steps.svc.config
        source = workdir / "source"
        fetched = steps.svc.store.get_file(config.input_bucket, message.key, source)
        if fetched.etag != message.etag:
            steps.supersede(message, fetched.etag, job_log)
            return None
        info = probe(source, config.limits)
        rendition = steps.rendition
        if message.crf >= 0:  # the VMAF target's choice, made once when the job was split
            rendition = dataclasses.replace(rendition, crf=message.crf)
        destination = workdir / ("audio.m4a" if message.step is Step.AUDIO else "piece.mp4")
        with steps.beat(delivery) as heartbeat, steps.watch(message) as watch:
            run = steps.runner(workdir, heartbeat, watch)
            if message.step is Step.AUDIO:
                result, encoded = self._encode_audio(message, info, rendition, source, destination, run, job_log)
            else:
                result, encoded = self._encode_video(message, info, rendition, source, destination, run)
                if encoded.note:
                    job_log.warning(f"{_name(message)}: {encoded.note}")
        for path in encoded.paths:
            check_output_size(path, config.limits)
        job_log.info(
            f"{_name(message)} encoded in {result.elapsed_seconds:.1f} s"
            + (f" ({encoded.frames} frames)" if encoded.frames is not None else "")
        )
        return encoded

    def _encode_audio(
        self,
        message: ChunkMessage,
        info: MediaInfo,
        rendition: Rendition,
        source: Path,
        destination: Path,
        run: Runner,
        job_log: JobLog,
    ) -> tuple[RunResult, Encoded]:
        """The whole audio, normalised to the rendition's ``loudness_lufs`` when it sets one, as a whole encode
        does (:mod:`~videoconverter.transcode.loudness`); the job's log says the loudness before and after."""
        ffmpeg, config = self.steps.ffmpeg, self.steps.svc.config
        job = Conversion(ffmpeg, source, info, destination.parent, config.limits, run, "", config.ffmpeg_threads)
        tracks = message.plan().audio or kept_audio_tracks(info, rendition)  # an older message: as the split would
        plans = [plan_loudness(job, rendition, track.index) for track in tracks]
        args = audio_piece_command(
            ffmpeg, source, destination, info, rendition, config.limits, config.ffmpeg_threads,
            tracks=tracks, filters=[plan.filter if plan else "" for plan in plans],
        )  # fmt: skip
        result = run(args, info.duration_seconds)
        for stream, plan in enumerate(plans):
            if plan is not None:
                after = None if plan.measurement.silent else measure_output(job, destination, stream)
                track = f"audio track {tracks[stream].index}: " if len(tracks) > 1 else ""
                job_log.info(f"{_name(message)}: {track}{loudness_note(plan, after)}")
        return result, Encoded((destination,), None)

    def _encode_video(
        self, message: ChunkMessage, info: MediaInfo, rendition: Rendition, source: Path, destination: Path, run: Runner
    ) -> tuple[RunResult, Encoded]:
        """A video piece, its pre-roll first (see :func:`~videoconverter.chunking.plan.with_preroll`)."""
        config = self.steps.svc.config
        gop = frames_per_interval(message.rate, rendition.keyframe_interval_seconds)
        piece = with_preroll(Piece(message.index, message.start_frame, message.frames or None), gop)
        rungs = message.plan().ladder_rungs(rendition, destination.parent)
        if rungs:  # an HLS ladder's piece: every rung from one decode
            outputs = [(rung, destination.with_name(f"piece-{rung.rendition.name}.mp4")) for rung in rungs]
            args = ladder_piece_command(
                self.steps.ffmpeg, source, outputs, info, rendition, config.limits, piece, message.rate,
                config.ffmpeg_threads,
            )  # fmt: skip
            paths = tuple(path for _, path in outputs)
        else:
            size = picture_size(*info.display_size, rendition)
            args = video_piece_command(
                self.steps.ffmpeg, source, destination, info, size, rendition, config.limits, piece, message.rate,
                config.ffmpeg_threads,
            )  # fmt: skip
            paths = (destination,)
        preroll_seconds = piece.preroll_frames / float(message.rate)
        encoded_seconds = preroll_seconds + piece.duration_seconds(message.rate, _video_seconds(info))
        result = run(args, encoded_seconds)
        note = self._check_read(result, encoded_seconds, info, source, run)
        frames = max(0, result.frames - piece.preroll_frames)  # the piece's own: 0 past the end of a truncated source
        return result, Encoded(paths, frames, note, piece.preroll_frames)

    def _check_read(self, result: RunResult, encoded_seconds: float, info: MediaInfo, source: Path, run: Runner) -> str:
        """A truncated source, as a whole encode tells it: nothing ("") when the piece was read whole; when it
        fell short (or read nothing: it starts past the end of the data), how far the whole source can be read
        against the video's promised length, measured by a copy pass from the start. So every piece that falls
        short names the same length, the one a whole encode would; raises TruncatedSourceError with it unless
        ``accept_truncated_sources`` (then: the note)."""
        if result.frames and not is_truncated(result.out_time_seconds, encoded_seconds):
            return ""
        limits = self.steps.svc.config.limits
        readable = run(readable_command(self.steps.ffmpeg, source, info, limits), _video_seconds(info))
        return check_read(readable.out_time_seconds or 0.0, _video_seconds(info), limits)


def _name(message: ChunkMessage) -> str:
    if message.step is Step.VIDEO:
        return f"piece {message.index + 1} of {message.video_pieces}"
    return "the audio piece" if message.step is Step.AUDIO else "the join"


def piece_keys(area: WorkArea, message: ChunkMessage) -> list[str]:
    """The work area's keys of the piece ``message`` names, in write order: the audio's, a video piece's, or
    one for each rung of a ladder's video piece."""
    if message.step is Step.AUDIO:
        return [area.audio_key()]
    rungs = message.plan().rungs
    return [area.video_key(message.index, r.name) for r in rungs] if rungs else [area.video_key(message.index)]


def _video_seconds(info: MediaInfo) -> float:
    """How long the video runs (the audio may run longer): what the last piece is measured against."""
    return info.video_duration_seconds or info.duration_seconds or 0.0
