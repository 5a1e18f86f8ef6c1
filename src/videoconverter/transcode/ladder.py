"""An HLS ladder: several rungs (sizes) from one source, fMP4 segments cut at the same instants in each rung.

Two ways to run FFmpeg, same output: ``one-decode`` (one process decodes the source once and feeds every
rung's encoder through ``split``) and ``per-rung`` (one process per rung, run side by side, each decoding the
source itself). Decoding is cheap next to x264; which is faster depends on how the encoders' threads fill the
cores. bench/ladder.py measured one decode 1.8x as fast on 2 cores (4 processes' encoders oversubscribe them);
the issue that asked for the choice reported it 6 % faster on 16 cores. So ``one-decode`` is the default.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.command import (
    audio_args,
    frame_rate,
    input_args,
    picture_filters,
    rate_filter,
    video_args,
)
from videoconverter.transcode.geometry import OutputSize, output_size
from videoconverter.transcode.pertitle import QualitySearch, drop_rungs
from videoconverter.transcode.playlists import Variant, avc_codec, bitrates, master_playlist, parse_media_playlist
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.products import Conversion, OutputFile, Produced
from videoconverter.transcode.quality import measure_with
from videoconverter.transcode.search import SAMPLES_DIRECTORY, SearchTarget, searched
from videoconverter.transcode.truncation import check_read, joined

MASTER = "master.m3u8"


@dataclass(frozen=True)
class Rung:
    rendition: Rendition  # the rung's own settings: the ladder's codec settings with this rung's cap
    size: OutputSize
    directory: Path  # in the job's workdir


def plan_ladder(info: MediaInfo, rendition: Rendition, workdir: Path) -> tuple[list[Rung], str]:
    """The rungs to make and a note: rungs above the source's size are skipped (never upscaled, unless the
    rendition allows it); a source smaller than every rung gets one rung at its own size."""
    width, height = info.display_size
    rungs: list[Rung] = []
    for side in sorted(rendition.ladder):
        rung = rendition.rung(side)
        size = output_size(width, height, rung)
        if size.note and rungs:  # above the source: skipped, a smaller rung exists
            continue
        if any((r.size.width, r.size.height) == (size.width, size.height) for r in rungs):
            continue
        rungs.append(Rung(rung, size, workdir / "hls" / rung.name))
    skipped = [f"{side}p" for side in rendition.ladder if f"{side}p" not in {r.rendition.name for r in rungs}]
    note = f"rungs above the {width}x{height} source skipped: {', '.join(skipped)}" if skipped else ""
    return rungs, note


def hls_output_args(rung: Rung, segment_seconds: float) -> list[str]:
    """One rung's HLS muxer: VOD playlist, fMP4 segments of ``segment_seconds`` (cut on keyframes only)."""
    return [
        "-f", "hls", "-hls_time", f"{segment_seconds:g}", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", f"file:{rung.directory}/seg_%05d.m4s", "-hls_flags", "independent_segments",
        f"file:{rung.directory}/index.m3u8",
    ]  # fmt: skip


def _rung_output(info: MediaInfo, rung: Rung, segment_seconds: float, threads: int) -> list[str]:
    args = [*video_args(info, rung.rendition), *audio_args(info, rung.rendition)]
    args += ["-threads", str(threads)] if threads > 0 else []
    return args + hls_output_args(rung, segment_seconds)


def one_decode_command(
    ffmpeg: str, source: Path, info: MediaInfo, rungs: list[Rung], rendition: Rendition, limits: Limits, threads: int
) -> list[str]:
    """One FFmpeg: decode once, constant frame rate once, ``split`` to each rung's scaler and encoder."""
    labels = [f"s{i}" for i in range(len(rungs))]
    graph = [f"[0:v]{rate_filter(info, rendition)},split={len(rungs)}" + "".join(f"[{s}]" for s in labels)]
    for i, rung in enumerate(rungs):
        graph.append(f"[{labels[i]}]{picture_filters(info, rung.size, rung.rendition)}[v{i}]")
    args = [*input_args(ffmpeg, source, info, limits), "-filter_complex", ";".join(graph)]
    args += ["-map_metadata", "-1", "-map_chapters", "-1", "-progress", "pipe:1"]
    for i, rung in enumerate(rungs):
        args += ["-map", f"[v{i}]"] + (["-map", "0:a:0"] if info.has_audio else [])
        args += _rung_output(info, rung, rendition.segment_seconds, threads)
    return args


def rung_command(
    ffmpeg: str, source: Path, info: MediaInfo, rung: Rung, rendition: Rendition, limits: Limits, threads: int
) -> list[str]:
    """One FFmpeg for one rung (``per-rung`` mode)."""
    args = [*input_args(ffmpeg, source, info, limits), "-map", "0:v:0"]
    args += (["-map", "0:a:0"] if info.has_audio else []) + ["-map_metadata", "-1", "-map_chapters", "-1"]
    chain = f"{rate_filter(info, rendition)},{picture_filters(info, rung.size, rung.rendition)}"
    args += ["-vf", chain, "-progress", "pipe:1"]
    return args + _rung_output(info, rung, rendition.segment_seconds, threads)


