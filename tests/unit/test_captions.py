"""Caption parsing, WebVTT rendering, sidecar naming rules and the MP4 embedding arguments (pure functions)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from videoconverter.errors import CaptionError, PermanentError
from videoconverter.transcode.captions import (
    Caption,
    embed_captions_args,
    is_sidecar_key,
    language_name,
    menu_name,
    mp4_language,
    prepare_sidecar,
    sidecar_candidates,
    sidecar_language,
    video_stems,
)
from videoconverter.transcode.subtitles_text import MAX_CAPTION_BYTES, MAX_CUES, Cue, parse_captions, render_webvtt

SRT = b"1\n00:00:01,000 --> 00:00:02,500\nHello\nworld\n\n2\n00:00:03,000 --> 00:00:04,000\n<i>Bye</i>\n"


def test_srt_is_parsed() -> None:
    assert parse_captions(SRT, "srt") == [Cue(1.0, 2.5, "Hello\nworld"), Cue(3.0, 4.0, "<i>Bye</i>")]


def test_srt_with_bom_crlf_dots_and_extra_blank_lines() -> None:
    data = (
        b"\xef\xbb\xbf\r\n\r\n1\r\n00:00:01.000 --> 00:00:02.000\r\nHi\r\n\r\n\r\n\r\n"
        b"2\r\n01:02:03,5 --> 01:02:04,250\r\nThere\r\n"
    )
    assert parse_captions(data, "srt") == [Cue(1.0, 2.0, "Hi"), Cue(3723.5, 3724.25, "There")]


def test_srt_blank_line_inside_a_cue_keeps_the_text() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000\nfirst\n\nsecond\n"
    assert parse_captions(data, "srt") == [Cue(1.0, 2.0, "first\nsecond")]


def test_vtt_with_hours_omitted_notes_style_identifiers_and_settings() -> None:
    data = (
        b"WEBVTT - a title\n\nNOTE a comment\nover two lines\n\nSTYLE\n::cue { color: red }\n\n"
        b"intro\n00:01.000 --> 00:02.000 align:start line:90%\nHello\n\n01:00:00.000 --> 01:00:01.000\nLate\n"
    )
    assert parse_captions(data, "vtt") == [Cue(1.0, 2.0, "Hello"), Cue(3600.0, 3601.0, "Late")]


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"1\n00:00:01,000 --> 00:00:02,000\nca\xe7a\n", "srt", "not UTF-8: byte 0xe7 at offset 34 (line 3)"),
        (b"\xef\xbb\xbfWEBVTT\n\xff", "vtt", "not UTF-8: byte 0xff at offset 10 (line 2)"),
        (b"x" * (MAX_CAPTION_BYTES + 1), "srt", "over the limit"),
        (b"1\n00:00:01,000 -> 00:00:02,000\nHi\n", "srt", "line 2: unreadable timing line"),
        (b"1\n00:00:01,000 --> 00:00:0x,000\nHi\n", "srt", "line 2: unreadable timing line"),
        (b"1\n00:00:03,000 --> 00:00:02,000\nHi\n", "srt", "line 2: the cue ends (2.000 s) before it starts"),
        (b"1\n00:61:00,000 --> 00:62:00,000\nHi\n", "srt", "minutes and seconds must be under 60"),
        (b"1\n00:00:60,000 --> 00:01:00,000\nHi\n", "srt", "minutes and seconds must be under 60"),
        (b"\n\n\r\n", "srt", "no cue"),
        (SRT + b"\n3\n00:00:05,000 -> 00:00:06,000\nlost\n", "srt", "line 11: unreadable timing line"),
        (b"1\n00:00:01," + b"9" * 5000 + b" --> 00:00:02,000\nHi\n", "srt", "line 2: unreadable timing line"),
        (b"1\n" + b"9" * 5000 + b":00:01,000 --> 00:00:02,000\nHi\n", "srt", "line 2: unreadable timing line"),
        (b"WEBVTT\n\nNOTE only a note\n", "vtt", "no cue"),
        (b"1\n00:00:01.000 --> 00:00:02.000\nHi\n", "vtt", 'does not start with "WEBVTT"'),
        (b"WEBVTTX\n\n00:01.000 --> 00:02.000\nHi\n", "vtt", 'does not start with "WEBVTT"'),
        (b"WEBVTT\n\njust some words\n", "vtt", "line 3: a WebVTT block that is neither a cue"),
        (b"<html><body>nope</body></html>", "srt", "not an SRT file"),
        (SRT, "ass", "unknown caption format"),
    ],
)
def test_refusals_say_why(data: bytes, fmt: str, reason: str) -> None:
    with pytest.raises(CaptionError) as raised:
        parse_captions(data, fmt)
    assert reason in raised.value.reason
    assert isinstance(raised.value, PermanentError)


def test_too_many_cues_is_refused() -> None:
    cue = b"00:00:01.000 --> 00:00:01.001\nx\n\n"
    parse_captions(b"WEBVTT\n\n" + cue * MAX_CUES, "vtt")  # the limit itself is fine
    with pytest.raises(CaptionError, match=f"over {MAX_CUES} cues"):
        parse_captions(b"WEBVTT\n\n" + cue * (MAX_CUES + 1), "vtt")


def test_render_webvtt_with_timestamp_map_and_sanitised_text() -> None:
    cues = [Cue(1.0, 2.5, "a --> b\n\n  \nnext"), Cue(3661.25, 3662.0, "late")]
    text = render_webvtt(cues, timestamp_map="MPEGTS:900000,LOCAL:00:00:00.000")
    assert text == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n"
        "00:00:01.000 --> 00:00:02.500\na --&gt; b\nnext\n\n"
        "01:01:01.250 --> 01:01:02.000\nlate\n"
    )
    assert parse_captions(text.encode(), "vtt") == [Cue(1.0, 2.5, "a --&gt; b\nnext"), Cue(3661.25, 3662.0, "late")]


def test_render_without_map_starts_with_the_cues() -> None:
    assert render_webvtt([Cue(0.0, 1.0, "x")]) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nx\n"


@pytest.mark.parametrize(
    ("sidecar", "language"),
    [
        ("dir/talk.vtt", "und"),
        ("dir/talk.SRT", "und"),
        ("dir/talk.en.srt", "en"),
        ("dir/talk.pt-br.vtt", "pt-BR"),
        ("dir/talk.eng.vtt", "eng"),
        ("dir/talk.es-419.vtt", "es-419"),
        ("dir/talk.english.vtt", None),
        ("dir/talk.en.txt", None),
        ("dir/talks.vtt", None),
        ("other/talk.vtt", None),
        ("dir/talk.x.en.vtt", None),
        ("dir/talk.mp4", None),
    ],
)
def test_sidecar_language(sidecar: str, language: str | None) -> None:
    assert sidecar_language(sidecar, "dir/talk.mp4") == language


def test_stems_candidates_and_suffixes() -> None:
    assert video_stems("dir/talk.en.srt") == "dir/talk"
    assert video_stems("dir/talk.vtt") == "dir/talk"
    assert video_stems("dir/my.talk.vtt") == "dir/my.talk"
    assert video_stems("a.b/talk.vtt") == "a.b/talk"
    assert sidecar_candidates("dir/talk.mp4") == "dir/talk."
    assert sidecar_candidates("v1.0/talk") == "v1.0/talk."
    assert is_sidecar_key("a/B.VTT") and is_sidecar_key("a/b.srt")
    assert not is_sidecar_key("a/b.mp4") and not is_sidecar_key("a/vtt")


def test_language_names_and_mp4_codes() -> None:
    assert language_name("en") == "English"
    assert language_name("eng") == "English"
    assert language_name("pt-BR") == "Portuguese (BR)"
    assert language_name("fre") == "French"
    assert language_name("und") == "Unknown"
    assert language_name("tlh") == "tlh"
    assert [mp4_language(t) for t in ("en", "en-GB", "fr", "ger", "tlh", "xx", "und")] == [
        "eng", "eng", "fra", "deu", "tlh", "und", "und",
    ]  # fmt: skip


def test_prepare_sidecar_writes_normalised_webvtt(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + SRT.replace(b"\n", b"\r\n")
    caption = prepare_sidecar(data, "dir/talk.en.srt", "dir/talk.mp4", tmp_path)
    assert (caption.language, caption.name, caption.origin) == ("en", "English", "dir/talk.en.srt")
    assert caption.path.parent == tmp_path
    assert caption.path.read_text(encoding="utf-8").startswith("WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello\n")


def test_prepare_sidecar_refuses_with_the_reason_alone_and_writes_nothing(tmp_path: Path) -> None:
    # The caller names the file ("caption talk.vtt refused: ..."): the reason must not name it again.
    with pytest.raises(CaptionError, match=r"^(?!.*talk\.vtt).*no cue"):
        prepare_sidecar(b"WEBVTT\n", "dir/talk.vtt", "dir/talk.mp4", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_menu_names_from_uploads_are_made_safe() -> None:
    assert menu_name('Director\'s "cut"\n\x00commentary') == "Director's cut commentary"
    assert menu_name("x" * 100) == "x" * 64
    assert menu_name("\t\n") == ""


def test_embed_captions_args() -> None:
    captions = (
        Caption("en", "English", Path("/w/a.vtt"), "k"),
        Caption("pt-BR", "Portuguese (BR)", Path("/w/b.vtt"), "k2"),
    )
    args = embed_captions_args("ffmpeg", Path("/w/in.mp4"), captions, Path("/w/out.mp4"), existing_tracks=1)
    assert args == [
        "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
        "-protocol_whitelist", "file", "-f", "mp4", "-i", "file:/w/in.mp4",
        "-protocol_whitelist", "file", "-f", "webvtt", "-i", "file:/w/a.vtt",
        "-protocol_whitelist", "file", "-f", "webvtt", "-i", "file:/w/b.vtt",
        "-map", "0:v", "-map", "0:a?", "-map", "0:s?", "-map", "1:0", "-map", "2:0",
        "-c", "copy", "-c:s", "mov_text",
        "-metadata:s:s:1", "language=eng", "-metadata:s:s:1", "title=English",
        "-metadata:s:s:2", "language=por", "-metadata:s:s:2", "title=Portuguese (BR)",
        "-movflags", "+faststart", "-f", "mp4", "file:/w/out.mp4",
    ]  # fmt: skip


def test_mp4_without_captions_runs_nothing_more(tmp_path: Path) -> None:
    from fractions import Fraction

    from videoconverter.renditions import Limits, default_rendition
    from videoconverter.transcode.probe import MediaInfo, TextTrack
    from videoconverter.transcode.produce import with_captions
    from videoconverter.transcode.products import Conversion
    from videoconverter.transcode.runner import RunResult

    runs: list[list[str]] = []

    def run(args: list[str], _duration: float | None) -> RunResult:
        runs.append(args)
        raise AssertionError("no FFmpeg run expected")

    info = MediaInfo("mov,mp4", 2.0, 320, 240, 0, Fraction(1), 25.0, "h264", True, 48000, 2)
    job = Conversion("ffmpeg", tmp_path / "in.mp4", info, tmp_path, Limits(), run, "v1")
    mp4 = tmp_path / "output.mp4"
    assert with_captions(job, default_rendition(120), mp4) == (mp4, "")
    with_tracks = dataclasses.replace(job, info=dataclasses.replace(info, text_tracks=(TextTrack(0, "srt", "eng"),)))
    off = dataclasses.replace(default_rendition(120), captions=False)
    assert with_captions(with_tracks, off, mp4) == (mp4, "")
    assert runs == []
