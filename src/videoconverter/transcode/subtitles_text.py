"""SRT and WebVTT as text: parse bytes into checked cues, write cues as WebVTT. Pure: bytes in, str out.

Every caption (a sidecar file or a text track FFmpeg extracted) passes through :func:`parse_captions`, so one set
of checks decides what reaches a player: UTF-8, bounded size and cue count, well-formed increasing timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from videoconverter.errors import CaptionError


@dataclass(frozen=True)
class Caption:
    """One caption track ready for an output: a checked UTF-8 WebVTT file in the job's directory."""

    language: str  # BCP 47 / ISO 639 as tagged or named ("en", "eng"); "und" when unknown
    name: str  # what players show in their captions menu
    path: Path  # WebVTT, UTF-8, starting "WEBVTT" (the HLS writer adds X-TIMESTAMP-MAP)
    origin: str  # where it came from, for logs and notes: "text track 0" or the sidecar's key


MAX_CAPTION_BYTES = 2 * 1024 * 1024  # a feature film's captions are about 100 KiB
MAX_CUES = 20_000  # about one cue every 0.3 s for 2 hours
CAPTION_FORMATS = ("srt", "vtt")

_BOM = b"\xef\xbb\xbf"
# [hours:]minutes:seconds(.|,)fraction; minutes and seconds are range-checked after matching, to say what is
# wrong. Digits are bounded: Python refuses to convert numbers of thousands of digits (a ValueError, not ours).
_TIMESTAMP = r"(?:(\d{1,9}):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIMESTAMP}\s*-->\s*{_TIMESTAMP}(?:\s.*)?$")
_VTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_VTT_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")


@dataclass(frozen=True)
class Cue:
    start_seconds: float
    end_seconds: float
    text: str  # lines joined with "\n", as the file had them (SRT/WebVTT tags such as <i> kept)


def parse_captions(data: bytes, fmt: str) -> list[Cue]:
    """The cues of an SRT (``fmt="srt"``) or WebVTT (``"vtt"``) file, checked.

    Accepts a UTF-8 BOM, CRLF or CR line ends, extra blank lines, SRT timestamps with commas or dots, WebVTT
    timestamps without hours, NOTE/STYLE/REGION blocks and cue settings (dropped). Raises :class:`CaptionError`
    with the reason: not UTF-8 (where the first bad byte is), over :data:`MAX_CAPTION_BYTES` or
    :data:`MAX_CUES`, a broken timestamp (its line), no cue at all, or not the format named."""
    if fmt not in CAPTION_FORMATS:
        raise CaptionError(f"unknown caption format {fmt!r} (expected one of {', '.join(CAPTION_FORMATS)})")
    if len(data) > MAX_CAPTION_BYTES:
        raise CaptionError(f"the caption file has {len(data)} bytes, over the limit of {MAX_CAPTION_BYTES}")
    blocks = _blocks(_decode(data))
    cues = _vtt_cues(blocks) if fmt == "vtt" else _srt_cues(blocks)
    if not cues:
        raise CaptionError("the caption file has no cue")
    return cues


def _decode(data: bytes) -> str:
    body = data[len(_BOM) :] if data.startswith(_BOM) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(data) - len(body))
        line = data[:offset].count(b"\n") + 1
        raise CaptionError(
            f"the caption file is not UTF-8: byte 0x{data[offset]:02x} at offset {offset} (line {line})"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with the line number (1-based) it starts at."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                blocks.append((number, current))
            current.append(line.rstrip())
        else:
            current = []
    return blocks


def _vtt_cues(blocks: Sequence[tuple[int, list[str]]]) -> list[Cue]:
    if not blocks or not _VTT_HEADER.match(blocks[0][1][0]):
        raise CaptionError('not a WebVTT file: it does not start with "WEBVTT"')
    cues: list[Cue] = []
    for start_line, lines in blocks[1:]:
        if lines[0].split(maxsplit=1)[0] in _VTT_SKIPPED_BLOCKS and "-->" not in lines[0]:
            continue
        # An optional cue identifier comes before the timing line.
        timing_at = 0 if "-->" in lines[0] else 1
        if timing_at >= len(lines) or "-->" not in lines[timing_at]:
            raise CaptionError(f"line {start_line}: a WebVTT block that is neither a cue nor a NOTE/STYLE block")
        _append(cues, _timing(lines[timing_at], start_line + timing_at), lines[timing_at + 1 :])
    return cues


def _srt_cues(blocks: Sequence[tuple[int, list[str]]]) -> list[Cue]:
    cues: list[Cue] = []
    for start_line, lines in blocks:
        timing_at = 1 if len(lines) > 1 and lines[0].strip().isdigit() and "-->" in lines[1] else 0
        if "-->" not in lines[timing_at]:
            if len(lines) > 1 and lines[0].strip().isdigit():  # a cue number, then no timing line
                raise CaptionError(f"line {start_line + 1}: unreadable timing line {lines[1].strip()[:80]!r}")
            if not cues:
                raise CaptionError(f"not an SRT file: line {start_line} is not a cue number and timing line")
            # Blank lines inside a cue's text are common in SRT files made by hand: the text goes on.
            last = cues[-1]
            cues[-1] = Cue(last.start_seconds, last.end_seconds, "\n".join([last.text, *lines]).strip("\n"))
            continue
        _append(cues, _timing(lines[timing_at], start_line + timing_at), lines[timing_at + 1 :])
    return cues


def _append(cues: list[Cue], timing: tuple[float, float], text_lines: Sequence[str]) -> None:
    if len(cues) >= MAX_CUES:
        raise CaptionError(f"the caption file has over {MAX_CUES} cues")
    cues.append(Cue(timing[0], timing[1], "\n".join(text_lines)))


def _timing(line: str, number: int) -> tuple[float, float]:
    match = _TIMING.match(line)
    if match is None:
        raise CaptionError(f"line {number}: unreadable timing line {line.strip()[:80]!r}")
    fields = match.groups()
    start, end = _seconds(fields[:4], number), _seconds(fields[4:], number)
    if end < start:
        raise CaptionError(f"line {number}: the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
    return start, end


def _seconds(fields: Sequence[str | None], number: int) -> float:
    hours, minutes, seconds, fraction = fields
    if int(minutes or 0) >= 60 or int(seconds or 0) >= 60:
        raise CaptionError(f"line {number}: minutes and seconds must be under 60 in a timestamp")
    whole = int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    return whole + int((fraction or "0").ljust(3, "0")) / 1000


def render_webvtt(cues: Iterable[Cue], timestamp_map: str | None = None) -> str:
    """A WebVTT file: the header, ``X-TIMESTAMP-MAP=...`` right after it when given (HLS segments need it),
    then the cues. Text is made safe for WebVTT: "-->" would read as a timing line and a blank line would end
    the cue, so the arrow is escaped and blank lines are dropped."""
    parts = ["WEBVTT" + (f"\nX-TIMESTAMP-MAP={timestamp_map}" if timestamp_map else "")]
    for cue in cues:
        lines = [line.replace("-->", "--&gt;") for line in cue.text.split("\n") if line.strip()]
        parts.append("\n".join([f"{format_timestamp(cue.start_seconds)} --> {format_timestamp(cue.end_seconds)}",
                                *lines]))  # fmt: skip
    return "\n\n".join(parts) + "\n"


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``, as WebVTT writes it."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
