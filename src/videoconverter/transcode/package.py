"""The streaming package's description (``KEY/VERSION/package.json``, schema 1): everything both manifests are
written from, so that they can be written again without the media (a caption that arrives after the video).

Layout under the upload's key (names relative to ``KEY``)::

    VERSION/RUNG/init.mp4, seg_00000.m4s..., index.m3u8, iframes.m3u8   video only, one directory a rung
    VERSION/audio/a<N>-<lang>/init.mp4, seg_00000.m4s..., index.m3u8      the source's audio track N
    VERSION/subs/s<N>-<lang>/captions.vtt, index.m3u8                     WebVTT, one segment
    VERSION/package.json                                                  this description
    manifest.mpd                                                          DASH (unless ``dash = false``)
    master.m3u8                                                           HLS, written last: the marker
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from videoconverter.errors import TranscodeError

SCHEMA = 1
PACKAGE_JSON = "package.json"
MANIFEST_MPD = "manifest.mpd"
MASTER = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
IFRAME_PLAYLIST = "iframes.m3u8"
CAPTIONS_VTT = "captions.vtt"
AAC_LC = "mp4a.40.2"


@dataclass(frozen=True)
class Segment:
    """One media segment of a track."""

    uri: str  # relative to the track's directory
    duration_seconds: float  # EXTINF, as FFmpeg's playlist says
    start: int  # decode time of its first sample (tfdt), in the track's timescale
    ticks: int  # its samples' duration, in the track's timescale
    size: int  # bytes


@dataclass(frozen=True)
class Track:
    """One segmented fMP4 stream (a rung's video, or one audio track)."""

    directory: str  # relative to VERSION: "360p", "audio/a0-eng"
    init: str  # the init section's name in the directory
    timescale: int  # mdhd's: units a second of start and ticks
    codecs: str  # RFC 6381
    peak_bits_per_second: int  # the largest segment's rate
    average_bits_per_second: int  # all its bytes (init included) over its duration
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class IFrame:
    """One I-frame playlist entry: a byte range of a segment from its moof to the end of its key sample."""

    uri: str
    offset: int
    length: int
    duration_seconds: float


@dataclass(frozen=True)
class Rung:
    name: str  # "360p": the directory and the DASH Representation id
    width: int
    height: int
    frame_rate: Fraction
    track: Track
    iframes: tuple[IFrame, ...]
    iframe_bits_per_second: int  # the I-frame stream's BANDWIDTH: its largest range over its duration


@dataclass(frozen=True)
class AudioRendition:
    name: str  # "a0-eng": the directory under audio/ and the DASH Representation id
    language: str  # as the source tags it; "und" when untagged
    title: str  # what players show (NAME)
    channels: int  # output channels
    track: Track


@dataclass(frozen=True)
class Subtitle:
    name: str  # "s0-eng": the directory under subs/
    language: str
    title: str
    origin: str  # where it came from: "text track 0", a sidecar's key


@dataclass(frozen=True)
class Package:
    version: str
    duration_seconds: float
    dash: bool  # whether manifest.mpd is written
    rungs: tuple[Rung, ...]
    audio: tuple[AudioRendition, ...] = ()
    subtitles: tuple[Subtitle, ...] = ()

    def path(self, *parts: str) -> str:
        """A name relative to the upload's key: ``VERSION/parts...``."""
        return "/".join((self.version, *parts))


def to_json(package: Package) -> str:
    """package.json's text (schema 1)."""
    return json.dumps(
        {
            "schema": SCHEMA,
            "version": package.version,
            "duration_seconds": package.duration_seconds,
            "dash": package.dash,
            "rungs": [_rung_json(r) for r in package.rungs],
            "audio": [{**_plain(a), "track": _track_json(a.track)} for a in package.audio],
            "subtitles": [_plain(s) for s in package.subtitles],
        },
        indent=1,
    )


def read_package(text: str) -> Package:
    """A package from its package.json; raises TranscodeError (permanent) on another schema or a broken file."""
    try:
        data = json.loads(text)
        if data.get("schema") != SCHEMA:
            raise TranscodeError(f"package.json has schema {data.get('schema')!r}, this version reads {SCHEMA}")
        return Package(
            version=str(data["version"]),
            duration_seconds=float(data["duration_seconds"]),
            dash=bool(data["dash"]),
            rungs=tuple(_rung(r) for r in data["rungs"]),
            audio=tuple(
                AudioRendition(a["name"], a["language"], a["title"], int(a["channels"]), _track(a["track"]))
                for a in data["audio"]
            ),
            subtitles=tuple(Subtitle(s["name"], s["language"], s["title"], s["origin"]) for s in data["subtitles"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError) as exc:
        raise TranscodeError(f"package.json cannot be read: {exc!r}") from exc


def _plain(item: AudioRendition | Subtitle) -> dict[str, Any]:
    return {k: v for k, v in vars(item).items() if k != "track"}


def _track_json(track: Track) -> dict[str, Any]:
    return {**{k: v for k, v in vars(track).items() if k != "segments"}, "segments": [vars(s) for s in track.segments]}


def _rung_json(rung: Rung) -> dict[str, Any]:
    return {
        "name": rung.name,
        "width": rung.width,
        "height": rung.height,
        "frame_rate": str(rung.frame_rate),  # "30000/1001": exact
        "track": _track_json(rung.track),
        "iframes": [vars(i) for i in rung.iframes],
        "iframe_bits_per_second": rung.iframe_bits_per_second,
    }


def _track(data: dict[str, Any]) -> Track:
    segments = tuple(
        Segment(s["uri"], float(s["duration_seconds"]), int(s["start"]), int(s["ticks"]), int(s["size"]))
        for s in data["segments"]
    )
    return Track(
        data["directory"], data["init"], int(data["timescale"]), data["codecs"],
        int(data["peak_bits_per_second"]), int(data["average_bits_per_second"]), segments,
    )  # fmt: skip


def _rung(data: dict[str, Any]) -> Rung:
    iframes = tuple(
        IFrame(i["uri"], int(i["offset"]), int(i["length"]), float(i["duration_seconds"])) for i in data["iframes"]
    )
    return Rung(
        data["name"], int(data["width"]), int(data["height"]), Fraction(data["frame_rate"]), _track(data["track"]),
        iframes, int(data["iframe_bits_per_second"]),
    )  # fmt: skip