def produce_ladder(rendition: Rendition, job: Conversion) -> Produced:
    """Encode the ladder and list its files: every rung's init section, segments and playlist under
    ``VERSION/RUNG/``, then ``master.m3u8`` last."""
    info = job.info
    rungs, note = plan_ladder(info, rendition, job.workdir)
    search, skipped = searched(job, rendition, [SearchTarget(r.rendition.name, r.rendition, r.size) for r in rungs])
    if search is not None:
        search, rungs = fit_ladder(search, rungs)
    for rung in rungs:
        rung.directory.mkdir(parents=True)
    read = check_read(_encode(rendition, job, rungs), info.duration_seconds, job.limits)
    files: list[OutputFile] = []
    variants: list[Variant] = []
    for rung in rungs:
        rung_files, variant = _collect(rung, info, rendition, job.version)
        files += rung_files
        variants.append(variant)
    master = job.workdir / "hls" / MASTER
    master.write_text(master_playlist(variants, info.has_audio), encoding="utf-8")
    if search is not None and rendition.verify_vmaf:
        search = search.with_measured({rung.rendition.name: _measure_rung(job, rung) for rung in rungs})
    note = joined(note, search.note() if search else skipped, read)
    return Produced((*files, OutputFile(MASTER, master)), note, quality=search)


def fit_ladder(search: QualitySearch, rungs: list[Rung]) -> tuple[QualitySearch, list[Rung]]:
    """A ladder that fits the content: every rung's CRF from the VMAF search, and the rungs that the rung above
    makes redundant left out (:func:`.pertitle.drop_rungs`); the rungs to encode, with their CRFs."""
    search = drop_rungs(search)
    chosen = {choice.name: choice for choice in search.choices}
    kept = [r for r in rungs if chosen[r.rendition.name].kept]
    return search, [dataclasses.replace(r, rendition=dataclasses.replace(r.rendition, crf=chosen[r.rendition.name].crf))
                    for r in kept]  # fmt: skip


def _measure_rung(job: Conversion, rung: Rung) -> float:
    """The whole rung's VMAF against the source: its init section and segments joined into one fMP4 file."""
    playlist = parse_media_playlist((rung.directory / "index.m3u8").read_text(encoding="utf-8"))
    whole = job.workdir / SAMPLES_DIRECTORY / f"{rung.rendition.name}-whole.mp4"
    with whole.open("wb") as out:
        for name in (playlist.init_uri, *(s.uri for s in playlist.segments)):
            out.write((rung.directory / name).read_bytes())
    return measure_with(
        job.run, job.workdir, job.ffmpeg, job.source, job.info, whole, job.limits, job.threads
    ).vmaf_mean


def _encode(rendition: Rendition, job: Conversion, rungs: list[Rung]) -> float | None:
    """Run the ladder's FFmpeg(s); how far the source could be read (where the output ended;
    with one process a rung, the shortest rung), or None."""
    duration, ffmpeg, source, info, limits = job.info.duration_seconds, job.ffmpeg, job.source, job.info, job.limits
    if rendition.ladder_mode == "one-decode" or len(rungs) == 1:
        args = one_decode_command(ffmpeg, source, info, rungs, rendition, limits, job.threads)
        return job.run(args, duration).out_time_seconds
    commands = [rung_command(ffmpeg, source, info, r, rendition, limits, job.threads) for r in rungs]
    with ThreadPoolExecutor(len(commands), thread_name_prefix="rung") as pool:
        results = list(pool.map(lambda args: job.run(args, duration), commands))  # re-raises the first failure
    ends = [r.out_time_seconds for r in results if r.out_time_seconds is not None]
    return min(ends) if ends else None


def _collect(rung: Rung, info: MediaInfo, rendition: Rendition, version: str) -> tuple[list[OutputFile], Variant]:
    """The rung's files (init, segments, playlist last) and its master-playlist entry."""
    playlist = parse_media_playlist((rung.directory / "index.m3u8").read_text(encoding="utf-8"))
    init = rung.directory / playlist.init_uri
    sizes = {s.uri: (rung.directory / s.uri).stat().st_size for s in playlist.segments}
    peak, average = bitrates(playlist, sizes, init.stat().st_size)
    prefix = f"{version}/{rung.rendition.name}"
    names = [playlist.init_uri, *(s.uri for s in playlist.segments), "index.m3u8"]
    files = [OutputFile(f"{prefix}/{n}", rung.directory / n) for n in names]
    variant = Variant(
        uri=f"{prefix}/index.m3u8",
        width=rung.size.width,
        height=rung.size.height,
        frame_rate=frame_rate(info, rendition),
        peak_bits_per_second=peak,
        average_bits_per_second=average,
        codecs=avc_codec(init.read_bytes()),
    )
    return files, variant
