"""Turn what FFmpeg's HLS muxer wrote (a directory: init section, segments, media playlist) into the package's
:class:`.package.Track`, read from the boxes themselves, and a rung's I-frame entries."""

from __future__ import annotations

from pathlib import Path

from videoconverter.errors import TranscodeError
from videoconverter.transcode import cmaf
from videoconverter.transcode.package import MEDIA_PLAYLIST, IFrame, Segment, Track
from videoconverter.transcode.playlists import avc_codec, bitrates, parse_media_playlist


def read_track(directory: Path, name: str, codecs: str | None = None) -> Track:
    """The track FFmpeg wrote in ``directory`` (``name``: its directory relative to VERSION). ``codecs``: the
    RFC 6381 name, or None to read an H.264 one from the init section."""
    playlist = parse_media_playlist((directory / MEDIA_PLAYLIST).read_text(encoding="utf-8"))
    init = (directory / playlist.init_uri).read_bytes()
    segments = []
    for number, entry in enumerate(playlist.segments):
        # the MPD's SegmentTemplate names segments by number: FFmpeg's names must be exactly those
        if entry.uri != f"seg_{number:05d}.m4s":
            raise TranscodeError(f"FFmpeg named segment {number} {entry.uri!r}, not seg_{number:05d}.m4s")
        data = (directory / entry.uri).read_bytes()
        fragments = cmaf.fragments(data)
        ticks = sum(f.duration for f in fragments)
        segments.append(Segment(entry.uri, entry.duration_seconds, fragments[0].decode_time, ticks, len(data)))
    peak, average = bitrates(playlist, {s.uri: s.size for s in segments}, len(init))
    return Track(
        directory=name,
        init=playlist.init_uri,
        timescale=cmaf.timescale(init),
        codecs=codecs or avc_codec(init),
        peak_bits_per_second=peak,
        average_bits_per_second=average,
        segments=tuple(segments),
    )


def iframes(directory: Path, track: Track) -> tuple[IFrame, ...]:
    """One entry a fragment that starts with a sync sample (every segment starts with an IDR; a segment of
    several fragments may hold more): from its moof to the end of that sample, lasting until the next entry."""
    starts: list[tuple[str, cmaf.Fragment]] = []
    for segment in track.segments:
        fragments = cmaf.fragments((directory / segment.uri).read_bytes())
        if not fragments[0].starts_with_sync_sample:
            raise TranscodeError(f"{track.directory}/{segment.uri} does not start with a keyframe")
        starts += [(segment.uri, f) for f in fragments if f.starts_with_sync_sample]
    last = track.segments[-1]
    end = last.start + last.ticks
    entries = []
    for i, (uri, fragment) in enumerate(starts):
        following = starts[i + 1][1].decode_time if i + 1 < len(starts) else end
        length = fragment.first_sample_end - fragment.offset
        duration = (following - fragment.decode_time) / track.timescale
        entries.append(IFrame(uri, fragment.offset, length, round(duration, 6)))
    return tuple(entries)
