"""The FFmpeg argument lists of a split job's pieces, built as pure functions from those of a whole encode
(:mod:`videoconverter.transcode.command`): the same hardened input, filters, encoder, rate control and keyframes,
so the pieces join into what one encode would have made.

A video piece seeks its input (``-ss`` before ``-i``: FFmpeg jumps to the keyframe before and decodes from
there, dropping what comes before the start), reads its range and a margin (``-t``), and stops after exactly its
frames (``-frames:v``); keyframes are forced every interval from its start, which is a keyframe instant of the
whole video. An HLS ladder's piece decodes its range once and encodes every rung from it. The audio is encoded
once over the whole duration. The join copies: into one MP4, or into each rung's and audio track's HLS muxer.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from videoconverter.chunking.plan import READ_MARGIN_SECONDS, Piece, seconds_text
from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.command import (
    audio_args,
    input_args,
    preamble,
    several_audio_tracks,
    video_args,
    video_filter,
)
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.ladder import AudioOutput, Rung, hls_output_args, split_graph
from videoconverter.transcode.probe import AudioTrack, MediaInfo

NO_METADATA = ["-map_metadata", "-1", "-map_chapters", "-1"]  # as a whole encode: no GPS, no chapters


def video_piece_command(
    ffmpeg: str,
    source: Path,
    destination: Path,
    info: MediaInfo,
    size: OutputSize,
    rendition: Rendition,
    limits: Limits,
    piece: Piece,
    rate: Fraction,
    threads: int = 0,
) -> list[str]:
    """Arguments that encode ``piece`` of ``source``'s video (no audio), its pre-roll first, into
    ``destination`` (MP4)."""
    seek, frames = _piece_range(piece, rate)
    args = [*input_args(ffmpeg, source, info, limits, seek), "-map", "0:v:0", *NO_METADATA]
    args += ["-vf", video_filter(info, size, rendition), *video_args(info, rendition), "-an", *frames]
    return [*args, *_output(limits, threads), f"file:{destination}"]


def ladder_piece_command(
    ffmpeg: str,
    source: Path,
    outputs: Sequence[tuple[Rung, Path]],
    info: MediaInfo,
    rendition: Rendition,
    limits: Limits,
    piece: Piece,
    rate: Fraction,
    threads: int = 0,
) -> list[str]:
    """Arguments that encode ``piece`` of an HLS ladder: one decode of its range, split to every rung's scaler
    and encoder as a whole ladder's one-decode FFmpeg does, each rung into its own MP4 (the join segments it)."""
    seek, frames = _piece_range(piece, rate)
    graph = split_graph(info, [rung for rung, _ in outputs], rendition)
    args = [*input_args(ffmpeg, source, info, limits, seek), "-filter_complex", graph]
    args += ["-progress", "pipe:1"]
    for i, (rung, destination) in enumerate(outputs):
        args += ["-map", f"[v{i}]", *NO_METADATA, *video_args(info, rung.rendition), "-an", *frames]
        args += [*_threads(threads), "-fs", str(limits.max_output_bytes), "-f", "mp4", f"file:{destination}"]
    return args


def audio_piece_command(
    ffmpeg: str,
    source: Path,
    destination: Path,
    info: MediaInfo,
    rendition: Rendition,
    limits: Limits,
    threads: int = 0,
    *,
    tracks: Sequence[AudioTrack] = (),
    filters: Sequence[str] = (),
) -> list[str]:
    """Arguments that encode ``source``'s whole audio into ``destination`` (MP4) as a whole encode does:
    ``tracks`` (the first source track when none are given), each with its language when there are several
    and ``filters[i]`` (the loudness gain) first in its chain."""
    tracks = tracks or [AudioTrack(0, "und", 2)]
    maps = [arg for track in tracks for arg in ("-map", f"0:a:{track.index}")]
    args = [*input_args(ffmpeg, source, info, limits), *maps, *NO_METADATA, "-vn"]
    if len(tracks) == 1:
        args += audio_args(info, rendition, audio_filter=filters[0] if filters else "")
    else:
        args += several_audio_tracks(info, rendition, tracks, filters)
    return [*args, *_output(limits, threads), f"file:{destination}"]


