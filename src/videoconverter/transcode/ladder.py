"""An HLS + DASH package: several video-only rungs (sizes) from one source, fMP4 (CMAF) segments cut at the same
instants in each rung, each of the source's audio tracks (up to ``max_audio_tracks``) its own audio-only
rendition, and captions as WebVTT; :mod:`.packaging` writes the manifests over the same segment files.

Two ways to run FFmpeg, same output: ``one-decode`` (one process decodes the source once and feeds every
rung's encoder through ``split``) and ``per-rung`` (one process per rung, run side by side, each decoding the
source itself). Decoding is cheap next to x264; which is faster depends on how the encoders' threads fill the
cores. bench/ladder.py measured one decode 1.8x as fast on 2 cores (4 processes' encoders oversubscribe them);
the issue that asked for the choice reported it 6 % faster on 16 cores. So ``one-decode`` is the default.
The audio renditions are encoded in the same process (one decode) or in one process of their own (per rung).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.captions import embedded_captions, language_name, menu_name
from videoconverter.transcode.command import (
    audio_args,
    frame_rate,
    input_args,
    kept_audio_tracks,
    picture_filters,
    rate_filter,
    video_args,
)
from videoconverter.transcode.geometry import OutputSize, output_size
from videoconverter.transcode.loudness import LoudnessPlan, loudness_note, measure_output, plan_loudness
from videoconverter.transcode.package import AAC_LC, IFRAME_PLAYLIST, MEDIA_PLAYLIST, AudioRendition, Package
from videoconverter.transcode.package import MASTER as MASTER  # the marker's name, as callers import it
from videoconverter.transcode.package import Rung as PackageRung
from videoconverter.transcode.packaging import track_label, write_manifests, write_subtitles
from videoconverter.transcode.pertitle import QualitySearch, drop_rungs
from videoconverter.transcode.playlists import iframe_bitrate, iframe_playlist, parse_media_playlist
from videoconverter.transcode.probe import AudioTrack, MediaInfo
from videoconverter.transcode.products import Conversion, OutputFile, Produced
from videoconverter.transcode.quality import measure_with
from videoconverter.transcode.search import SAMPLES_DIRECTORY, SearchTarget, searched
from videoconverter.transcode.subtitles_text import Caption
from videoconverter.transcode.tracks import iframes, read_track
from videoconverter.transcode.truncation import check_read, joined

OUTPUT_CHANNELS = 2  # every audio rendition is stereo AAC-LC (command.audio_args)


@dataclass(frozen=True)
class Rung:
    rendition: Rendition  # the rung's own settings: the ladder's codec settings with this rung's cap
    size: OutputSize
    directory: Path  # in the job's workdir


@dataclass(frozen=True)
class AudioOutput:
    """One source audio track's rendition: ``audio/a<N>-<lang>/`` under the package's version."""

    track: AudioTrack
    name: str  # "a0-eng"
    directory: Path  # in the job's workdir
    audio_filter: str = ""  # runs before the resampler (a loudness gain)


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


def plan_audio(info: MediaInfo, rendition: Rendition, workdir: Path) -> list[AudioOutput]:
    """The first ``rendition.audio_track_limit`` audio tracks of the source, each its own rendition."""
    return [audio_output(track, workdir) for track in kept_audio_tracks(info, rendition)]


def audio_output(track: AudioTrack, workdir: Path) -> AudioOutput:
    """Source track ``track``'s rendition, named by its index and language ("a0-eng")."""
    name = f"a{track.index}-{track_label(track.language)}"
    return AudioOutput(track, name, workdir / "hls" / "audio" / name)


def hls_output_args(directory: Path, segment_seconds: float) -> list[str]:
    """One stream's HLS muxer: VOD playlist, fMP4 segments of ``segment_seconds`` (cut on keyframes only)."""
    return [
        "-f", "hls", "-hls_time", f"{segment_seconds:g}", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", f"file:{directory}/seg_%05d.m4s", "-hls_flags", "independent_segments",
        f"file:{directory}/{MEDIA_PLAYLIST}",
    ]  # fmt: skip


def _threads(threads: int) -> list[str]:
    return ["-threads", str(threads)] if threads > 0 else []


def _rung_output(info: MediaInfo, rung: Rung, segment_seconds: float, threads: int) -> list[str]:
    """A video-only output: the rung's encoder and muxer (its map comes before)."""
    args = [*video_args(info, rung.rendition), *_threads(threads)]
    return args + hls_output_args(rung.directory, segment_seconds)


def _audio_outputs(info: MediaInfo, audio: list[AudioOutput], rendition: Rendition, threads: int) -> list[str]:
    """An audio-only output for each track: its map, AAC and its own HLS muxer."""
    args: list[str] = []
    for output in audio:
        args += ["-map", f"0:a:{output.track.index}", *audio_args(info, rendition, audio_filter=output.audio_filter)]
        args += [*_threads(threads), *hls_output_args(output.directory, rendition.segment_seconds)]
    return args


