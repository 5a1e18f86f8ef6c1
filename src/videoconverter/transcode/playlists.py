"""HLS playlists: read FFmpeg's media playlists, write the master playlist (pure functions, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from videoconverter.errors import TranscodeError

AAC_LC = "mp4a.40.2"


@dataclass(frozen=True)
class Segment:
    uri: str
    duration_seconds: float


@dataclass(frozen=True)
class MediaPlaylist:
    init_uri: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Variant:
    """One rung as the master playlist announces it."""

    uri: str  # relative to the master playlist
    width: int
    height: int
    frame_rate: Fraction
    peak_bits_per_second: int
    average_bits_per_second: int
    codecs: str


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


def master_playlist(variants: list[Variant], has_audio: bool) -> str:
    """The master playlist over ``variants``, lowest first (players start low and climb)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.peak_bits_per_second):
        codecs = f"{v.codecs},{AAC_LC}" if has_audio else v.codecs
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.peak_bits_per_second},AVERAGE-BANDWIDTH={v.average_bits_per_second},"
            f'RESOLUTION={v.width}x{v.height},FRAME-RATE={float(v.frame_rate):.3f},CODECS="{codecs}"'
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"
