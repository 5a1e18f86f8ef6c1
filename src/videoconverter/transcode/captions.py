"""Captions: text tracks of the upload and sidecar caption files, turned into WebVTT for the package.

Sidecars sit next to the video: for ``dir/talk.mp4``, ``dir/talk.vtt`` or ``dir/talk.srt`` (language "und")
and ``dir/talk.LANG.vtt|srt`` with a BCP-47-like LANG (``en``, ``pt-BR``, ``eng``). Every caption, sidecar or
extracted track, is re-parsed by :func:`parse_captions` and written again as normalised UTF-8 WebVTT.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from videoconverter.errors import CaptionError, TranscodeError
from videoconverter.transcode.command import input_args, preamble
from videoconverter.transcode.subtitles_text import MAX_CAPTION_BYTES, Caption, parse_captions, render_webvtt

if TYPE_CHECKING:
    from videoconverter.renditions import Rendition
    from videoconverter.transcode.probe import TextTrack
    from videoconverter.transcode.products import Conversion, Runner

SIDECAR_SUFFIXES = (".vtt", ".srt")
#: Subtitle codecs FFmpeg can turn into WebVTT text; bitmap ones (dvd_subtitle, hdmv_pgs_subtitle, dvb_subtitle)
#: are pictures and cannot.
TEXT_CODECS = frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})
MAX_NAME_CHARACTERS = 64
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-(?:[A-Za-z]{2}|[0-9]{3}))?$")

# (ISO 639-1, ISO 639-2/T, ISO 639-2/B or "", English name): MP4 wants three letters, menus want names.
_LANGUAGES = (
    ("en", "eng", "", "English"), ("fr", "fra", "fre", "French"), ("de", "deu", "ger", "German"),
    ("es", "spa", "", "Spanish"), ("pt", "por", "", "Portuguese"), ("it", "ita", "", "Italian"),
    ("nl", "nld", "dut", "Dutch"), ("sv", "swe", "", "Swedish"), ("no", "nor", "", "Norwegian"),
    ("da", "dan", "", "Danish"), ("fi", "fin", "", "Finnish"), ("pl", "pol", "", "Polish"),
    ("cs", "ces", "cze", "Czech"), ("ru", "rus", "", "Russian"), ("uk", "ukr", "", "Ukrainian"),
    ("el", "ell", "gre", "Greek"), ("tr", "tur", "", "Turkish"), ("ar", "ara", "", "Arabic"),
    ("he", "heb", "", "Hebrew"), ("hi", "hin", "", "Hindi"), ("zh", "zho", "chi", "Chinese"),
    ("ja", "jpn", "", "Japanese"), ("ko", "kor", "", "Korean"), ("vi", "vie", "", "Vietnamese"),
    ("th", "tha", "", "Thai"), ("id", "ind", "", "Indonesian"), ("hu", "hun", "", "Hungarian"),
    ("ro", "ron", "rum", "Romanian"), ("ca", "cat", "", "Catalan"),
)  # fmt: skip
_BY_TAG = {tag: row for row in _LANGUAGES for tag in row[:3] if tag}


# --- naming rules -------------------------------------------------------------------------------------------


def is_sidecar_key(key: str) -> bool:
    """Whether ``key`` names a caption file (``.vtt`` or ``.srt``, any case)."""
    return key.lower().endswith(SIDECAR_SUFFIXES)


def is_language_tag(text: str) -> bool:
    """2-3 letters, optionally ``-REGION`` (2 letters or 3 digits): ``en``, ``pt-BR``, ``eng``, ``es-419``."""
    return _LANGUAGE_TAG.match(text) is not None


def _without_suffix(key: str) -> str:
    """The key without the last suffix of its last segment (a dot in a folder name is not a suffix)."""
    name = PurePosixPath(key).name
    return key[: len(key) - len(name) + name.rfind(".")] if "." in name.lstrip(".") else key


def video_stems(sidecar_key: str) -> str:
    """The key prefix a sidecar belongs to: ``dir/talk`` for ``dir/talk.en.srt`` and for ``dir/talk.vtt``."""
    stem = _without_suffix(sidecar_key)
    head, _, last = stem.rpartition(".")
    return head if head and "/" not in last and is_language_tag(last) else stem


def sidecar_candidates(video_key: str) -> str:
    """The prefix to list for ``video_key``'s sidecars: ``dir/talk.`` for ``dir/talk.mp4`` (filter the listing
    with :func:`sidecar_language`; it also finds the video itself and unrelated ``dir/talk.x.y`` keys)."""
    return _without_suffix(video_key) + "."


def sidecar_language(sidecar_key: str, video_key: str) -> str | None:
    """The language of ``sidecar_key`` as a sidecar of ``video_key`` (``"und"`` when it names none), or None when
    it is not one of that video's sidecars. Tags are normalised: ``pt-br`` becomes ``pt-BR``."""
    if not is_sidecar_key(sidecar_key) or sidecar_key == video_key:
        return None
    stem, video_stem = _without_suffix(sidecar_key), _without_suffix(video_key)
    if stem == video_stem:
        return "und"
    tag = stem[len(video_stem) + 1 :] if stem.startswith(video_stem + ".") else ""
    if not is_language_tag(tag):
        return None
    language, _, region = tag.partition("-")
    return language.lower() + (f"-{region.upper()}" if region else "")


