"""Captions: text tracks of the upload and sidecar caption files, turned into WebVTT for the package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Caption:
    """One caption track ready for an output: a checked UTF-8 WebVTT file in the job's directory."""

    language: str  # BCP 47 / ISO 639 as tagged or named ("en", "eng"); "und" when unknown
    name: str  # what players show in their captions menu
    path: Path  # WebVTT, UTF-8, starting "WEBVTT" (the HLS writer adds X-TIMESTAMP-MAP)
    origin: str  # where it came from, for logs and notes: "text track 0" or the sidecar's key


# --- STUB (drop at merge): the captions helper's functions, just enough for the sidecar flow's tests -------

import re  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

from videoconverter.errors import CaptionError  # noqa: E402

SIDECAR_SUFFIXES = (".vtt", ".srt")
MAX_CAPTION_BYTES = 2 * 1024 * 1024
_LANGUAGE_RE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z]{2}|-[0-9]{3})?$")
_TIME_RE = re.compile(r"(\d+:)?[0-5]\d:[0-5]\d[.,]\d{3}")


def is_sidecar_key(key: str) -> bool:
    return key.lower().endswith(SIDECAR_SUFFIXES)


def video_stems(sidecar_key: str) -> str:
    stem = sidecar_key[: sidecar_key.rfind(".")]
    head, dot, tail = stem.rpartition(".")
    return head if dot and _LANGUAGE_RE.match(tail) else stem


def sidecar_language(sidecar_key: str, video_key: str) -> str | None:
    if not is_sidecar_key(sidecar_key) or "." not in video_key:
        return None
    video_stem = video_key[: video_key.rfind(".")]
    stem = sidecar_key[: sidecar_key.rfind(".")]
    if stem == video_stem:
        return "und"
    tail = stem[len(video_stem) + 1 :]
    if stem.startswith(video_stem + ".") and _LANGUAGE_RE.match(tail):
        return tail
    return None


def prepare_sidecar(data: bytes, key: str, video_key: str, workdir: Path) -> Caption:
    if len(data) > MAX_CAPTION_BYTES:
        raise CaptionError(f"{len(data)} bytes; the limit is {MAX_CAPTION_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptionError(f"not UTF-8 (byte {exc.start})") from None
    cues = [line for line in text.splitlines() if "-->" in line]
    if not cues:
        raise CaptionError("no cue")
    for line in cues:
        start, _, end = line.partition("-->")
        if not _TIME_RE.fullmatch(start.strip()) or not _TIME_RE.match(end.strip()):
            raise CaptionError(f"broken timestamp {line.strip()!r}")
    body = re.sub(r"(\d\d),(\d{3})", r"\1.\2", text)
    if not body.lstrip().startswith("WEBVTT"):
        body = "WEBVTT\n\n" + body
    language = sidecar_language(key, video_key) or "und"
    path = workdir / f"sidecar-{re.sub(r'[^A-Za-z0-9.-]', '_', key)}.vtt"
    path.write_text(body, encoding="utf-8")
    return Caption(language, language, path, key)


def embed_captions(
    run: Callable[[list[str], float | None], object], workdir: Path, ffmpeg: str, mp4: Path, captions: Sequence[Caption]
) -> Path:
    out = workdir / f"embedded-{mp4.name}"
    args = [ffmpeg, "-nostdin", "-y", "-protocol_whitelist", "file", "-f", "mp4", "-i", f"file:{mp4}"]
    for caption in captions:
        args += ["-protocol_whitelist", "file", "-f", "webvtt", "-i", f"file:{caption.path}"]
    args += ["-map", "0:v", "-map", "0:a?", "-map", "0:s?"]
    args += [arg for n in range(len(captions)) for arg in ("-map", f"{n + 1}:0")]
    args += ["-c", "copy", "-c:s", "mov_text", "-movflags", "+faststart", "-f", "mp4", f"file:{out}"]
    run(args, None)
    return out
