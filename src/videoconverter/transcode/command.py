"""The FFmpeg argument list for one MP4 rendition, built as a pure function (no I/O, no FFmpeg run)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.codecs import encoder_args
from videoconverter.transcode.color import hdr_tags, sdr_tags, tonemap_filters
from videoconverter.transcode.framerate import fraction_text, frames_per_interval, output_frame_rate
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.probe import AudioTrack, MediaInfo

AAC_SAMPLE_RATES = (44100, 48000)


def build_command(
    ffmpeg: str,
    source: Path,
    destination: Path,
    info: MediaInfo,
    size: OutputSize,
    rendition: Rendition,
    limits: Limits,
    threads: int = 0,
    *,
    audio_filter: str = "",
    track_filters: Sequence[str] = (),
) -> list[str]:
    """Arguments (``argv[0]`` included) that convert ``source`` into ``destination`` for ``rendition``;
    ``audio_filter`` goes first in the audio chain (see :func:`audio_args`). With ``max_audio_tracks`` above 1
    the first tracks of the source are kept, each with its language, ``track_filters[i]`` first in track i's
    chain (each track is normalised on its own).

    Hardening for hostile uploads: no stdin, only the ``file`` protocol, the demuxer the probe chose (and
    allowed) is forced, the decoder refuses pictures over the pixel limit, the output size is capped, and the
    paths are our own temp-file names prefixed with ``file:`` so nothing is read as an option or a protocol.
    Metadata and chapters are dropped (phones record GPS positions); rotation is applied to the pixels.
    """
    kept = kept_audio_tracks(info, rendition)
    args = [*input_args(ffmpeg, source, info, limits), *stream_maps(info, len(kept))]
    args += ["-vf", video_filter(info, size, rendition), *video_args(info, rendition)]
    if len(kept) <= 1:
        args += audio_args(info, rendition, audio_filter=audio_filter)
    else:
        args += several_audio_tracks(info, rendition, kept, track_filters or [audio_filter] * len(kept))
    if threads > 0:
        args += ["-threads", str(threads)]
    args += ["-movflags", "+faststart", "-fs", str(limits.max_output_bytes), "-progress", "pipe:1"]
    return [*args, "-f", "mp4", f"file:{destination}"]


def preamble(ffmpeg: str) -> list[str]:
    """``argv[0]`` and the global options every FFmpeg run starts with, whatever it reads: no banner, no stdin
    (FFmpeg would otherwise read keystrokes, or block, from ours), no stats, errors only, and overwriting (every
    output is a name of our own in a private directory).

    Inputs come next: :func:`upload_input` for a file (an upload, or an output we measure or show), or
    :func:`generated_input` for FFmpeg's own test sources."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]


def upload_input(source: Path, info: MediaInfo, limits: Limits, options: Sequence[str] = ()) -> list[str]:
    """One hardened input: only the ``file`` protocol, the probed (allowed) demuxer forced, pictures over the
    pixel limit refused, the path never read as an option or a protocol. ``options`` are this input's own
    (``-ss`` to seek), placed before ``-i``."""
    return [
        "-protocol_whitelist",
        "file",
        "-f",
        info.demuxer,
        "-max_pixels",
        str(limits.max_pixels),
        *options,
        "-i",
        f"file:{source}",
    ]


def generated_input(graph: str) -> list[str]:
    """One input of FFmpeg's own making: a lavfi source graph (``testsrc2=...``, ``sine=...``). It reads no file
    and no URL, so the hardening of :func:`upload_input` has nothing to apply to; it is for samples only, and
    takes no path, so no upload can be passed this way."""
    return ["-f", "lavfi", "-i", graph]


def input_args(ffmpeg: str, source: Path, info: MediaInfo, limits: Limits, options: Sequence[str] = ()) -> list[str]:
    """The hardened start of every FFmpeg run on an upload: :func:`preamble`, then :func:`upload_input`."""
    return [*preamble(ffmpeg), *upload_input(source, info, limits, options)]


def stream_maps(info: MediaInfo, audio_tracks: int = 1) -> list[str]:
    """The first video stream and, if any, the first ``audio_tracks`` audio streams; no metadata (GPS), no
    chapters."""
    count = min(audio_tracks, len(info.audio_tracks) or int(info.has_audio)) if info.has_audio else 0
    maps = ["-map", "0:v:0"] + [arg for i in range(count) for arg in ("-map", f"0:a:{i}")]
    return [*maps, "-map_metadata", "-1", "-map_chapters", "-1"]