def readable_command(ffmpeg: str, source: Path, info: MediaInfo, limits: Limits) -> list[str]:
    """Arguments that read ``source``'s video from the start, copied to nowhere (no decoding): how far its
    progress gets is how far the source can be read (a truncated upload stops where its data does)."""
    args = [*input_args(ffmpeg, source, info, limits), "-map", "0:v:0", "-c", "copy"]
    return [*args, "-progress", "pipe:1", "-f", "null", "-"]


def join_command(
    ffmpeg: str,
    pieces_list: Path,
    audio: Path | None,
    destination: Path,
    limits: Limits,
    tracks: Sequence[AudioTrack] = (),
) -> list[str]:
    """Arguments that concatenate the video pieces ``pieces_list`` names (the concat demuxer's list, in the same
    directory: only plain relative names, its default ``safe`` mode) without re-encoding, mux every audio
    stream of ``audio`` as it is (``tracks``: their languages, tagged when there are several, as a whole
    encode tags them), and write ``destination`` (MP4, index first, as a whole encode)."""
    args = [*preamble(ffmpeg), *_concat_input(pieces_list)]
    maps = ["-map", "0:v:0"]
    if audio is not None:
        args += ["-protocol_whitelist", "file", "-f", "mov", "-i", f"file:{audio}"]
        maps += ["-map", "1:a"]
        if len(tracks) > 1:
            maps += [a for i, t in enumerate(tracks) for a in (f"-metadata:s:a:{i}", f"language={t.language}")]
    args += [*maps, *NO_METADATA, "-c", "copy", "-movflags", "+faststart"]
    return [*args, "-fs", str(limits.max_output_bytes), "-progress", "pipe:1", "-f", "mp4", f"file:{destination}"]


def ladder_join_command(
    ffmpeg: str,
    rungs: Sequence[tuple[Rung, Path]],
    audio: Path | None,
    audio_outputs: Sequence[AudioOutput],
    segment_seconds: float,
) -> list[str]:
    """Arguments that concatenate each rung's pieces (``rungs``: the rung and its pieces list) without
    re-encoding into that rung's HLS muxer, and each audio stream of ``audio`` into its own: the segments and
    playlists a whole ladder's FFmpeg writes (its keyframes, so its segment boundaries)."""
    args = [*preamble(ffmpeg)]
    for _, listing in rungs:
        args += _concat_input(listing)
    if audio is not None:
        args += ["-protocol_whitelist", "file", "-f", "mov", "-i", f"file:{audio}"]
    args += ["-progress", "pipe:1"]
    for i, (rung, _) in enumerate(rungs):
        args += ["-map", f"{i}:v:0", *NO_METADATA, "-c", "copy", *hls_output_args(rung.directory, segment_seconds)]
    for j, output in enumerate(audio_outputs if audio is not None else ()):
        args += ["-map", f"{len(rungs)}:a:{j}", *NO_METADATA, "-c", "copy"]
        args += hls_output_args(output.directory, segment_seconds)
    return args


def pieces_list(names: list[str], prerolls_seconds: list[Fraction]) -> str:
    """The concat demuxer's list: each piece's file and, after a pre-roll, its ``inpoint``: the demuxer seeks to
    the keyframe there and drops what came before (each piece's own duration is exact)."""
    lines = ["ffconcat version 1.0"]
    for name, preroll in zip(names, prerolls_seconds, strict=True):
        lines.append(f"file '{name}'")
        if preroll:
            lines.append(f"inpoint {seconds_text(preroll, round_up=True)}")
    return "\n".join(lines) + "\n"


def _piece_range(piece: Piece, rate: Fraction) -> tuple[list[str], list[str]]:
    """The input's seek and read length for ``piece`` (its pre-roll first), and the output's frame count."""
    start = piece.encode_start_frame
    seek = ["-ss", seconds_text(Fraction(start) / rate)] if start else []
    if piece.frames is None:
        return seek, []
    frames = piece.frames + piece.preroll_frames
    seek += ["-t", seconds_text(Fraction(frames) / rate + Fraction(READ_MARGIN_SECONDS))]
    return seek, ["-frames:v", str(frames)]


def _concat_input(pieces_list: Path) -> list[str]:
    return ["-protocol_whitelist", "file", "-f", "concat", "-safe", "1", "-i", f"file:{pieces_list}"]


def _threads(threads: int) -> list[str]:
    return ["-threads", str(threads)] if threads > 0 else []


def _output(limits: Limits, threads: int) -> list[str]:
    return [*_threads(threads), "-fs", str(limits.max_output_bytes), "-progress", "pipe:1", "-f", "mp4"]