def language_name(tag: str) -> str:
    """A name for a captions menu: ``English`` for ``en``/``eng``, ``English (US)`` for ``en-US``; other tags
    as they are, "Unknown" for ``und``."""
    language, _, region = tag.partition("-")
    row = _BY_TAG.get(language.lower())
    if row is None:
        return "Unknown" if tag.lower() in ("und", "") else tag
    return row[3] + (f" ({region.upper()})" if region else "")


def mp4_language(tag: str) -> str:
    """The ISO 639-2 three-letter code an MP4 track's language is: ``en``/``en-GB`` → ``eng``; an unknown
    two-letter tag → ``und``; three letters are kept."""
    language = tag.partition("-")[0].lower()
    row = _BY_TAG.get(language)
    if row is not None:
        return row[1]  # FFmpeg's MP4 muxer stores either form of ISO 639-2
    return language if len(language) == 3 and language.isalpha() else "und"


def menu_name(title: str) -> str:
    """An upload's track title made safe for menus and playlists: no control characters or double quotes (an
    HLS attribute is quoted), at most :data:`MAX_NAME_CHARACTERS`."""
    cleaned = "".join(c if c.isprintable() else " " for c in title if c != '"')
    return " ".join(cleaned.split())[:MAX_NAME_CHARACTERS]


# --- sidecars and text tracks -------------------------------------------------------------------------------


def prepare_sidecar(data: bytes, key: str, video_key: str, workdir: Path) -> Caption:
    """Check the sidecar ``key`` (its bytes ``data``) and write it into ``workdir`` as normalised WebVTT.

    Raises :class:`CaptionError` with the reason (the key named in it)."""
    fmt = PurePosixPath(key).suffix.lower().lstrip(".")
    try:
        cues = parse_captions(data, fmt)
    except CaptionError as exc:
        raise CaptionError(exc.reason) from None  # the caller names the file
    language = sidecar_language(key, video_key) or "und"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    path = workdir / f"caption-sidecar-{digest}.vtt"
    path.write_text(render_webvtt(cues), encoding="utf-8")
    return Caption(language, language_name(language), path, origin=key)


