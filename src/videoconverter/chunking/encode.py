"""The FFmpeg argument lists of a split job's pieces, built as pure functions from those of a whole encode
(:mod:`videoconverter.transcode.command`): the same hardened input, filters, encoder, rate control and keyframes,
so the pieces join into what one encode would have made.

A video piece seeks its input (``-ss`` before ``-i``: FFmpeg jumps to the keyframe before and decodes from
there, dropping what comes before the start), reads its range and a margin (``-t``), and stops after exactly its
frames (``-frames:v``); keyframes are forced every interval from its start, which is a keyframe instant of the
whole video. The audio is encoded once over the whole duration.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from videoconverter.chunking.plan import READ_MARGIN_SECONDS, Piece, seconds_text
from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.command import audio_args, input_args, preamble, video_args, video_filter
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.probe import MediaInfo

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
    start = piece.encode_start_frame
    seek = ["-ss", seconds_text(Fraction(start) / rate)] if start else []
    frames = None if piece.frames is None else piece.frames + piece.preroll_frames
    if frames is not None:
        seek += ["-t", seconds_text(Fraction(frames) / rate + Fraction(READ_MARGIN_SECONDS))]
    args = [*input_args(ffmpeg, source, info, limits, seek), "-map", "0:v:0", *NO_METADATA]
    args += ["-vf", video_filter(info, size, rendition), *video_args(info, rendition), "-an"]
    if frames is not None:
        args += ["-frames:v", str(frames)]
    return [*args, *_output(limits, threads), f"file:{destination}"]


def audio_piece_command(
    ffmpeg: str,
    source: Path,
    destination: Path,
    info: MediaInfo,
    rendition: Rendition,
    limits: Limits,
    threads: int = 0,
    *,
    audio_filter: str = "",
) -> list[str]:
    """Arguments that encode ``source``'s whole audio (as a whole encode does, ``audio_filter`` first: the
    loudness normalisation) into ``destination`` (MP4)."""
    args = [
        *input_args(ffmpeg, source, info, limits),
        "-map",
        "0:a:0",
        *NO_METADATA,
        "-vn",
        *audio_args(info, rendition, audio_filter=audio_filter),
    ]
    return [*args, *_output(limits, threads), f"file:{destination}"]


def readable_command(ffmpeg: str, source: Path, info: MediaInfo, limits: Limits) -> list[str]:
    """Arguments that read ``source``'s video from the start, copied to nowhere (no decoding): how far its
    progress gets is how far the source can be read (a truncated upload stops where its data does)."""
    args = [*input_args(ffmpeg, source, info, limits), "-map", "0:v:0", "-c", "copy"]
    return [*args, "-progress", "pipe:1", "-f", "null", "-"]


def join_command(ffmpeg: str, pieces_list: Path, audio: Path | None, destination: Path, limits: Limits) -> list[str]:
    """Arguments that concatenate the video pieces ``pieces_list`` names (the concat demuxer's list, in the same
    directory: only plain relative names, its default ``safe`` mode) without re-encoding, mux ``audio`` as it
    is, and write ``destination`` (MP4, index first, as a whole encode)."""
    args = [*preamble(ffmpeg), "-protocol_whitelist", "file", "-f", "concat", "-safe", "1", "-i", f"file:{pieces_list}"]
    maps = ["-map", "0:v:0"]
    if audio is not None:
        args += ["-protocol_whitelist", "file", "-f", "mov", "-i", f"file:{audio}"]
        maps += ["-map", "1:a:0"]
    args += [*maps, *NO_METADATA, "-c", "copy", "-movflags", "+faststart"]
    return [*args, "-fs", str(limits.max_output_bytes), "-progress", "pipe:1", "-f", "mp4", f"file:{destination}"]


def pieces_list(names: list[str], prerolls_seconds: list[Fraction]) -> str:
    """The concat demuxer's list: each piece's file and, after a pre-roll, its ``inpoint``: the demuxer seeks to
    the keyframe there and drops what came before (each piece's own duration is exact)."""
    lines = ["ffconcat version 1.0"]
    for name, preroll in zip(names, prerolls_seconds, strict=True):
        lines.append(f"file '{name}'")
        if preroll:
            lines.append(f"inpoint {seconds_text(preroll, round_up=True)}")
    return "\n".join(lines) + "\n"


def _output(limits: Limits, threads: int) -> list[str]:
    return [*(["-threads", str(threads)] if threads > 0 else []), "-fs", str(limits.max_output_bytes),
            "-progress", "pipe:1", "-f", "mp4"]  # fmt: skip
