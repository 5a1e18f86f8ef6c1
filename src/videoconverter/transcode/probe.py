"""Probe an upload with PyAV before anything decodes it, and refuse what is outside the limits."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from videoconverter.errors import LimitExceededError, NotAVideoError, NoVideoStreamError
from videoconverter.renditions import Limits
from videoconverter.transcode.color import PRIMARIES_NAMES, TRANSFER_NAMES, is_hdr

if TYPE_CHECKING:  # PyAV is imported where it is used: its libraries cost a process 30 MiB and 0.1 s to load,
    import av  # and the commands that only read job records or list buckets (`jobs --wait`) never need it

REGULAR_RATE_PACKETS = 300  # about 10 s at 30 fps: enough to see the rhythm, cheap on any file


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream of the source, as FFmpeg's ``-map 0:a:INDEX`` names it."""

    index: int  # among the source's audio streams
    language: str  # the stream's language tag (ISO 639-2, e.g. "eng"); "und" when untagged
    channels: int
    title: str = ""


@dataclass(frozen=True)
class TextTrack:
    """One subtitle stream of the source, as FFmpeg's ``-map 0:s:INDEX`` names it."""

    index: int  # among the source's subtitle streams
    codec: str  # "mov_text", "subrip", "ass", "webvtt", or a bitmap codec that cannot become text
    language: str  # "und" when untagged
    title: str = ""


@dataclass(frozen=True)
class MediaInfo:
    format_name: str  # libavformat's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_seconds: float | None
    width: int  # coded picture, before rotation and pixel aspect
    height: int
    rotation_degrees: int  # display rotation, counter-clockwise
    sample_aspect_ratio: Fraction
    frame_rate: float | None
    video_codec: str
    has_audio: bool
    audio_sample_rate: int | None
    stream_count: int
    color_transfer: str = ""  # "smpte2084" (PQ), "arib-std-b67" (HLG), "bt709", or "" when untagged
    color_primaries: str = ""
    regular_frame_rate: float | None = None  # from the frames' spacing, gaps left out: see _regular_frame_rate
    video_duration_seconds: float | None = None  # the video stream's own, from the header; audio may run longer
    audio_tracks: tuple[AudioTrack, ...] = ()  # every audio stream, in order (has_audio: at least one)
    text_tracks: tuple[TextTrack, ...] = ()  # every subtitle stream, in order

    @property
    def is_hdr(self) -> bool:
        return is_hdr(self.color_transfer)

    @property
    def variable_frame_rate(self) -> bool:
        """Whether frames come at irregular times (phones): the average rate is over 1 % off the regular one."""
        if not self.frame_rate or not self.regular_frame_rate:
            return False
        return abs(self.frame_rate - self.regular_frame_rate) > 0.01 * self.regular_frame_rate

    @property
    def nominal_frame_rate(self) -> float | None:
        """The rate the camera aimed at: the regular rate when known (dropped frames don't lower it)."""
        return self.regular_frame_rate or self.frame_rate

    @property
    def demuxer(self) -> str:
        """The demuxer name to force when converting (``-f``): the same one that probing picked."""
        return self.format_name.split(",")[0]

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as the picture is shown: pixel aspect applied, then rotation."""
        width = round(self.width * self.sample_aspect_ratio) if self.sample_aspect_ratio > 0 else self.width
        if self.rotation_degrees % 180:
            return self.height, width
        return width, self.height


def probe(path: Path, limits: Limits) -> MediaInfo:
    """Read the headers of ``path`` (and decode one frame, for its rotation) and check them against limits.

    Raises :class:`NotAVideoError`, :class:`NoVideoStreamError` or :class:`LimitExceededError`.
    """
    import av

    if path.stat().st_size == 0:
        raise NotAVideoError("the upload is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r", options=_open_options(limits))
    except av.FFmpegError as exc:
        raise NotAVideoError(
            "the upload is not a readable video in an allowed format "
            f"({', '.join(limits.allowed_input_formats)}): {exc.strerror or exc}"
        ) from exc
    with container:
        return _inspect(container, limits)


def _open_options(limits: Limits) -> dict[str, str]:
    return {
        "protocol_whitelist": "file",  # no network, no nested protocols (concat:, subfile:, http:)
        "format_whitelist": ",".join(limits.allowed_input_formats),  # no HLS playlists or other demuxers
        # Opening decodes a few frames to fill in stream parameters: refuse huge pictures there too, so a
        # 16000x16000 frame costs no gigabyte of memory before the limit below is checked.
        "max_pixels": str(limits.max_pixels),
    }


def keyframes_before(path: Path, limits: Limits, times: Sequence[float]) -> list[float | None]:
    """For each of ``times`` (seconds), the time of the video's keyframe at or before it, None when unknown: one
    seek and one packet each, nothing decoded, with the probe's input restrictions."""
    import av

    found: list[float | None] = []
    try:
        with av.open(str(path), mode="r", options=_open_options(limits)) as container:
            video = container.streams.video[0]
            for seconds in times:
                found.append(_keyframe_before(container, video, seconds))
    except (av.FFmpegError, IndexError):
        pass  # a source the conversion will report on: the samples stay where they were planned
    return found + [None] * (len(times) - len(found))


def _keyframe_before(container: av.container.InputContainer, video: av.VideoStream, seconds: float) -> float | None:
    if video.time_base is None:
        return None
    start = float(video.start_time * video.time_base) if video.start_time is not None else 0.0
    container.seek(int((seconds + start) / video.time_base), stream=video, backward=True, any_frame=False)
    for packet in container.demux(video):
        if packet.pts is None or packet.time_base is None:
            continue
        at = float(packet.pts * packet.time_base) - start
        return at if packet.is_keyframe and at <= seconds + 1e-3 else None
    return None


