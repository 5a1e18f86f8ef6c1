"""An HLS ladder split into pieces on the embedded backend, with real FFmpeg: each piece is a run of whole
segments of every rung (one decode, every rung's encoder), the audio is encoded once with every track, and the
join segments the pieces without re-encoding into the package a whole encode writes: the same rungs, segments,
frames and keyframes, separate audio with its languages, captions, I-frame playlists and both manifests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from tests.aws import pipeline_on
from videoconverter.config import load_config
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode.ladder import produce_ladder
from videoconverter.transcode.package import MANIFEST_MPD, MASTER
from videoconverter.transcode.probe import probe
from videoconverter.transcode.products import Conversion, Runner
from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg
IN, OUT = "videoconverter-input", "videoconverter-output-ladder"
SRT = "1\n00:00:01,000 --> 00:00:02,000\nInside\n\n2\n00:00:06,000 --> 00:00:07,000\nLater\n"
SIDECAR = b"WEBVTT\n\n00:00:05.000 --> 00:00:06.000\nBonjour\n"
LADDER = (
    '[[renditions]]\nname = "ladder"\nkind = "hls"\nladder = [90, 180]\npreset = "ultrafast"\n'
    "target_vmaf = 0\nmax_audio_tracks = 2\n"
)


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """10 s of 320x180 at 30 fps, two audio tracks (English, French) and an English mov_text track."""
    directory = tmp_path_factory.mktemp("chunked-ladder")
    (directory / "subs.srt").write_text(SRT, encoding="utf-8")
    path = directory / "talk.mp4"
    subprocess.run(
        [ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=10",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-f", "lavfi", "-i", "sine=frequency=660:duration=10",
         "-i", str(directory / "subs.srt"), "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "mov_text",
         "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", "-metadata:s:s:0", "language=eng",
         str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture(params=["sqlite", "aws"])
def split_ladder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """A ladder split into pieces of 4 s (two segments), on the file store + SQLite and on S3 + SQS + DynamoDB
    (moto)."""
    toml = (
        f'data_dir = "{tmp_path / "data"}"\n[chunking]\nmin_source_seconds = 0\nchunk_seconds = 4\n'
        "[queues]\nvisibility_timeout_seconds = 10\nreceive_wait_seconds = 1\nretry_base_delay_seconds = 0\n" + LADDER
    )
    services = pipeline_on(request, tmp_path, toml)
    yield services
    services.close()


def whole_package(source: Path, rendition: Rendition, workdir: Path) -> Path:
    """The ladder converted whole (no sidecar), its files laid out as under KEY/."""
    workdir.mkdir()
    info = probe(source, Limits())
    run: Runner = lambda args, _duration: run_ffmpeg(args, workdir=workdir, timeout_seconds=120)  # noqa: E731
    produced = produce_ladder(rendition, Conversion(ffmpeg_executable(), source, info, workdir, Limits(), run, "v1"))
    root = workdir / "key"
    for file in produced.files:
        (root / file.name).parent.mkdir(parents=True, exist_ok=True)
        (root / file.name).write_bytes(file.path.read_bytes())
    return root


def downloaded(svc: Services, key: str, root: Path) -> Path:
    for listed in svc.store.list(OUT, f"{key}/"):
        (destination := root / listed.key[len(key) + 1 :]).parent.mkdir(parents=True, exist_ok=True)
        svc.store.get_file(OUT, listed.key, destination)
    return root


def rung_media(root: Path, uri: str) -> dict[str, object]:
    """A rung as a player reads it: its segments' durations, and every frame of init + segments decoded."""
    playlist = m3u8.loads((root / uri).read_text(encoding="utf-8"))
    directory = (root / uri).parent
    whole = directory / "whole.mp4"
    whole.write_bytes(b"".join((directory / n).read_bytes() for n in [playlist.segment_map[0].uri]
                               + [s.uri for s in playlist.segments]))  # fmt: skip
    with av.open(str(whole)) as container:
        frames = list(container.decode(video=0))
    return {
        "segments": [round(s.duration, 3) for s in playlist.segments],
        "frames": len(frames),
        "keyframes": [i for i, frame in enumerate(frames) if frame.key_frame],
    }


