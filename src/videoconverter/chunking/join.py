"""The join of a split job: every piece is in the work area; concatenate them without re-encoding, add the
audio and the captions, write the output with the marker last, finish the job, delete the work area.

An MP4's join writes one file, as a whole encode does. An HLS ladder's join feeds each rung's pieces into
that rung's HLS muxer (``-c copy``: the segments are cut on the keyframes the pieces carry, where a whole
ladder's are), each audio track into its own, and writes the I-frame playlists, the subtitles and both
manifests as a whole ladder does. Captions are gathered here, once: the sidecars next to the upload and, when
the source has text tracks, those (the source is downloaded for them only).

A join delivered again after its output was written finds the output and only finishes the job.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from videoconverter.brokers.base import Delivery
from videoconverter.chunking.encode import join_command, ladder_join_command, pieces_list
from videoconverter.chunking.messages import ChunkMessage
from videoconverter.chunking.steps import Steps
from videoconverter.config import takes_captions
from videoconverter.errors import TruncatedSourceError
from videoconverter.jobs.log import JobLog
from videoconverter.publish import output_size
from videoconverter.sidecars import gather_sidecars, hand_back_late_sidecars
from videoconverter.transcode.captions import embed_captions, embedded_captions
from videoconverter.transcode.ladder import collect_package
from videoconverter.transcode.packaging import write_manifests, write_subtitles
from videoconverter.transcode.probe import probe
from videoconverter.transcode.produce import check_output_size, marker_name, output_key, output_version
from videoconverter.transcode.products import Conversion, OutputFile, Produced, Runner
from videoconverter.transcode.subtitles_text import Caption
from videoconverter.transcode.truncation import joined

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinCaptions:
    """The captions the output gets, the note on those refused, and the marker's record of the sidecars."""

    tracks: tuple[Caption, ...] = ()
    note: str = ""
    metadata: Mapping[str, str] | None = None


