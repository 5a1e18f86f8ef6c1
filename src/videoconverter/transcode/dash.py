"""The DASH manifest (``KEY/manifest.mpd``) over the package's CMAF segments, the same files HLS names: a pure
function of the :class:`.package.Package`.

Static, ISO BMFF live profile (``SegmentTemplate`` addressing, which dash.js, Shaka and ExoPlayer all play):
one video AdaptationSet with every rung, one audio AdaptationSet a track (DASH players pick audio by
AdaptationSet), one text AdaptationSet a caption track, its WebVTT file a single ``BaseURL`` (sidecar text).
Segment times come from each segment's ``tfdt`` in the track's own timescale, so the ``SegmentTimeline`` is what
the media says, not a rounded playlist duration.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from videoconverter.transcode.package import CAPTIONS_VTT, Package, Track

NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
LIVE_PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
CHANNELS_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
TEXT_BITS_PER_SECOND = 256  # a nominal rate: the whole file is fetched once


def manifest(package: Package) -> str:
    """The MPD's text."""
    longest = max((s.duration_seconds for r in package.rungs for s in r.track.segments), default=1.0)
    mpd = ET.Element(
        "MPD",
        xmlns=NAMESPACE,
        profiles=LIVE_PROFILE,
        type="static",
        mediaPresentationDuration=_duration(package.duration_seconds),
        minBufferTime=_duration(math.ceil(longest)),
    )
    period = ET.SubElement(mpd, "Period", id="0", start="PT0S")
    _video(period, package)
    for i, audio in enumerate(package.audio):
        adaptation = ET.SubElement(
            period, "AdaptationSet", id=str(1 + i), contentType="audio", mimeType="audio/mp4",
            lang=audio.language, segmentAlignment="true", startWithSAP="1",
        )  # fmt: skip
        # the schema's order: the common elements (channels, label) before Role, Role before Representation
        channels = str(audio.channels)
        ET.SubElement(adaptation, "AudioChannelConfiguration", schemeIdUri=CHANNELS_SCHEME, value=channels)
        ET.SubElement(adaptation, "Label").text = audio.title
        ET.SubElement(adaptation, "Role", schemeIdUri=ROLE_SCHEME, value="main" if i == 0 else "alternate")
        representation = _representation(adaptation, package, audio.name, audio.track)
        representation.append(_template(audio.track))
    for i, subtitle in enumerate(package.subtitles):
        adaptation = ET.SubElement(
            period, "AdaptationSet", id=str(1 + len(package.audio) + i), contentType="text", mimeType="text/vtt",
            lang=subtitle.language,
        )  # fmt: skip
        ET.SubElement(adaptation, "Label").text = subtitle.title
        ET.SubElement(adaptation, "Role", schemeIdUri=ROLE_SCHEME, value="subtitle")
        text = ET.SubElement(adaptation, "Representation", id=subtitle.name, bandwidth=str(TEXT_BITS_PER_SECOND))
        ET.SubElement(text, "BaseURL").text = package.path("subs", subtitle.name, CAPTIONS_VTT)
    ET.indent(mpd, space=" ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(mpd, encoding="unicode") + "\n"


def _video(period: ET.Element, package: Package) -> None:
    adaptation = ET.SubElement(
        period, "AdaptationSet", id="0", contentType="video", mimeType="video/mp4", segmentAlignment="true",
        startWithSAP="1",
    )  # fmt: skip
    for rung in sorted(package.rungs, key=lambda r: r.track.peak_bits_per_second):
        representation = _representation(adaptation, package, rung.name, rung.track)
        representation.set("width", str(rung.width))
        representation.set("height", str(rung.height))
        representation.set("frameRate", str(rung.frame_rate))  # "30" or "30000/1001", as DASH writes it
        representation.set("sar", "1:1")
        representation.append(_template(rung.track))


def _representation(adaptation: ET.Element, package: Package, name: str, track: Track) -> ET.Element:
    # @bandwidth with minBufferTime bounds what a player must fetch ahead: the peak, as HLS's BANDWIDTH.
    representation = ET.SubElement(
        adaptation, "Representation", id=name, bandwidth=str(track.peak_bits_per_second), codecs=track.codecs
    )
    ET.SubElement(representation, "BaseURL").text = package.path(track.directory) + "/"
    return representation


def _template(track: Track) -> ET.Element:
    """``SegmentTemplate`` + ``SegmentTimeline`` over FFmpeg's ``seg_%05d.m4s`` names, numbered from 0."""
    template = ET.Element(
        "SegmentTemplate", timescale=str(track.timescale), initialization=track.init,
        media="seg_$Number%05d$.m4s", startNumber="0",
    )  # fmt: skip
    timeline = ET.SubElement(template, "SegmentTimeline")
    for start, ticks, repeat in timeline_runs(track):
        entry = ET.SubElement(timeline, "S")
        if start is not None:
            entry.set("t", str(start))
        entry.set("d", str(ticks))
        if repeat:
            entry.set("r", str(repeat))
    return template


def timeline_runs(track: Track) -> list[tuple[int | None, int, int]]:
    """(t, d, r) of each ``S``: runs of equal durations; ``t`` where a segment does not start where the one
    before ended (the first, or after a gap), None otherwise."""
    runs: list[tuple[int | None, int, int]] = []
    end: int | None = None
    for segment in track.segments:
        if runs and segment.start == end and runs[-1][1] == segment.ticks:
            start, ticks, repeat = runs[-1]
            runs[-1] = (start, ticks, repeat + 1)
        else:
            runs.append((None if segment.start == end else segment.start, segment.ticks, 0))
        end = segment.start + segment.ticks
    return runs


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"
