"""Renditions: what each upload is turned into, one queue, worker pool and output bucket each.

A rendition's ``kind`` says what is written under the upload's key:

- ``mp4``: one MP4 file, the key itself (the default);
- ``hls``: an adaptive-streaming ladder under ``KEY/``: ``KEY/master.m3u8`` (written last) over fMP4 segments;
- ``thumbnails``: a poster, thumbnails every N seconds and a seek-preview sprite under ``KEY/``, with
  ``KEY/index.json`` written last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from videoconverter.errors import ConfigError
from videoconverter.validation import Real, Whole, reject_unknown

KINDS = ("mp4", "hls", "thumbnails")
PER_TITLE_KINDS = ("mp4", "hls")  # the kinds a VMAF target applies to
CODECS = ("h264", "hevc", "av1", "vp9")
LADDER_MODES = ("one-decode", "per-rung")
HDR_MODES = ("tonemap", "keep")
#: CRF of each codec when the rendition sets none: about the same quality for each (their scales differ).
DEFAULT_CRF = {"h264": 23, "hevc": 26, "av1": 33, "vp9": 33}
#: Speed/quality preset when the rendition sets none: x264/x265 names, SVT-AV1 0-13, libvpx cpu-used 0-8.
DEFAULT_PRESET = {"h264": "medium", "hevc": "fast", "av1": "8", "vp9": "4"}
_PRESET_VALUES = {
    "h264": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"),
    "hevc": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"),
    "av1": tuple(str(n) for n in range(14)),
    "vp9": tuple(str(n) for n in range(9)),
}
_MAX_CRF = {"h264": 51, "hevc": 51, "av1": 63, "vp9": 63}
#: Elastic Transcoder's Generic presets' video bitrates: the baseline that bench/quality.py measures against.
GENERIC_PRESET_VIDEO_KBPS = {480: 1200, 720: 2400, 1080: 5400, 1440: 9000, 2160: 16000}
#: Our caps: about 80 % of those (720p 78 %, so that with audio a long hard video stays under 80 % of the
#: bytes). bench/quality.py: equal VMAF (within 0.5) or better on every clip, at 43-76 % of the bytes.
CAP_SHARE_OF_GENERIC = {480: 0.8, 720: 0.78, 1080: 0.8, 1440: 0.8, 2160: 0.8}
DEFAULT_CAP_SHARE = 0.8
#: With a VMAF target the target decides the bytes and the cap is only a ceiling: Elastic Transcoder's rate.
PER_TITLE_CAP_SHARE = 1.0
#: The VMAF target of a rendition that sets neither ``crf`` nor ``target_vmaf``, by short side (sizes in
#: between take the next smaller one's). bench/quality.py measured them against the Generic presets.
DEFAULT_TARGET_VMAF = {0: 97.5, 720: 97.5, 1080: 97.0}
DEFAULT_LADDER = (360, 480, 720, 1080)
#: Audio tracks kept when a rendition sets no ``max_audio_tracks``: an MP4 keeps its first-track behaviour (every
#: player plays it), a streaming package offers each language as its own audio rendition.
AUDIO_TRACKS = {"mp4": 1, "hls": 8}
#: The true peak every loudness-normalised output stays under (EBU R128 s1, Apple's HLS authoring spec 2.19).
TRUE_PEAK_DBTP = -1.0
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,76}$")  # + "-dlq" stays within SQS's 80 characters


@dataclass(frozen=True)
class Limits:
    """What an upload may be before it is refused, checked by probing before any decoding (and, for a
    truncated source, by comparing what FFmpeg could read with what the probe promised)."""

    max_pixels: int = 7680 * 4320  # 8K
    max_duration_seconds: float = 4 * 3600.0
    max_streams: int = 32
    max_input_bytes: int = 20 * 1024**3
    max_output_bytes: int = 20 * 1024**3
    transcode_timeout_seconds: float = 3 * 3600.0
    allowed_input_formats: tuple[str, ...] = ("mov", "mp4", "matroska", "webm")
    #: A source whose data stops before the duration its header promises (an interrupted transfer) fails the
    #: job permanently; true converts what could be read, and the job's note says it is truncated.
    accept_truncated_sources: bool = False


MAX_LIMIT_SECONDS = 30 * 24 * 3600.0  # a month: longer is a typo, and would overflow some timeouts
#: The range of each number of ``[limits]``: a limit of 0, -1, NaN or infinity would turn its check off.
LIMIT_VALUES: dict[str, Whole | Real] = {
    "max_pixels": Whole(1),
    "max_duration_seconds": Real(0, MAX_LIMIT_SECONDS, above=True),
    "max_streams": Whole(1),
    "max_input_bytes": Whole(1),
    "max_output_bytes": Whole(1),
    "transcode_timeout_seconds": Real(0, MAX_LIMIT_SECONDS, above=True),
}


def parse_limits(table: dict[str, Any]) -> Limits:
    """The ``[limits]`` table: every number checked against :data:`LIMIT_VALUES`, the formats a list of names."""
    reject_unknown("limits.", table, set(Limits.__dataclass_fields__))
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name in LIMIT_VALUES:
            values[name] = LIMIT_VALUES[name].check(value, f"limits.{name}")
        elif isinstance(getattr(Limits, name, None), bool):
            if not isinstance(value, bool):
                raise ConfigError(f"limits.{name}: expected true or false, got {value!r}")
            values[name] = value
        elif not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"limits.{name}: expected a non-empty list of format names, got {value!r}")
        else:
            values[name] = tuple(value)
    return replace(Limits(), **values)


@dataclass(frozen=True)
class Rendition:
    """One output of every upload: a queue, a worker pool and an output bucket."""

    name: str  # "720p"
    short_side: int  # the short side of the displayed picture, in pixels (hls: the ladder's top rung)
    queue: str
    output_bucket: str
    max_video_bitrate_kbps: int
    kind: str = "mp4"
    codec: str = "h264"
    crf: int | None = None  # None: DEFAULT_CRF of the codec
    preset: str = ""  # "": DEFAULT_PRESET of the codec
    x264_preset: str = ""  # the name this setting had before codecs could be chosen; H.264 only
    audio_bitrate_kbps: int = 160
    max_frame_rate: int = 60
    keyframe_interval_seconds: float = 2.0
    upscale: bool = False
    hdr: str = "tonemap"  # "keep": HDR stays HDR (10-bit HEVC, AV1 or VP9 only)
    ladder: tuple[int, ...] = DEFAULT_LADDER  # hls: rungs' short sides; those above the source are skipped
    segment_seconds: float = 4.0  # hls
    ladder_mode: str = "one-decode"  # hls: one FFmpeg for all rungs (faster: bench/ladder.py), or one per rung
    thumbnail_interval_seconds: float = 10.0  # thumbnails
    thumbnail_width: int = 320  # thumbnails and sprite tiles
    sprite: bool = True  # thumbnails: also a sprite sheet with a WebVTT index for seek previews
    # --- quality per title (mp4, hls): see transcode/pertitle.py -------------------------------------------
    target_vmaf: float = 0.0  # the VMAF each encode aims at, its CRF chosen on samples; 0: the fixed crf
    verify_vmaf: bool = False  # also measure the whole output's VMAF afterwards (as long again as the encode)
    # --- the streaming package (hls) and what every kind carries over from the source -----------------------
    dash: bool = True  # hls: also a DASH manifest (KEY/manifest.mpd) over the same CMAF segments
    max_audio_tracks: int = 0  # the source's audio tracks kept, in order; 0: the kind's default (AUDIO_TRACKS)
    captions: bool = True  # mp4, hls: the source's text tracks and sidecar captions (KEY.vtt, KEY.en.srt, ...)
    loudness_lufs: float | None = None  # mp4, hls: normalise to this integrated loudness (EBU R128); None: as is

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}-dlq"

    @property
    def audio_track_limit(self) -> int:
        """How many of the source's audio tracks the output keeps (the first ones)."""
        return self.max_audio_tracks or AUDIO_TRACKS.get(self.kind, 1)

    @property
    def effective_crf(self) -> int:
        return DEFAULT_CRF[self.codec] if self.crf is None else self.crf

    @property
    def effective_preset(self) -> str:
        return self.preset or (self.codec == "h264" and self.x264_preset) or DEFAULT_PRESET[self.codec]

    def rung(self, short_side: int) -> Rendition:
        """The MP4-like settings of one rung of an HLS ladder: this rendition's codec settings, the rung's cap."""
        cap = default_video_kbps(short_side)  # the ladder's caps, with a VMAF target or without
        return replace(self, kind="mp4", name=f"{short_side}p", short_side=short_side, max_video_bitrate_kbps=cap)