class Joiner:
    """Joins the split jobs of one rendition (see the module's docstring)."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    def join(self, message: ChunkMessage, delivery: Delivery, job_log: JobLog) -> None:
        steps = self.steps
        store, rendition = steps.svc.store, steps.rendition
        url = store.url(rendition.output_bucket, output_key(message.key, marker_name(rendition)))
        if steps.output_written(message):  # written by a join that died before it finished the job
            area, rung = steps.area_of(message), _first_rung(message)
            heads = [store.head(area.bucket, area.video_key(i, rung)) for i in range(message.video_pieces)]
            self._finish(message, url, job_log, _note(message, [h.metadata for h in heads if h is not None]))
            return
        if not steps.still_wanted(message, job_log):
            return
        steps.redelivered(message, delivery)
        with tempfile.TemporaryDirectory(prefix="videoconverter-") as tmp:  # mode 0700: private
            workdir = Path(tmp)
            with steps.beat(delivery) as heartbeat:
                run = steps.runner(workdir, heartbeat)
                captions = self._captions(message, workdir, run, job_log)
                produced = (self._ladder if message.plan().rungs else self._mp4)(message, workdir, run, captions)
            steps.check_lease(delivery)  # a worker that lost its lease must not write
            newer = steps.superseded(message)
            if newer:
                steps.supersede(message, newer, job_log)
                return
            job_log.info(f"joined {message.video_pieces} pieces in {produced.elapsed_seconds:.1f} s")
            steps.publish(message.upload, produced, job_log, workdir, captions.metadata)
        self._finish(message, url, job_log, produced.note)
        if steps.svc.config.matches_input(message.key) and takes_captions(rendition):
            try:  # the sidecars that arrived while the pieces were encoded
                hand_back_late_sidecars(steps.svc, rendition, message.key, job_log)
            except Exception:
                log.exception("could not queue late sidecar captions", extra={"key": message.key})

    def _mp4(self, message: ChunkMessage, workdir: Path, run: Runner, captions: JoinCaptions) -> Produced:
        steps, limits = self.steps, self.steps.svc.config.limits
        names, prerolls, note = self._fetch_pieces(message, workdir, "")
        (workdir / "pieces.txt").write_text(pieces_list(names, prerolls))
        audio = self._fetch_audio(message, workdir)
        output = workdir / "output.mp4"
        args = join_command(steps.ffmpeg, workdir / "pieces.txt", audio, output, limits, message.plan().audio)
        result = run(args, None)
        check_output_size(output, limits)
        output = embed_captions(run, workdir, steps.ffmpeg, output, captions.tracks)
        return Produced((OutputFile("", output),), joined(note, captions.note), result.elapsed_seconds)

    def _ladder(self, message: ChunkMessage, workdir: Path, run: Runner, captions: JoinCaptions) -> Produced:
        rendition, layout = self.steps.rendition, message.plan()
        rungs, audio_outputs = layout.ladder_rungs(rendition, workdir), layout.audio_outputs(workdir)
        lists, note = [], ""
        for rung in rungs:
            pieces = workdir / "pieces" / rung.rendition.name
            pieces.mkdir(parents=True)
            names, prerolls, note = self._fetch_pieces(message, pieces, rung.rendition.name)
            (pieces / "pieces.txt").write_text(pieces_list(names, prerolls))
            lists.append((rung, pieces / "pieces.txt"))
        audio = self._fetch_audio(message, workdir)
        for directory in [r.directory for r in rungs] + [a.directory for a in audio_outputs]:
            directory.mkdir(parents=True)
        args = ladder_join_command(self.steps.ffmpeg, lists, audio, audio_outputs, rendition.segment_seconds)
        result = run(args, None)
        version = output_version(message.etag)
        package, files = collect_package(rendition, version, message.rate, rungs, audio_outputs if audio else [])
        root = workdir / "hls"  # as under KEY/, with VERSION's directories directly in it
        package, subtitle_files = write_subtitles(package, captions.tracks, root)
        files += subtitle_files + write_manifests(package, root, root)
        return Produced(tuple(files), joined(note, captions.note), result.elapsed_seconds)

    def _captions(self, message: ChunkMessage, workdir: Path, run: Runner, job_log: JobLog) -> JoinCaptions:
        """The sidecars next to the upload and the source's own text tracks, as a whole encode gathers them."""
        steps, config, rendition = self.steps, self.steps.svc.config, self.steps.rendition
        if not takes_captions(rendition):
            return JoinCaptions()
        gathered = gather_sidecars(steps.svc.store, config, message.key, workdir, job_log)
        embedded: tuple[Caption, ...] = ()
        refused = ""
        if message.text_tracks:
            source = workdir / "source"
            fetched = steps.svc.store.get_file(config.input_bucket, message.key, source)
            if fetched.etag == message.etag:  # replaced: the check before writing stops the join
                info = probe(source, config.limits)
                job = Conversion(steps.ffmpeg, source, info, workdir, config.limits, run, "", config.ffmpeg_threads)
                embedded, refused = embedded_captions(job, rendition)
        # in the order a whole encode puts them: a ladder lists sidecars first, an MP4 its own tracks first
        tracks = (*gathered.captions, *embedded) if rendition.kind == "hls" else (*embedded, *gathered.captions)
        return JoinCaptions(tracks, joined(refused, gathered.note), gathered.metadata)

    def _fetch_pieces(self, message: ChunkMessage, directory: Path, rung: str) -> tuple[list[str], list[Fraction], str]:
        """Download the video pieces (of ``rung``, for a ladder) into ``directory``: the files to concatenate,
        in order (a piece past the end of a truncated source holds nothing and is left out), the pre-roll of
        each to drop, and the job's note."""
        store, area = self.steps.svc.store, self.steps.area_of(message)
        names: list[str] = []
        prerolls: list[Fraction] = []
        found: list[Mapping[str, str]] = []
        for i in range(message.video_pieces):
            name = f"video-{i:05d}.mp4"
            found.append(metadata := store.get_file(area.bucket, area.video_key(i, rung), directory / name).metadata)
            if metadata.get("frames") != "0":
                names.append(name)
                prerolls.append(Fraction(int(metadata.get("preroll-frames", "0"))) / message.rate)
        if not names:
            raise TruncatedSourceError("the upload is truncated: no video could be read")
        return names, prerolls, _note(message, found)

    def _fetch_audio(self, message: ChunkMessage, workdir: Path) -> Path | None:
        if message.video_pieces == message.pieces:  # a source without audio: no audio piece
            return None
        area = self.steps.area_of(message)
        self.steps.svc.store.get_file(area.bucket, area.audio_key(), workdir / "audio.m4a")
        return workdir / "audio.m4a"

    def _finish(self, message: ChunkMessage, url: str, job_log: JobLog, note: str) -> None:
        steps = self.steps
        job = steps.job_of(message)
        record = steps.svc.jobs.get(job)
        if record is None or not record.state.terminal:
            size = output_size(steps.svc.store, url)
            steps.svc.jobs.finish(job, url, note, size, quality=message.quality)
        removed = steps.area_of(message).clear(steps.svc.store)
        job_log.info(f"done: {url}" + (f" ({note})" if note else "") + f"; {removed} pieces deleted")


def _first_rung(message: ChunkMessage) -> str:
    rungs = message.plan().rungs
    return rungs[0].name if rungs else ""


def _note(message: ChunkMessage, pieces: list[Mapping[str, str]]) -> str:
    """The job's note: the plan's (size kept, the search's result), then what the pieces found (a truncated
    source accepted: every piece that fell short says the same)."""
    return joined(message.note, next((p["note"] for p in pieces if p.get("note")), ""))
