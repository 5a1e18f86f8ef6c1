"""Captions with the real FFmpeg: text tracks extracted from MP4 (mov_text) and Matroska (SubRip, ASS), and MP4
outputs that carry them (and sidecars) as mov_text tracks with their language, audio and video stream-copied."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from pathlib import Path

import av
import pytest

from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode.captions import embed_captions, embedded_captions, prepare_sidecar
from videoconverter.transcode.probe import TextTrack, probe
from videoconverter.transcode.produce import produce
from videoconverter.transcode.products import Conversion, Runner
from videoconverter.transcode.runner import run_ffmpeg
from videoconverter.transcode.subtitles_text import Caption, Cue, parse_captions

pytestmark = pytest.mark.ffmpeg

TINY = dataclasses.replace(default_rendition(120), x264_preset="ultrafast")
SRT = "1\n00:00:00,200 --> 00:00:00,900\nHello there\n\n2\n00:00:01,000 --> 00:00:01,800\nSecond line\n"
ASS = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, Bold, Italic, Alignment, MarginV
Style: Default,Arial,20,&H00FFFFFF,0,0,2,10

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.50,0:00:01.50,Default,,0,0,0,,Styled words
"""
AV_INPUT = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-f", "lavfi", "-i",
            "sine=frequency=440:duration=2"]  # fmt: skip