def default_video_kbps(short_side: int, per_title: bool = False) -> int:
    """The default cap of a rendition: a share of Elastic Transcoder's rate for its size (or of the same
    curve, 0.0047 kb/s a pixel of short side squared, for sizes it had no preset for), rounded to 10 kb/s;
    :data:`PER_TITLE_CAP_SHARE` of it when a VMAF target decides the bytes."""
    generic = GENERIC_PRESET_VIDEO_KBPS.get(short_side) or max(300, round(short_side * short_side * 0.0047))
    share = PER_TITLE_CAP_SHARE if per_title else CAP_SHARE_OF_GENERIC.get(short_side, DEFAULT_CAP_SHARE)
    return max(250, int(round(generic * share, -1)))


def default_target_vmaf(short_side: int) -> float:
    """The default VMAF target for a rendition of ``short_side``: :data:`DEFAULT_TARGET_VMAF`."""
    return DEFAULT_TARGET_VMAF[max(side for side in DEFAULT_TARGET_VMAF if side <= short_side)]


def default_rendition(short_side: int, name: str | None = None, kind: str = "mp4", per_title: bool = True) -> Rendition:
    """The defaults of a rendition: with ``per_title`` (mp4 and hls only), the default VMAF target and cap."""
    name = name or (f"{short_side}p" if kind == "mp4" else kind)
    per_title = per_title and kind in PER_TITLE_KINDS
    return Rendition(
        name=name,
        short_side=short_side,
        queue=f"videoconverter_{name}",
        output_bucket=f"videoconverter-output-{name}",
        max_video_bitrate_kbps=default_video_kbps(short_side, per_title),
        kind=kind,
        target_vmaf=default_target_vmaf(short_side) if per_title else 0.0,
    )