def one_decode_command(
    ffmpeg: str,
    source: Path,
    info: MediaInfo,
    rungs: list[Rung],
    rendition: Rendition,
    limits: Limits,
    threads: int,
    audio: list[AudioOutput] | None = None,
) -> list[str]:
    """One FFmpeg: decode once, constant frame rate once, ``split`` to each rung's scaler and encoder; the
    audio renditions are outputs of the same process."""
    args = [*input_args(ffmpeg, source, info, limits), "-filter_complex", split_graph(info, rungs, rendition)]
    args += ["-map_metadata", "-1", "-map_chapters", "-1", "-progress", "pipe:1"]
    for i, rung in enumerate(rungs):
        args += ["-map", f"[v{i}]", *_rung_output(info, rung, rendition.segment_seconds, threads)]
    return args + _audio_outputs(info, audio or [], rendition, threads)


def split_graph(info: MediaInfo, rungs: Sequence[Rung], rendition: Rendition) -> str:
    """The filter graph of one decode: constant frame rate once, ``split`` to each rung's picture filters; rung
    ``i``'s frames come out as ``[vi]``."""
    labels = [f"s{i}" for i in range(len(rungs))]
    graph = [f"[0:v]{rate_filter(info, rendition)},split={len(rungs)}" + "".join(f"[{s}]" for s in labels)]
    for i, rung in enumerate(rungs):
        graph.append(f"[{labels[i]}]{picture_filters(info, rung.size, rung.rendition)}[v{i}]")
    return ";".join(graph)


def rung_command(
    ffmpeg: str, source: Path, info: MediaInfo, rung: Rung, rendition: Rendition, limits: Limits, threads: int
) -> list[str]:
    """One FFmpeg for one rung (``per-rung`` mode): video only."""
    args = [*input_args(ffmpeg, source, info, limits), "-map", "0:v:0", "-map_metadata", "-1", "-map_chapters", "-1"]
    chain = f"{rate_filter(info, rendition)},{picture_filters(info, rung.size, rung.rendition)}"
    args += ["-vf", chain, "-progress", "pipe:1"]
    return args + _rung_output(info, rung, rendition.segment_seconds, threads)


def audio_command(
    ffmpeg: str, source: Path, info: MediaInfo, audio: list[AudioOutput], rendition: Rendition, limits: Limits,
    threads: int,
) -> list[str]:  # fmt: skip
    """One FFmpeg for every audio rendition (``per-rung`` mode): no video is decoded."""
    args = [*input_args(ffmpeg, source, info, limits), "-map_metadata", "-1", "-map_chapters", "-1"]
    return [*args, "-progress", "pipe:1", *_audio_outputs(info, audio, rendition, threads)]


def produce_ladder(rendition: Rendition, job: Conversion) -> Produced:
    """Encode the package and list its files in write order: every rung's init section, segments, playlist and
    I-frame playlist, every audio rendition's, the subtitles, package.json, manifest.mpd, ``master.m3u8`` last."""
    info = job.info
    rungs, note = plan_ladder(info, rendition, job.workdir)
    audio, loudness = _with_loudness(job, rendition, plan_audio(info, rendition, job.workdir))
    search, skipped = searched(job, rendition, [SearchTarget(r.rendition.name, r.rendition, r.size) for r in rungs])
    if search is not None:
        search, rungs = fit_ladder(search, rungs)
    for directory in [r.directory for r in rungs] + [a.directory for a in audio]:
        directory.mkdir(parents=True)
    read = check_read(_encode(rendition, job, rungs, audio), info.duration_seconds, job.limits)
    package, files = collect_package(rendition, job.version, frame_rate(job.info, rendition), rungs, audio)
    captions, captions_note = conversion_captions(rendition, job)
    root = job.workdir / "hls"  # as under KEY/, with VERSION's directories directly in it
    package, subtitle_files = write_subtitles(package, captions, root)
    files += subtitle_files + write_manifests(package, root, root)
    if search is not None and rendition.verify_vmaf:
        search = search.with_measured({rung.rendition.name: _measure_rung(job, rung) for rung in rungs})
    loudness_notes = [_loudness_after(job, a, plan) for a, plan in zip(audio, loudness, strict=True) if plan]
    note = joined(note, search.note() if search else skipped, read, *loudness_notes, captions_note)
    return Produced(tuple(files), note, quality=search)


def _with_loudness(
    job: Conversion, rendition: Rendition, audio: list[AudioOutput]
) -> tuple[list[AudioOutput], list[LoudnessPlan | None]]:
    """Each audio rendition with its loudness gain (``loudness_lufs``: each track measured on its own)."""
    plans = [plan_loudness(job, rendition, a.track.index) for a in audio]
    outputs = [dataclasses.replace(a, audio_filter=p.filter) if p else a for a, p in zip(audio, plans, strict=True)]
    return outputs, plans


