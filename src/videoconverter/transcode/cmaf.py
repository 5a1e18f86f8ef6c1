"""Reading the fMP4 (CMAF) boxes FFmpeg's HLS muxer writes: pure functions on bytes, no I/O.

What the manifests need and only the files can tell: a track's timescale (``mdhd`` in the init section), each
segment's decode time and duration in that timescale (``tfdt``, ``trun``), which DASH's ``SegmentTimeline``
must match, and where a segment's first sample ends, which an I-frame playlist's byte range must cover.

FFmpeg writes one fragment (``moof`` + ``mdat``) a segment with ``-hls_segment_type fmp4``; a segment of several
fragments (``-hls_flags`` / ``frag_duration`` setups, other packagers) is read fragment by fragment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from videoconverter.errors import TranscodeError

CONTAINERS = (b"moov", b"trak", b"mdia", b"moof", b"traf")
#: ISO/IEC 14496-12 8.8.3.1: sample_is_non_sync_sample, in the 32-bit sample flags.
NON_SYNC_SAMPLE = 0x0001_0000

# tfhd flags (8.8.7.1)
TFHD_BASE_DATA_OFFSET = 0x00_0001
TFHD_SAMPLE_DESCRIPTION_INDEX = 0x00_0002
TFHD_DEFAULT_DURATION = 0x00_0008
TFHD_DEFAULT_SIZE = 0x00_0010
TFHD_DEFAULT_FLAGS = 0x00_0020
# trun flags (8.8.8.1)
TRUN_DATA_OFFSET = 0x00_0001
TRUN_FIRST_SAMPLE_FLAGS = 0x00_0004
TRUN_DURATION = 0x00_0100
TRUN_SIZE = 0x00_0200
TRUN_FLAGS = 0x00_0400
TRUN_COMPOSITION_OFFSET = 0x00_0800


@dataclass(frozen=True)
class Box:
    kind: bytes  # the four-character type
    offset: int  # of the box's header, from the start of the buffer
    size: int  # header included
    header: int  # 8, or 16 with a 64-bit size

    @property
    def body(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Fragment:
    """One ``moof`` (its first track run) and where its first sample lies."""

    offset: int  # of the moof box in the segment: where an I-frame byte range starts
    decode_time: int  # tfdt, in the track's timescale
    duration: int  # all its samples, in the track's timescale
    first_sample_end: int  # byte after the first sample (in the mdat that follows)
    starts_with_sync_sample: bool  # the first sample is a keyframe (IDR for H.264)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes laid end to end in ``data[start:end]``; raises TranscodeError on a size that does not fit."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:  # a 64-bit size follows the type
            if offset + 16 > end:
                raise TranscodeError(f"an MP4 box ({kind!r}) is cut short")
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:  # to the end of the enclosing space
            size = end - offset
        if size < header or offset + size > end:
            raise TranscodeError(f"an MP4 box ({kind!r}) of {size} bytes does not fit its file")
        yield Box(kind, offset, size, header)
        offset += size


def find(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None) -> Box | None:
    """The first box at ``path`` (``(b"moov", b"trak", b"mdia", b"mdhd")``) under ``data[start:end]``."""
    for box in boxes(data, start, end):
        if box.kind == path[0]:
            return box if len(path) == 1 else find(data, path[1:], box.body, box.end)
    return None


def timescale(init_section: bytes) -> int:
    """The (first) track's timescale, from ``moov/trak/mdia/mdhd``: the unit of its tfdt and sample durations."""
    mdhd = find(init_section, (b"moov", b"trak", b"mdia", b"mdhd"))
    if mdhd is None:
        raise TranscodeError("the fMP4 init section has no media header (mdhd)")
    version = init_section[mdhd.body]
    # version 1: 64-bit creation and modification times before the timescale
    at = mdhd.body + (4 + 16 if version == 1 else 4 + 8)
    return int(struct.unpack_from(">I", init_section, at)[0])


