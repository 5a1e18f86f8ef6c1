"""HLS playlists: read FFmpeg's media playlists; write the master, I-frame and subtitle playlists (pure
functions, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from videoconverter.errors import TranscodeError
from videoconverter.transcode.package import (
    AAC_LC,
    CAPTIONS_VTT,
    IFRAME_PLAYLIST,
    MEDIA_PLAYLIST,
    IFrame,
    Package,
)

AUDIO_GROUP = "aac"
SUBTITLES_GROUP = "subs"


@dataclass(frozen=True)
class Segment:
    uri: str
    duration_seconds: float


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str
    segments: tuple[Segment, ...]


def parse_media_playlist(text: str) -> MediaPlaylist:
    """The init section and segments of a VOD media playlist as FFmpeg's HLS muxer writes it."""
    init_uri, segments, duration = "", [], None
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("#EXT-X-MAP:"):
            init_uri = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#"):
            if duration is None:
                raise TranscodeError(f"the HLS playlist names {line!r} without a duration")
            segments.append(Segment(line, duration))
            duration = None
    if not segments:
        raise TranscodeError("FFmpeg wrote an HLS playlist without segments")
    return MediaPlaylist(init_uri, tuple(segments))


def bitrates(playlist: MediaPlaylist, sizes: dict[str, int], init_bytes: int) -> tuple[int, int]:
    """Peak and average bits per second, as the master playlist's BANDWIDTH and AVERAGE-BANDWIDTH define them:
    the peak over segments, the average over all of the rung's bytes (init section included)."""
    total_seconds = sum(s.duration_seconds for s in playlist.segments)
    peak = max(sizes[s.uri] * 8 / max(s.duration_seconds, 0.001) for s in playlist.segments)
    average = (sum(sizes[s.uri] for s in playlist.segments) + init_bytes) * 8 / max(total_seconds, 0.001)
    return round(peak), round(average)


def avc_codec(init_section: bytes) -> str:
    """The RFC 6381 name of the H.264 stream (``avc1.64001f``): profile, constraints and level, read from the
    avcC box of the fMP4 init section, so the master playlist says exactly what the encoder chose."""
    at = init_section.find(b"avcC")
    if at < 0 or len(init_section) < at + 8:
        raise TranscodeError("the HLS init section has no H.264 configuration (avcC)")
    return "avc1." + init_section[at + 5 : at + 8].hex()


def master_playlist(package: Package) -> str:
    """The master playlist: audio and subtitle renditions, the rungs lowest first (players start low and climb),
    each with the largest audio peak added (Apple 9.13), then each rung's I-frame stream."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for i, audio in enumerate(package.audio):
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",LANGUAGE="{audio.language}",NAME="{_quoted(audio.title)}",'
            f'DEFAULT={"YES" if i == 0 else "NO"},AUTOSELECT=YES,CHANNELS="{audio.channels}",'
            f'URI="{package.path(audio.track.directory, MEDIA_PLAYLIST)}"'
        )
    for subtitle in package.subtitles:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLES_GROUP}",LANGUAGE="{subtitle.language}",'
            f'NAME="{_quoted(subtitle.title)}",DEFAULT=NO,AUTOSELECT=YES,'
            f'URI="{package.path("subs", subtitle.name, MEDIA_PLAYLIST)}"'
        )
    peak_audio = max((a.track.peak_bits_per_second for a in package.audio), default=0)
    average_audio = max((a.track.average_bits_per_second for a in package.audio), default=0)
    groups = (f',AUDIO="{AUDIO_GROUP}"' if package.audio else "") + (
        f',SUBTITLES="{SUBTITLES_GROUP}"' if package.subtitles else ""
    )
    rungs = sorted(package.rungs, key=lambda r: r.track.peak_bits_per_second)
    for rung in rungs:
        codecs = f"{rung.track.codecs},{AAC_LC}" if package.audio else rung.track.codecs
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={rung.track.peak_bits_per_second + peak_audio},"
            f"AVERAGE-BANDWIDTH={rung.track.average_bits_per_second + average_audio},"
            f'RESOLUTION={rung.width}x{rung.height},FRAME-RATE={float(rung.frame_rate):.3f},CODECS="{codecs}"' + groups
        )
        lines.append(package.path(rung.track.directory, MEDIA_PLAYLIST))
    for rung in rungs:
        lines.append(
            f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={rung.iframe_bits_per_second},RESOLUTION={rung.width}x{rung.height},"
            f'CODECS="{rung.track.codecs}",URI="{package.path(rung.track.directory, IFRAME_PLAYLIST)}"'
        )
    return "\n".join(lines) + "\n"


def iframe_playlist(init_uri: str, iframes: tuple[IFrame, ...]) -> str:
    """A rung's I-frame playlist: each entry a byte range of a segment, its moof through its key sample."""
    target = math.ceil(max(i.duration_seconds for i in iframes))
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-I-FRAMES-ONLY", f'#EXT-X-MAP:URI="{init_uri}"']  # fmt: skip
    for entry in iframes:
        lines += [f"#EXTINF:{entry.duration_seconds:.6f},", f"#EXT-X-BYTERANGE:{entry.length}@{entry.offset}"]
        lines.append(entry.uri)
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


def iframe_bitrate(iframes: tuple[IFrame, ...]) -> int:
    """The I-frame stream's BANDWIDTH: the largest entry's bytes over its duration."""
    return round(max(i.length * 8 / max(i.duration_seconds, 0.001) for i in iframes))


def subtitle_playlist(duration_seconds: float) -> str:
    """A subtitle track's media playlist: the whole WebVTT file as one segment as long as the video."""
    return (
        f"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{math.ceil(duration_seconds)}\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{duration_seconds:.6f},\n{CAPTIONS_VTT}\n#EXT-X-ENDLIST\n"
    )


def timestamped_vtt(text: str, mpegts: int) -> str:
    """WebVTT for HLS: ``X-TIMESTAMP-MAP`` right after the ``WEBVTT`` line (RFC 8216 3.5), mapping cue time 0 to
    ``mpegts`` (90 kHz). hls.js places cues at their time plus (MPEGTS - the media's initial PTS); our fMP4 media
    starts at decode time 0, so MPEGTS is the first video segment's tfdt in 90 kHz units (0 for FFmpeg's)."""
    first, _, rest = text.removeprefix("\ufeff").replace("\r\n", "\n").partition("\n")
    lines = [line for line in rest.split("\n") if not line.startswith("X-TIMESTAMP-MAP=")]
    text = "\n".join([first, f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000", *lines])
    return text if text.endswith("\n") else text + "\n"


def _quoted(text: str) -> str:
    """An attribute's quoted-string may hold neither a double quote nor a line break (RFC 8216 4.2)."""
    return text.replace('"', "'").replace("\n", " ").replace("\r", " ")