def _inspect(container: av.container.InputContainer, limits: Limits) -> MediaInfo:
    streams = container.streams
    if len(streams) > limits.max_streams:
        raise LimitExceededError(f"the upload has {len(streams)} streams; the limit is {limits.max_streams}")
    if not streams.video:
        raise NoVideoStreamError("the upload has no video stream (audio-only or empty)")
    video = streams.video[0]
    width, height = video.codec_context.width, video.codec_context.height
    if width <= 0 or height <= 0:
        # Also what a picture over max_pixels looks like: the decoder refused to open it while probing.
        raise LimitExceededError(
            "the video's picture size cannot be read: it is larger than the limit of "
            f"{limits.max_pixels} pixels, or the stream is corrupt"
        )
    if width * height > limits.max_pixels:
        raise LimitExceededError(
            f"the video is {width}x{height} ({width * height} pixels); the limit is {limits.max_pixels} pixels"
        )
    duration = _duration_seconds(container, video)
    if duration is not None and duration > limits.max_duration_seconds:
        raise LimitExceededError(f"the video lasts {duration:.0f} s; the limit is {limits.max_duration_seconds:.0f} s")
    rotation = _first_frame_rotation(container, video)
    audio = streams.audio[0] if streams.audio else None
    rate = video.average_rate or video.guessed_rate
    sar = video.sample_aspect_ratio
    return MediaInfo(
        format_name=container.format.name,
        duration_seconds=duration,
        width=width,
        height=height,
        rotation_degrees=rotation,
        sample_aspect_ratio=Fraction(sar.numerator, sar.denominator) if sar else Fraction(1),
        frame_rate=float(rate) if rate else None,
        video_codec=video.codec_context.codec.canonical_name,  # "av1", not its decoder "libdav1d"
        has_audio=audio is not None,
        audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
        stream_count=len(streams),
        color_transfer=TRANSFER_NAMES.get(int(video.codec_context.color_trc or 0), ""),
        color_primaries=PRIMARIES_NAMES.get(int(video.codec_context.color_primaries or 0), ""),
        regular_frame_rate=_regular_frame_rate(container, video),
        video_duration_seconds=_stream_seconds(video),
        audio_tracks=tuple(
            AudioTrack(i, _language(s), s.codec_context.channels or 0, _title(s)) for i, s in enumerate(streams.audio)
        ),
        text_tracks=tuple(
            TextTrack(i, s.codec_context.name or "", _language(s), _title(s)) for i, s in enumerate(streams.subtitles)
        ),
    )


def _language(stream: av.stream.Stream) -> str:
    """The stream's language tag, "und" (undetermined, ISO 639-2) when it has none."""
    tag = str(stream.metadata.get("language", "")).strip().lower()
    return tag if tag and tag.isascii() and tag.isalpha() and len(tag) <= 8 else "und"


def _title(stream: av.stream.Stream) -> str:
    return str(stream.metadata.get("title", "")).strip()[:100]  # not handler_name: muxers fill it with "SoundHandler"


def _duration_seconds(container: av.container.InputContainer, video: av.VideoStream) -> float | None:
    import av

    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    return _stream_seconds(video)


def _stream_seconds(video: av.VideoStream) -> float | None:
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    return None


def _first_frame_rotation(container: av.container.InputContainer, video: av.VideoStream) -> int:
    """The display rotation, which PyAV exposes on decoded frames. Only called within the pixel limit."""
    import av

    try:
        frame = _first_frame(container, video)
    except av.FFmpegError as exc:
        raise NotAVideoError(f"the video stream cannot be decoded: {exc.strerror or exc}") from exc
    if frame is None:
        raise NotAVideoError("the video stream has no decodable frame (truncated or empty)")
    return round(frame.rotation) % 360


def _first_frame(container: av.container.InputContainer, video: av.VideoStream) -> av.VideoFrame | None:
    """The stream's first decodable frame, decoding as little as it can.

    A decoder holds frames back to put B-frames in order: with x264's defaults the first frame comes out only
    after the third packet, three 1080p decodes instead of one (10 ms of a worker's CPU per job, and as many
    frames in memory). Draining the decoder after the first packet gives that frame at once. A stream that does
    not start with a frame that decodes alone (a cut in mid-GOP) goes on as before, packet by packet.
    """
    packets = container.demux(video)
    for packet in packets:
        if packet.size == 0:
            continue
        frames = video.decode(packet) or video.decode(None)
        if frames:
            return frames[0]
        video.codec_context.flush_buffers()  # out of the drained state, so that it takes packets again
        break
    for packet in packets:
        frames = video.decode(packet)
        if frames:
            return frames[0]
    return None


def _regular_frame_rate(container: av.container.InputContainer, video: av.VideoStream) -> float | None:
    """The rate of a clip's regularly spaced frames, from the timestamps of its first packets (no decoding).

    A phone in low light drops frames and jitters their times: the average rate (frames / duration) is then
    below what the camera aimed at. Intervals longer than 1.5x the median are gaps (dropped frames) and are
    left out; the mean of the others averages the jitter away.
    """
    import av

    times: list[float] = []
    try:
        for packet in container.demux(video):
            if packet.pts is not None and packet.time_base is not None:
                times.append(float(packet.pts * packet.time_base))
            if len(times) >= REGULAR_RATE_PACKETS:
                break
    except av.FFmpegError:
        pass  # a damaged stream: what was read so far still counts; the conversion reports the damage
    times.sort()
    intervals = [b - a for a, b in itertools.pairwise(times) if b > a]
    if len(intervals) < 2:
        return None
    median = statistics.median(intervals)
    regular = [i for i in intervals if i <= 1.5 * median]
    return 1.0 / statistics.fmean(regular)