def kept_audio_tracks(info: MediaInfo, rendition: Rendition) -> tuple[AudioTrack, ...]:
    """The source's audio tracks an MP4 keeps: the first ``rendition.audio_track_limit`` (1 by default)."""
    if not info.has_audio:
        return ()
    return (info.audio_tracks or (AudioTrack(0, "und", 2),))[: rendition.audio_track_limit]


def several_audio_tracks(
    info: MediaInfo, rendition: Rendition, tracks: Sequence[AudioTrack], filters: Sequence[str]
) -> list[str]:
    """audio_args for each kept track as its own output stream: its own filter chain and its language (the
    source's tags are dropped with the rest of its metadata)."""
    shared = audio_args(info, rendition)[2:]  # the codec settings, without "-af CHAIN"
    args: list[str] = []
    for i, track in enumerate(tracks):
        chain = audio_args(info, rendition, audio_filter=filters[i] if i < len(filters) else "")[1]
        args += [f"-filter:a:{i}", chain, f"-metadata:s:a:{i}", f"language={track.language}"]
    return args + shared


def frame_rate(info: MediaInfo, rendition: Rendition) -> Fraction:
    return output_frame_rate(info.nominal_frame_rate, rendition.max_frame_rate)


def keeps_hdr(info: MediaInfo, rendition: Rendition) -> bool:
    return info.is_hdr and rendition.hdr == "keep"


def video_filter(info: MediaInfo, size: OutputSize, rendition: Rendition) -> str:
    """Constant frame rate first (a variable-rate phone clip plays smoothly, in sync), then the picture."""
    return f"{rate_filter(info, rendition)},{picture_filters(info, size, rendition)}"


def rate_filter(info: MediaInfo, rendition: Rendition) -> str:
    """Frames repeated or dropped on their timestamps to a constant rate: even motion, audio in step."""
    return f"fps={fraction_text(frame_rate(info, rendition))}"


def picture_filters(info: MediaInfo, size: OutputSize, rendition: Rendition) -> str:
    """The size, then colour: HDR is tone-mapped to BT.709 unless kept; SDR is converted to the BT.709
    matrix it will be tagged with."""
    if keeps_hdr(info, rendition):
        filters = [f"scale={size.width}:{size.height}:flags=bicubic", "setsar=1", "format=yuv420p10le"]
    elif info.is_hdr:
        filters = [f"scale={size.width}:{size.height}:flags=bicubic", *tonemap_filters(), "setsar=1"]
    else:
        filters = [
            f"scale={size.width}:{size.height}:flags=bicubic:out_color_matrix=bt709:out_range=tv",
            "setsar=1",
            "format=yuv420p",
            # An untagged source leaves the frames' primaries and transfer unspecified, which FFmpeg then
            # writes over the -color_* flags: say on the frames what the pixels now are.
            "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
        ]
    return ",".join(filters)


def video_args(info: MediaInfo, rendition: Rendition) -> list[str]:
    """Encoder, rate control, keyframes every interval, colour tags."""
    gop = frames_per_interval(frame_rate(info, rendition), rendition.keyframe_interval_seconds)
    hdr = keeps_hdr(info, rendition)
    args = encoder_args(rendition, gop, rendition.keyframe_interval_seconds, ten_bit=hdr)
    return args + (hdr_tags(info.color_transfer) if hdr else sdr_tags())


def audio_args(info: MediaInfo, rendition: Rendition, *, audio_filter: str = "") -> list[str]:
    """AAC-LC stereo at the rendition's bitrate; gaps and drift of a variable-rate recording are filled so
    audio stays in step with the video's timestamps. ``audio_filter`` (e.g. :mod:`.loudness`'s normalisation)
    runs before that; without one the arguments are what they always were."""
    if not info.has_audio:
        return []
    chain = f"{audio_filter},aresample=async=1" if audio_filter else "aresample=async=1"
    return ["-af", chain, "-c:a", "aac", "-b:a", f"{rendition.audio_bitrate_kbps}k", "-ac", "2",
            "-ar", str(audio_sample_rate(info))]  # fmt: skip


def audio_sample_rate(info: MediaInfo) -> int:
    """The output's audio rate: the source's when AAC players take it everywhere, 48 kHz otherwise."""
    rate = info.audio_sample_rate
    return rate if rate is not None and rate in AAC_SAMPLE_RATES else 48000