DEFAULT_RENDITIONS = (default_rendition(720), default_rendition(1080))
#: The range of each number of a ``[[renditions]]`` table (the codec's own CRF scale is checked after).
NUMBERS: dict[str, Whole | Real] = {
    "short_side": Whole(16, 4320),
    "max_video_bitrate_kbps": Whole(50, 1_000_000),
    "crf": Whole(0, max(_MAX_CRF.values())),
    "audio_bitrate_kbps": Whole(16, 1024),
    "max_frame_rate": Whole(1, 240),
    "keyframe_interval_seconds": Real(0.1, 20),
    "segment_seconds": Real(2, 6),
    "thumbnail_interval_seconds": Real(1, 3600),
    "thumbnail_width": Whole(16, 1920),
    "target_vmaf": Real(0, 100),
    "max_audio_tracks": Whole(0, 16),
    "loudness_lufs": Real(-70, -5),
}
_TYPES: dict[str, Any] = {
    "name": str,
    "queue": str,
    "output_bucket": str,
    "kind": str,
    "codec": str,
    "preset": str,
    "x264_preset": str,
    "upscale": bool,
    "hdr": str,
    "ladder": tuple,
    "ladder_mode": str,
    "sprite": bool,
    "verify_vmaf": bool,
    "dash": bool,
    "captions": bool,
}


def parse_renditions(raw: Any) -> tuple[Rendition, ...]:
    """The ``[[renditions]]`` tables, each checked on its own (see :func:`validate_rendition`)."""
    if raw is None:
        return DEFAULT_RENDITIONS
    if not isinstance(raw, list) or not raw:
        raise ConfigError("renditions: expected a non-empty array of tables ([[renditions]])")
    return tuple(_parse_one(item, f"renditions[{i}]") for i, item in enumerate(raw))


def _parse_one(item: Any, where: str) -> Rendition:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a table")
    reject_unknown(f"{where}.", item, {*_TYPES, *NUMBERS})
    kind = item.get("kind", "mp4")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    short_side = item.get("short_side")
    if short_side is None and kind == "mp4":
        raise ConfigError(f"{where}.short_side is required (e.g. 720)")
    values: dict[str, Any] = {}
    for name, value in item.items():
        if name in NUMBERS:
            values[name] = NUMBERS[name].check(value, f"{where}.{name}")
        elif _TYPES[name] is tuple:
            if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
                raise ConfigError(f"{where}.{name}: expected a non-empty list of short sides, e.g. [360, 720]")
            values[name] = tuple(sorted(set(value)))
        elif not _is_a(value, _TYPES[name]):
            raise ConfigError(f"{where}.{name}: expected {_TYPES[name].__name__}, got {value!r}")
        else:
            values[name] = value
    if short_side is None:  # hls: the top rung; thumbnails: unused
        short_side = max(values["ladder"]) if kind == "hls" and "ladder" in values else 1080
    values.pop("short_side", None)
    per_title = _per_title(item, kind, where)
    base = default_rendition(short_side, item.get("name"), kind, per_title)
    return validate_rendition(replace(base, **values), where)


