"""What a kind writes: turn a probed source into a rendition's files, whatever its kind; the worker writes them
in order. Every kind checks that the source could be read to the end its probe promised (:mod:`.truncation`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from videoconverter.errors import LimitExceededError
from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.captions import embed_captions, embedded_captions
from videoconverter.transcode.command import build_command, kept_audio_tracks
from videoconverter.transcode.geometry import output_size
from videoconverter.transcode.loudness import LoudnessPlan, loudness_note, measure_output, plan_loudness
from videoconverter.transcode.probe import probe
from videoconverter.transcode.products import Conversion, OutputFile, Produced, Runner
from videoconverter.transcode.quality import measure_with
from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg
from videoconverter.transcode.search import SearchTarget, searched
from videoconverter.transcode.truncation import check_read, joined

OUTPUT_CAP_SHARE = 0.98  # of max_output_bytes: an output this large was stopped by -fs

#: The file of each kind whose presence says the output is complete ("" is the upload's key itself).
MARKERS = {"mp4": "", "hls": "master.m3u8", "thumbnails": "index.json"}


def marker_name(rendition: Rendition) -> str:
    return MARKERS[rendition.kind]


def output_key(key: str, name: str) -> str:
    """Where an output file goes: the upload's key itself, or a name under ``KEY/``."""
    return f"{key}/{name}" if name else key


def output_version(etag: str) -> str:
    """The directory name of one upload's multi-file output: from its ETag, letters and digits only."""
    return "".join(c for c in etag if c.isalnum())[:16].lower() or "v"


def produce(rendition: Rendition, job: Conversion) -> Produced:
    """Run FFmpeg as ``rendition.kind`` needs and return the files to write (the marker last)."""
    if rendition.kind == "hls":
        from videoconverter.transcode.ladder import produce_ladder

        return produce_ladder(rendition, job)
    if rendition.kind == "thumbnails":
        from videoconverter.transcode.thumbnails import produce_thumbnails

        return produce_thumbnails(rendition, job)
    info = job.info
    size = output_size(*info.display_size, rendition)
    search, skipped = searched(job, rendition, [SearchTarget(rendition.name, rendition, size)])
    if search is not None:
        rendition = dataclasses.replace(rendition, crf=search.choices[0].crf)
    destination = job.workdir / "output.mp4"
    plans = [plan_loudness(job, rendition, track.index) for track in kept_audio_tracks(info, rendition)]
    filters = [plan.filter if plan else "" for plan in plans]
    args = build_command(
        job.ffmpeg, job.source, destination, info, size, rendition, job.limits, job.threads,
        audio_filter=filters[0] if filters else "", track_filters=filters,
    )  # fmt: skip
    result = job.run(args, info.duration_seconds)
    check_output_size(destination, job.limits)  # before the length: a capped output is short too
    read = check_read(result.out_time_seconds, info.duration_seconds, job.limits)
    if search is not None and rendition.verify_vmaf:
        report = measure_with(job.run, job.workdir, job.ffmpeg, job.source, info, destination, job.limits, job.threads)
        search = search.with_measured({rendition.name: report.vmaf_mean})
    loudness_after = joined(*(_loudness_after(job, plan, destination, i, len(plans)) for i, plan in enumerate(plans)))
    destination, captions_note = with_captions(job, rendition, destination)
    note = joined(size.note, search.note() if search else skipped, read, loudness_after, captions_note)
    return Produced((OutputFile("", destination),), note, quality=search)


def _loudness_after(job: Conversion, plan: LoudnessPlan | None, output: Path, stream: int, streams: int) -> str:
    """The note on a normalised output: its loudness measured again (a silent track, left as it was, is not);
    with several audio tracks, each named."""
    if plan is None:
        return ""
    note = loudness_note(plan, None if plan.measurement.silent else measure_output(job, output, stream))
    return f"audio {stream}: {note}" if streams > 1 else note


def with_captions(job: Conversion, rendition: Rendition, mp4: Path) -> tuple[Path, str]:
    """``mp4`` with the source's text tracks and the job's sidecars as mov_text tracks (a stream-copying remux
    after the encode, so the encode's arguments stay as they are), and a note on the tracks left out."""
    if not rendition.captions or not (job.info.text_tracks or job.captions):
        return mp4, ""
    embedded, note = embedded_captions(job, rendition)
    return embed_captions(job.run, job.workdir, job.ffmpeg, mp4, (*embedded, *job.captions)), note


def check_output_size(output: Path, limits: Limits) -> None:
    """Raise :class:`LimitExceededError` when FFmpeg stopped at ``-fs`` (``max_output_bytes``): the output is
    cut there, which must not pass for a truncated upload or for a whole output."""
    size = output.stat().st_size if output.exists() else 0
    # -fs stops once the limit is passed; the index written after (+faststart) can land a little either side.
    if size >= limits.max_output_bytes * OUTPUT_CAP_SHARE:
        raise LimitExceededError(
            f"the output reached [limits] max_output_bytes ({limits.max_output_bytes} bytes) and was cut there: "
            "raise the limit or lower the rendition's bitrate"
        )


def convert_file(
    source: Path,
    workdir: Path,
    rendition: Rendition,
    *,
    limits: Limits | None = None,
    threads: int = 0,
    ffmpeg: str | None = None,
    version: str = "local",
) -> Produced:
    """Convert a local file into ``workdir`` (no broker, no store): what ``videoconverter convert`` and the
    benchmarks use. Probes first, as the worker does, so the same limits apply."""
    limits = limits or Limits()
    source, workdir = source.resolve(), workdir.resolve()  # FFmpeg runs in workdir
    info = probe(source, limits)
    run: Runner = lambda args, _duration: run_ffmpeg(  # noqa: E731
        args, workdir=workdir, timeout_seconds=limits.transcode_timeout_seconds
    )
    job = Conversion(ffmpeg or ffmpeg_executable(), source, info, workdir, limits, run, version, threads)
    return produce(rendition, job)