def fragments(segment: bytes) -> tuple[Fragment, ...]:
    """Every fragment of a media segment, in order; raises TranscodeError if it has none."""
    found = [_fragment(segment, box) for box in boxes(segment) if box.kind == b"moof"]
    if not found:
        raise TranscodeError("an fMP4 segment without a movie fragment (moof)")
    return tuple(found)


@dataclass(frozen=True)
class _Defaults:
    base: int
    duration: int
    size: int
    flags: int


def _fragment(data: bytes, moof: Box) -> Fragment:
    traf = find(data, (b"traf",), moof.body, moof.end)
    if traf is None:
        raise TranscodeError("a movie fragment without a track fragment (traf)")
    tfhd = find(data, (b"tfhd",), traf.body, traf.end)
    trun = find(data, (b"trun",), traf.body, traf.end)
    if tfhd is None or trun is None:
        raise TranscodeError("a track fragment without its header (tfhd) or run (trun)")
    tfdt = find(data, (b"tfdt",), traf.body, traf.end)
    decode_time = 0
    if tfdt is not None:
        wide = data[tfdt.body] == 1
        decode_time = struct.unpack_from(">Q" if wide else ">I", data, tfdt.body + 4)[0]
    defaults = _track_defaults(data, tfhd, moof.offset)
    durations, sizes, first_flags, data_offset = _run(data, trun, defaults)
    return Fragment(
        offset=moof.offset,
        decode_time=int(decode_time),
        duration=sum(durations),
        first_sample_end=defaults.base + data_offset + sizes[0],
        starts_with_sync_sample=not first_flags & NON_SYNC_SAMPLE,
    )


def _track_defaults(data: bytes, tfhd: Box, moof_offset: int) -> _Defaults:
    """What tfhd sets for every sample; data offsets count from the moof unless it names a base offset."""
    flags = int.from_bytes(data[tfhd.body + 1 : tfhd.body + 4], "big")
    at = tfhd.body + 8  # version, flags, track_ID
    base = moof_offset
    if flags & TFHD_BASE_DATA_OFFSET:
        base, at = struct.unpack_from(">Q", data, at)[0], at + 8
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        at += 4
    values = {}
    for flag, name in ((TFHD_DEFAULT_DURATION, "duration"), (TFHD_DEFAULT_SIZE, "size"), (TFHD_DEFAULT_FLAGS, "flags")):
        values[name] = struct.unpack_from(">I", data, at)[0] if flags & flag else 0
        at += 4 if flags & flag else 0
    return _Defaults(int(base), values["duration"], values["size"], values["flags"])


def _run(data: bytes, trun: Box, defaults: _Defaults) -> tuple[list[int], list[int], int, int]:
    """A track run's sample durations, sizes, the first sample's flags and the data offset."""
    flags = int.from_bytes(data[trun.body + 1 : trun.body + 4], "big")
    count = struct.unpack_from(">I", data, trun.body + 4)[0]
    if count == 0:
        raise TranscodeError("an fMP4 track run without samples")
    at = trun.body + 8
    data_offset = 0
    if flags & TRUN_DATA_OFFSET:
        data_offset, at = struct.unpack_from(">i", data, at)[0], at + 4
    first_flags = None
    if flags & TRUN_FIRST_SAMPLE_FLAGS:
        first_flags, at = struct.unpack_from(">I", data, at)[0], at + 4
    per_sample = [f for f in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_COMPOSITION_OFFSET) if flags & f]
    if at + 4 * len(per_sample) * count > trun.end:
        raise TranscodeError("an fMP4 track run is cut short")
    durations, sizes, sample_flags = [], [], []
    for _ in range(count):
        fields = dict(zip(per_sample, struct.unpack_from(f">{len(per_sample)}I", data, at), strict=True))
        at += 4 * len(per_sample)
        durations.append(fields.get(TRUN_DURATION, defaults.duration))
        sizes.append(fields.get(TRUN_SIZE, defaults.size))
        sample_flags.append(fields.get(TRUN_FLAGS, defaults.flags))
    first = first_flags if first_flags is not None else sample_flags[0]
    return durations, sizes, first, data_offset