def _per_title(item: dict[str, Any], kind: str, where: str) -> bool:
    """Whether a rendition's CRF comes from a VMAF target: by default, unless it sets ``crf`` (a fixed CRF) or
    ``target_vmaf = 0``; setting both a CRF and a target is a contradiction."""
    if "crf" in item and item.get("target_vmaf"):
        raise ConfigError(f"{where}.crf: a fixed crf and a target_vmaf exclude each other (target_vmaf = 0: crf)")
    if item.get("target_vmaf") and kind not in PER_TITLE_KINDS:
        raise ConfigError(f"{where}.target_vmaf: only for kind {' or '.join(PER_TITLE_KINDS)}")
    return "crf" not in item and item.get("target_vmaf", 1) != 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_a(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    return isinstance(value, expected) and not isinstance(value, bool)


def validate_rendition(r: Rendition, where: str) -> Rendition:
    """Check one rendition's own settings; raise :class:`ConfigError` naming the first wrong one."""
    if not _NAME_RE.match(r.name):
        raise ConfigError(f"{where}.name: {r.name!r} is invalid (letters, digits, _ and -, at most 76)")
    if not _NAME_RE.match(r.queue):
        raise ConfigError(f"{where}.queue: {r.queue!r} is not a valid queue name")
    if r.kind == "hls" and any(not 16 <= side <= 4320 or side % 2 for side in r.ladder):
        # First: the ladder's top rung is the short side.
        raise ConfigError(f"{where}.ladder: rungs are even short sides from 16 to 4320")
    for name, spec in NUMBERS.items():
        if getattr(r, name) is not None:  # crf None: the codec's default
            spec.check(getattr(r, name), f"{where}.{name}")
    if r.kind == "hls":
        _validate_ladder(r, where)
    if r.short_side % 2:
        raise ConfigError(f"{where}.short_side: expected an even number of pixels from 16 to 4320")
    if r.codec not in CODECS:
        raise ConfigError(f"{where}.codec: expected one of {', '.join(CODECS)}, got {r.codec!r}")
    if r.crf is not None and not 0 <= r.crf <= _MAX_CRF[r.codec]:
        raise ConfigError(f"{where}.crf: expected 0 to {_MAX_CRF[r.codec]} for {r.codec}")
    if r.effective_preset not in _PRESET_VALUES[r.codec]:
        choices = ", ".join(_PRESET_VALUES[r.codec])
        raise ConfigError(f"{where}.preset: {r.effective_preset!r} is not a {r.codec} preset ({choices})")
    if r.x264_preset and r.codec != "h264":
        raise ConfigError(f"{where}.x264_preset: only for codec h264; use preset for {r.codec}")
    if r.hdr not in HDR_MODES:
        raise ConfigError(f"{where}.hdr: expected tonemap or keep, got {r.hdr!r}")
    if r.hdr == "keep" and r.codec == "h264":
        raise ConfigError(f"{where}.hdr: H.264 outputs are 8-bit SDR; keep HDR with codec hevc, av1 or vp9")
    return r


def _validate_ladder(r: Rendition, where: str) -> None:
    if r.codec != "h264":
        # Streams that play everywhere: hls.js and every Apple device take H.264 + AAC.
        raise ConfigError(f"{where}.codec: HLS ladders are H.264 (they must play everywhere), got {r.codec!r}")
    ratio = r.segment_seconds / r.keyframe_interval_seconds
    if abs(ratio - round(ratio)) > 1e-6:
        # Segments may only cut at keyframes: each must hold a whole number of keyframe intervals.
        raise ConfigError(f"{where}.segment_seconds: must be a multiple of keyframe_interval_seconds")
    if r.ladder_mode not in LADDER_MODES:
        raise ConfigError(f"{where}.ladder_mode: expected one of {', '.join(LADDER_MODES)}")