def _loudness_after(job: Conversion, audio: AudioOutput, plan: LoudnessPlan) -> str:
    """The note on one normalised audio rendition, measured again over its init section and segments."""
    if plan.measurement.silent:
        return f"{audio.name}: {loudness_note(plan, None)}"
    whole = job.workdir / f"{audio.name}-whole.mp4"
    playlist = parse_media_playlist((audio.directory / MEDIA_PLAYLIST).read_text(encoding="utf-8"))
    with whole.open("wb") as out:
        for name in (playlist.init_uri, *(s.uri for s in playlist.segments)):
            out.write((audio.directory / name).read_bytes())
    return f"{audio.name}: {loudness_note(plan, measure_output(job, whole))}"


def conversion_captions(rendition: Rendition, job: Conversion) -> tuple[tuple[Caption, ...], str]:
    """The captions a package gets: the sidecars the worker prepared, then the upload's own text tracks;
    and a note on those refused."""
    if not rendition.captions:
        return (), ""
    embedded, note = embedded_captions(job, rendition)
    return (*job.captions, *embedded), note


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
    playlist = parse_media_playlist((rung.directory / MEDIA_PLAYLIST).read_text(encoding="utf-8"))
    whole = job.workdir / SAMPLES_DIRECTORY / f"{rung.rendition.name}-whole.mp4"
    with whole.open("wb") as out:
        for name in (playlist.init_uri, *(s.uri for s in playlist.segments)):
            out.write((rung.directory / name).read_bytes())
    return measure_with(
        job.run, job.workdir, job.ffmpeg, job.source, job.info, whole, job.limits, job.threads
    ).vmaf_mean


def _encode(rendition: Rendition, job: Conversion, rungs: list[Rung], audio: list[AudioOutput]) -> float | None:
    """Run the package's FFmpeg(s); how far the source could be read (where the output ended;
    with one process a rung, the shortest output), or None."""
    duration, ffmpeg, source, info, limits = job.info.duration_seconds, job.ffmpeg, job.source, job.info, job.limits
    if rendition.ladder_mode == "one-decode" or (len(rungs) == 1 and not audio):
        args = one_decode_command(ffmpeg, source, info, rungs, rendition, limits, job.threads, audio)
        return job.run(args, duration).out_time_seconds
    commands = [rung_command(ffmpeg, source, info, r, rendition, limits, job.threads) for r in rungs]
    if audio:
        commands.append(audio_command(ffmpeg, source, info, audio, rendition, limits, job.threads))
    with ThreadPoolExecutor(len(commands), thread_name_prefix="rung") as pool:
        results = list(pool.map(lambda args: job.run(args, duration), commands))  # re-raises the first failure
    ends = [r.out_time_seconds for r in results if r.out_time_seconds is not None]
    return min(ends) if ends else None


def collect_package(
    rendition: Rendition, version: str, frame: Fraction, rungs: list[Rung], audio: list[AudioOutput]
) -> tuple[Package, list[OutputFile]]:
    """The package of ``version`` at frame rate ``frame`` as the files describe it (read from their boxes),
    each rung's I-frame playlist written, and the media files in write order (each directory's playlists
    after its segments)."""
    files: list[OutputFile] = []
    package_rungs = []
    for rung in rungs:
        track = read_track(rung.directory, rung.rendition.name)
        entries = iframes(rung.directory, track)
        (rung.directory / IFRAME_PLAYLIST).write_text(iframe_playlist(track.init, entries), encoding="utf-8")
        files += _files(version, rung.directory, track.directory, [track.init, *(s.uri for s in track.segments),
                        MEDIA_PLAYLIST, IFRAME_PLAYLIST])  # fmt: skip
        package_rungs.append(
            PackageRung(rung.rendition.name, rung.size.width, rung.size.height, frame, track, entries,
                        iframe_bitrate(entries))
        )  # fmt: skip
    renditions, titles = [], _titles([a.track for a in audio])
    for output, title in zip(audio, titles, strict=True):
        track = read_track(output.directory, f"audio/{output.name}", AAC_LC)
        files += _files(version, output.directory, track.directory,
                        [track.init, *(s.uri for s in track.segments), MEDIA_PLAYLIST])  # fmt: skip
        renditions.append(AudioRendition(output.name, output.track.language, title, OUTPUT_CHANNELS, track))
    duration = sum(s.duration_seconds for s in package_rungs[0].track.segments)
    package = Package(version, round(duration, 6), rendition.dash, tuple(package_rungs), tuple(renditions))
    return package, files


def _files(version: str, directory: Path, name: str, names: list[str]) -> list[OutputFile]:
    return [OutputFile(f"{version}/{name}/{n}", directory / n) for n in names]


def _titles(tracks: list[AudioTrack]) -> list[str]:
    """What players show for each audio track (NAME must be unique in its group): its title, else its
    language's name ("English" for eng), numbered where two would read the same."""
    base = [menu_name(t.title) or (language_name(t.language) if t.language != "und" else "Audio") for t in tracks]
    return [f"{b} {base[:i].count(b) + 1}" if base.count(b) > 1 else b for i, b in enumerate(base)]