def _ffmpeg(ffmpeg: str, *args: str) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args], check=True)


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("caption-texts")
    (directory / "subs.srt").write_text(SRT, encoding="utf-8")
    (directory / "subs.ass").write_text(ASS, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def mp4_with_mov_text(ffmpeg_exe: str, texts: Path) -> Path:
    out = texts / "movtext.mp4"
    _ffmpeg(ffmpeg_exe, *AV_INPUT, "-i", str(texts / "subs.srt"), "-map", "0:v", "-map", "1:a", "-map", "2:s",
            "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "mov_text",
            "-metadata:s:s:0", "language=eng", str(out))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def mkv_with_srt_and_ass(ffmpeg_exe: str, texts: Path) -> Path:
    out = texts / "tracks.mkv"
    _ffmpeg(ffmpeg_exe, *AV_INPUT, "-i", str(texts / "subs.srt"), "-i", str(texts / "subs.ass"),
            "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s", "-c:v", "libx264", "-preset", "ultrafast",
            "-c:a", "aac", "-c:s:0", "srt", "-c:s:1", "ass", "-metadata:s:s:0", "language=fre",
            "-metadata:s:s:1", "language=ger", "-metadata:s:s:1", "title=Styled", str(out))  # fmt: skip
    return out


def _job(source: Path, workdir: Path, ffmpeg: str, captions: tuple[Caption, ...] = ()) -> Conversion:
    workdir.mkdir(exist_ok=True)
    limits = Limits()
    info = probe(source, limits)
    run: Runner = lambda args, _duration: run_ffmpeg(args, workdir=workdir, timeout_seconds=60)  # noqa: E731
    return Conversion(ffmpeg, source, info, workdir, limits, run, "v1", captions=captions)


def _subtitles(mp4: Path) -> list[tuple[str, str]]:
    with av.open(str(mp4)) as container:
        return [(s.codec_context.name, s.metadata.get("language", "")) for s in container.streams.subtitles]


def _packets(path: Path, kind: str) -> list[tuple[int | None, str]]:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [(p.pts, hashlib.sha1(bytes(p)).hexdigest()) for p in container.demux(stream) if p.size]


def test_mov_text_track_is_extracted_and_checked(mp4_with_mov_text: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    job = _job(mp4_with_mov_text, tmp_path, ffmpeg_exe)
    captions, note = embedded_captions(job, TINY)
    assert note == ""
    assert [(c.language, c.name, c.origin) for c in captions] == [("eng", "English", "text track 0")]
    cues = parse_captions(captions[0].path.read_bytes(), "vtt")
    assert cues == [Cue(0.2, 0.9, "Hello there"), Cue(1.0, 1.8, "Second line")]
    assert embedded_captions(job, dataclasses.replace(TINY, captions=False)) == ((), "")


def test_matroska_subrip_and_ass_tracks(mkv_with_srt_and_ass: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    assert {"matroska", "webm"} <= set(Limits().allowed_input_formats)
    job = _job(mkv_with_srt_and_ass, tmp_path, ffmpeg_exe)
    assert [(t.codec, t.language) for t in job.info.text_tracks] == [("srt", "fre"), ("ssa", "ger")]  # PyAV's names
    captions, note = embedded_captions(job, TINY)
    assert note == ""
    assert [(c.language, c.name) for c in captions] == [("fre", "French"), ("ger", "Styled")]
    assert [cue.text for cue in parse_captions(captions[0].path.read_bytes(), "vtt")] == ["Hello there", "Second line"]
    assert parse_captions(captions[1].path.read_bytes(), "vtt") == [Cue(0.5, 1.5, "Styled words")]


def test_a_bad_track_goes_into_the_note(mp4_with_mov_text: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    job = _job(mp4_with_mov_text, tmp_path, ffmpeg_exe)
    # A bitmap track, and one FFmpeg cannot extract (as a broken track would fail): the real one still comes.
    tracks = (*job.info.text_tracks, TextTrack(1, "hdmv_pgs_subtitle", "eng"), TextTrack(7, "subrip", "deu"))
    job = dataclasses.replace(job, info=dataclasses.replace(job.info, text_tracks=tracks))
    captions, note = embedded_captions(job, TINY)
    assert [c.origin for c in captions] == ["text track 0"]
    assert "text track 1 (hdmv_pgs_subtitle) cannot become text" in note
    assert "text track 7 (subrip) was left out: FFmpeg failed" in note


def test_mp4_output_carries_tracks_and_sidecars(mp4_with_mov_text: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    srt = SRT.replace("Hello there", "Bonjour").encode()
    sidecar = prepare_sidecar(srt, "up/movtext.pt-BR.srt", "up/movtext.mp4", tmp_path)
    produced = produce(TINY, _job(mp4_with_mov_text, tmp_path, ffmpeg_exe, (sidecar,)))
    output = produced.marker.path
    assert _subtitles(output) == [("mov_text", "eng"), ("mov_text", "por")]
    back, _ = embedded_captions(_job(output, tmp_path / "back", ffmpeg_exe), TINY)  # the text made it in
    assert [parse_captions(c.path.read_bytes(), "vtt")[0].text for c in back] == ["Hello there", "Bonjour"]
    uncaptioned = produce(dataclasses.replace(TINY, captions=False), _job(mp4_with_mov_text, tmp_path, ffmpeg_exe))
    assert _subtitles(uncaptioned.marker.path) == []
    with av.open(str(output)) as container:
        assert container.format.name.startswith("mov,mp4")


def test_late_sidecar_remux_copies_audio_video(mp4_with_mov_text: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    sidecar = prepare_sidecar(SRT.encode(), "up/movtext.es.srt", "up/movtext.mp4", tmp_path)
    run = _job(mp4_with_mov_text, tmp_path, ffmpeg_exe).run
    out = embed_captions(run, tmp_path, ffmpeg_exe, mp4_with_mov_text, (sidecar,))
    assert out != mp4_with_mov_text and out.parent == tmp_path
    assert _subtitles(out) == [("mov_text", "eng"), ("mov_text", "spa")]  # the existing track kept
    for kind in ("video", "audio"):
        assert _packets(out, kind) == _packets(mp4_with_mov_text, kind)
    assert embed_captions(run, tmp_path, ffmpeg_exe, mp4_with_mov_text, ()) == mp4_with_mov_text


@pytest.fixture(scope="module")
def mkv_with_a_latin1_track(ffmpeg_exe: str, texts: Path) -> Path:
    """A good SubRip track, then one whose text is Latin-1 (copied in as it is, so FFmpeg cannot decode it)."""
    (texts / "latin1.srt").write_bytes(b"1\n00:00:00,200 --> 00:00:00,900\nca\xe7a\n")
    out = texts / "latin1.mkv"
    _ffmpeg(ffmpeg_exe, *AV_INPUT, "-i", str(texts / "subs.srt"), "-i", str(texts / "latin1.srt"),
            "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s", "-c:v", "libx264", "-preset", "ultrafast",
            "-c:a", "aac", "-c:s", "copy", "-metadata:s:s:0", "language=eng", str(out))  # fmt: skip
    return out


def test_a_malformed_track_does_not_fail_the_job(
    mkv_with_a_latin1_track: Path, tmp_path: Path, ffmpeg_exe: str
) -> None:
    produced = produce(TINY, _job(mkv_with_a_latin1_track, tmp_path, ffmpeg_exe))
    assert _subtitles(produced.marker.path) == [("mov_text", "eng")]
    assert "text track 1 (srt) was left out: FFmpeg failed" in produced.note


def test_webm_webvtt_track(ffmpeg_exe: str, texts: Path, tmp_path: Path) -> None:
    (texts / "subs.vtt").write_text("WEBVTT\n\n00:00.200 --> 00:00.900\nWeb words\n", encoding="utf-8")
    source = texts / "subs.webm"
    _ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-i", str(texts / "subs.vtt"),
            "-map", "0", "-map", "1", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
            "-c:s", "webvtt", str(source))  # fmt: skip
    captions, note = embedded_captions(_job(source, tmp_path, ffmpeg_exe), TINY)
    assert note == ""
    assert [(c.language, c.name) for c in captions] == [("und", "Unknown")]
    assert parse_captions(captions[0].path.read_bytes(), "vtt") == [Cue(0.2, 0.9, "Web words")]