def test_a_split_ladder_joins_into_the_package_a_whole_encode_writes(
    split_ladder: Services, talk: Path, tmp_path: Path
) -> None:
    svc = split_ladder
    (tmp_path / "talk.fr.vtt").write_bytes(SIDECAR)
    svc.store.put_file(IN, "talk.fr.vtt", tmp_path / "talk.fr.vtt")  # a sidecar before the video
    uploaded = svc.store.put_file(IN, "talk.mp4", talk)
    rendition = svc.config.rendition("ladder")
    Worker(svc, rendition).run(exit_when_idle=True)
    record = svc.jobs.get(JobId("talk.mp4", uploaded.etag, "ladder"))
    assert record is not None and record.state is JobState.DONE, record
    assert (record.pieces_done, record.pieces_planned) == (3, 3)  # two runs of segments and the audio
    logs = [line.message for line in svc.jobs.logs("talk.mp4")]
    assert any("split into 2 video pieces of 120 frames, 2 rungs each, and the audio" in m for m in logs), logs
    assert not list(svc.store.list(OUT, ".chunks/"))  # the work area deleted

    root = downloaded(svc, "talk.mp4", tmp_path / "split")
    whole = whole_package(talk, rendition, tmp_path / "whole")
    master, expected = m3u8.loads((root / MASTER).read_text()), m3u8.loads((whole / MASTER).read_text())
    assert [v.stream_info.resolution for v in master.playlists] == [(160, 90), (320, 180)]
    assert [v.stream_info.resolution for v in master.playlists] == [
        v.stream_info.resolution for v in expected.playlists
    ]
    version = master.playlists[0].uri.split("/")[0]
    for ours, theirs in zip(master.playlists, expected.playlists, strict=True):
        joined = rung_media(root, ours.uri)
        assert joined == rung_media(whole, theirs.uri)  # the same segments, frames and keyframes
        assert joined["segments"] == [4.0, 4.0, 2.0] and joined["keyframes"] == [0, 60, 120, 180, 240]
        assert ours.stream_info.audio == "aac" and ours.stream_info.subtitles == "subs"
        assert ours.stream_info.bandwidth == pytest.approx(theirs.stream_info.bandwidth, rel=0.25)
    audio = [(m.language, m.uri) for m in master.media if m.type == "AUDIO"]
    assert audio == [("eng", f"{version}/audio/a0-eng/index.m3u8"), ("fra", f"{version}/audio/a1-fra/index.m3u8")]
    for _, uri in audio:
        playlist = m3u8.loads((root / uri).read_text())
        assert sum(s.duration for s in playlist.segments) == pytest.approx(10.0, abs=0.1)
    subtitles = sorted(m.language for m in master.media if m.type == "SUBTITLES")
    assert subtitles == ["eng", "fr"]  # the upload's own track and the sidecar
    assert master.iframe_playlists and all((root / p.uri).is_file() for p in master.iframe_playlists)
    mpd = MPEGDASHParser.parse((root / MANIFEST_MPD).read_text())
    kinds = [a.mime_type for a in mpd.periods[0].adaptation_sets]
    assert kinds.count("video/mp4") == 1 and kinds.count("audio/mp4") == 2 and kinds.count("text/vtt") == 2
    marker = svc.store.head(OUT, f"talk.mp4/{MASTER}")
    assert marker is not None and marker.metadata["source-etag"] == uploaded.etag
    assert "sidecar-captions" in marker.metadata  # what a sidecar arriving later is checked against


def test_a_split_ladder_without_audio_and_a_sidecar_that_arrives_while_its_pieces_encode(
    split_ladder: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    svc = split_ladder
    uploaded = svc.store.put_file(IN, "silent.mp4", sample_clip(width=320, height=180, seconds=8, audio=False))
    rendition = svc.config.rendition("ladder")
    assert Worker(svc, rendition).run(max_messages=2) == 2  # the split and the first piece
    (tmp_path / "silent.vtt").write_bytes(SIDECAR)
    svc.store.put_file(IN, "silent.vtt", tmp_path / "silent.vtt")
    Worker(svc, rendition).run(exit_when_idle=True)
    record = svc.jobs.get(JobId("silent.mp4", uploaded.etag, "ladder"))
    assert record is not None and record.state is JobState.DONE and record.pieces_planned == 2, record  # no audio
    root = downloaded(svc, "silent.mp4", tmp_path / "package")
    master = m3u8.loads((root / MASTER).read_text())
    assert [m.type for m in master.media] == ["SUBTITLES"] and master.playlists[0].stream_info.audio is None
    assert [rung_media(root, v.uri)["segments"] for v in master.playlists] == [[4.0, 4.0], [4.0, 4.0]]


def test_a_split_mp4_keeps_every_audio_track_asked_for_and_carries_the_captions(talk: Path, tmp_path: Path) -> None:
    """An MP4 split into pieces gets what a whole encode gives it: both audio tracks with their languages, the
    upload's text track and a sidecar as mov_text."""
    path = tmp_path / "videoconverter.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[chunking]\nmin_source_seconds = 0\nchunk_seconds = 4\n'
        "[queues]\nreceive_wait_seconds = 1\nretry_base_delay_seconds = 0\n"
        '[[renditions]]\nname = "small"\nshort_side = 90\npreset = "ultrafast"\ntarget_vmaf = 0\nmax_audio_tracks = 2\n'
    )
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        (tmp_path / "talk.fr.vtt").write_bytes(SIDECAR)
        svc.store.put_file(IN, "talk.fr.vtt", tmp_path / "talk.fr.vtt")
        uploaded = svc.store.put_file(IN, "talk.mp4", talk)
        Worker(svc, svc.config.rendition("small")).run(exit_when_idle=True)
        record = svc.jobs.get(JobId("talk.mp4", uploaded.etag, "small"))
        assert record is not None and record.state is JobState.DONE and record.pieces_planned == 3, record
        svc.store.get_file("videoconverter-output-small", "talk.mp4", tmp_path / "out.mp4")
        with av.open(str(tmp_path / "out.mp4")) as container:
            assert [s.metadata.get("language") for s in container.streams.audio] == ["eng", "fra"]
            assert sorted(s.metadata.get("language") for s in container.streams.subtitles) == ["eng", "fra"]
            assert container.streams.video[0].frames == 300
    finally:
        svc.close()
