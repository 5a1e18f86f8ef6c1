"""The FFmpeg argument list for one rendition, built as a pure function (no I/O, no FFmpeg run)."""

from __future__ import annotations

from pathlib import Path

from videoconverter.config import Limits, Rendition
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.probe import MediaInfo

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
) -> list[str]:
    """Arguments (``argv[0]`` included) that convert ``source`` into ``destination`` for ``rendition``.

    Hardening for hostile uploads: no stdin, only the ``file`` protocol, the demuxer the probe chose (and
    allowed) is forced, the decoder refuses pictures over the pixel limit, the output size is capped, and the
    paths are our own temp-file names prefixed with ``file:`` so nothing is read as an option or a protocol.
    Metadata and chapters are dropped (phones record GPS positions); rotation is applied to the pixels.
    """
    fps = min(info.frame_rate or rendition.max_frame_rate, rendition.max_frame_rate)
    gop = max(1, round(fps * rendition.keyframe_interval_seconds))
    args = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-y",
        "-protocol_whitelist",
        "file",
        "-f",
        info.demuxer,
        "-max_pixels",
        str(limits.max_pixels),
        "-i",
        f"file:{source}",
        "-map",
        "0:v:0",
    ]
    if info.has_audio:
        args += ["-map", "0:a:0"]
    args += [
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-vf",
        f"scale={size.width}:{size.height}:flags=bicubic,setsar=1,format=yuv420p",
        "-fpsmax",
        str(rendition.max_frame_rate),
        "-c:v",
        "libx264",
        "-preset",
        rendition.x264_preset,
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        str(rendition.crf),
        "-maxrate",
        f"{rendition.max_video_bitrate_kbps}k",
        # A one-second VBV buffer, starting half full: a whole file carries at most cap x (duration + 0.5 s)
        # of video, and in practice stays under the cap even for short, hard-to-encode clips (x264's default
        # start, 90 % full, let a 4 s test pattern average 8 % over it).
        "-bufsize",
        f"{rendition.max_video_bitrate_kbps}k",
        "-x264-params",
        "vbv-init=0.5",
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{rendition.keyframe_interval_seconds:g})",
    ]
    if info.has_audio:
        rate = info.audio_sample_rate if info.audio_sample_rate in AAC_SAMPLE_RATES else 48000
        args += ["-c:a", "aac", "-b:a", f"{rendition.audio_bitrate_kbps}k", "-ac", "2", "-ar", str(rate)]
    if threads > 0:
        args += ["-threads", str(threads)]
    args += [
        "-movflags",
        "+faststart",
        "-fs",
        str(limits.max_output_bytes),
        "-progress",
        "pipe:1",
        "-f",
        "mp4",
        f"file:{destination}",
    ]
    return args