def embedded_captions(job: Conversion, rendition: Rendition) -> tuple[tuple[Caption, ...], str]:
    """The source's text tracks as checked WebVTT captions, and a note naming the tracks left out (bitmap
    subtitles; a track FFmpeg could not extract or that failed the checks). One track's failure never fails
    the job. Nothing when ``rendition.captions`` is off."""
    if not rendition.captions:
        return (), ""
    captions: list[Caption] = []
    refused: list[str] = []
    for track in job.info.text_tracks:
        if track.codec not in TEXT_CODECS:
            refused.append(f"text track {track.index} ({track.codec}) cannot become text")
            continue
        try:
            captions.append(_extract(job, track))
        except (CaptionError, TranscodeError) as exc:
            refused.append(f"text track {track.index} ({track.codec}) was left out: {exc.message}")
    return tuple(captions), "; ".join(refused)


def extract_args(job: Conversion, track: TextTrack, destination: Path) -> list[str]:
    """FFmpeg's arguments that write text track ``track`` of the upload as WebVTT (hardened input)."""
    return [*input_args(job.ffmpeg, job.source, job.info, job.limits), "-map", f"0:s:{track.index}",
            "-c:s", "webvtt", "-fs", str(MAX_CAPTION_BYTES + 1), "-f", "webvtt", f"file:{destination}"]  # fmt: skip


def _extract(job: Conversion, track: TextTrack) -> Caption:
    path = job.workdir / f"caption-track-{track.index}.vtt"
    job.run(extract_args(job, track, path), None)
    size = path.stat().st_size if path.exists() else 0
    if size > MAX_CAPTION_BYTES:  # -fs stopped it: don't read what it cut
        raise CaptionError(f"its captions are over the limit of {MAX_CAPTION_BYTES} bytes")
    cues = parse_captions(path.read_bytes(), "vtt")
    path.write_text(render_webvtt(cues), encoding="utf-8")
    name = menu_name(track.title) or language_name(track.language)
    return Caption(track.language, name, path, origin=f"text track {track.index}")


# --- MP4: captions as mov_text tracks -----------------------------------------------------------------------


def embed_captions_args(
    ffmpeg: str, mp4_in: Path, captions: tuple[Caption, ...], mp4_out: Path, *, existing_tracks: int = 0
) -> list[str]:
    """FFmpeg's arguments that copy ``mp4_in`` (our own output: video, audio and its ``existing_tracks`` text
    tracks stream-copied) into ``mp4_out`` with each caption added as a mov_text track tagged with its language.
    The WebVTT inputs are files we wrote and checked; they are read with the ``file`` protocol only."""
    args = [*preamble(ffmpeg), "-protocol_whitelist", "file", "-f", "mp4", "-i", f"file:{mp4_in}"]
    for caption in captions:
        args += ["-protocol_whitelist", "file", "-f", "webvtt", "-i", f"file:{caption.path}"]
    args += ["-map", "0:v", "-map", "0:a?", "-map", "0:s?"]
    for number, _ in enumerate(captions, start=1):
        args += ["-map", f"{number}:0"]
    args += ["-c", "copy", "-c:s", "mov_text"]
    for number, caption in enumerate(captions, start=existing_tracks):
        args += [f"-metadata:s:s:{number}", f"language={mp4_language(caption.language)}",
                 f"-metadata:s:s:{number}", f"title={caption.name}"]  # fmt: skip
    return [*args, "-movflags", "+faststart", "-f", "mp4", f"file:{mp4_out}"]


def embed_captions(job_run: Runner, workdir: Path, ffmpeg: str, mp4: Path, captions: tuple[Caption, ...]) -> Path:
    """``mp4`` with ``captions`` added as mov_text tracks, remuxed without re-encoding (its own text tracks
    kept): a new file in ``workdir``, or ``mp4`` itself when there is nothing to add."""
    if not captions:
        return mp4
    import av

    with av.open(str(mp4)) as container:
        existing = sum(1 for stream in container.streams if stream.type == "subtitle")
    destination = workdir / f"{mp4.stem}-captioned.mp4"
    job_run(embed_captions_args(ffmpeg, mp4, captions, destination, existing_tracks=existing), None)
    return destination
