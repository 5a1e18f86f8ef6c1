"""The streaming package with real FFmpeg: video-only rungs, separate audio, I-frame playlists, DASH and HLS over
the same CMAF segments, read with the parsers players' tooling uses (``m3u8``, ``mpegdash``)."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import av
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from videoconverter.renditions import Limits, Rendition, default_rendition
from videoconverter.transcode.package import MANIFEST_MPD, MASTER, read_package
from videoconverter.transcode.probe import probe
from videoconverter.transcode.products import Conversion, Produced, Runner
from videoconverter.transcode.runner import run_ffmpeg
from videoconverter.transcode.subtitles_text import Caption

pytestmark = pytest.mark.ffmpeg
PACKAGE = dataclasses.replace(
    default_rendition(360, kind="hls", per_title=False),
    ladder=(180, 360),
    preset="ultrafast",
    segment_seconds=2.0,
    keyframe_interval_seconds=1.0,
)
CUES = "WEBVTT\n\n00:00:01.000 --> 00:00:02.500\nHello\n"


def published(produced: Produced, key_dir: Path) -> Path:
    """Each file copied to its name under ``key_dir``, as the worker writes them under ``KEY/``: what a player
    fetches (the workdir's own layout has no VERSION directory)."""
    for file in produced.files:
        (key_dir / file.name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file.path, key_dir / file.name)
    return key_dir


def package_of(
    source: Path, workdir: Path, rendition: Rendition = PACKAGE, captions: tuple[Caption, ...] = ()
) -> Produced:
    """convert_file's conversion, with sidecar captions as the worker hands them over."""
    from videoconverter.transcode.ladder import produce_ladder
    from videoconverter.transcode.runner import ffmpeg_executable

    workdir.mkdir(parents=True, exist_ok=True)
    limits = Limits()
    info = probe(source, limits)
    run: Runner = lambda args, _duration: run_ffmpeg(args, workdir=workdir, timeout_seconds=120)  # noqa: E731
    job = Conversion(ffmpeg_executable(), source, info, workdir, limits, run, "v1", captions=captions)
    return produce_ladder(rendition, job)


@pytest.fixture(scope="module")
def two_languages(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """5 s of 640x360 with two audio tracks: English (440 Hz) and French (660 Hz)."""
    path = tmp_path_factory.mktemp("two-languages") / "two.mp4"
    subprocess.run(
        [ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=5",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=5", "-f", "lavfi", "-i", "sine=frequency=660:duration=5",
         "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


def read(root: Path, name: str) -> str:
    return (root / name).read_text(encoding="utf-8")


def media(root: Path, uri: str) -> tuple[m3u8.M3U8, Path]:
    """A media playlist named in the master (relative to the key) and its directory."""
    path = root / uri
    return m3u8.loads(path.read_text(encoding="utf-8")), path.parent


def measured(playlist: m3u8.M3U8, directory: Path) -> tuple[float, float]:
    """Peak (largest segment) and average (every byte, init included) bits per second, from the files."""
    sizes = [(directory / s.uri).stat().st_size for s in playlist.segments]
    durations = [s.duration for s in playlist.segments]
    init = (directory / playlist.segment_map[0].uri).stat().st_size
    peak = max(size * 8 / duration for size, duration in zip(sizes, durations, strict=True))
    return peak, (sum(sizes) + init) * 8 / sum(durations)


def playlist_files(playlist: m3u8.M3U8, directory: Path) -> set[Path]:
    return {directory / playlist.segment_map[0].uri, *(directory / s.uri for s in playlist.segments)}


def mpd_files(root: Path) -> dict[str, set[Path]]:
    """Every file the DASH manifest addresses, by Representation id: its init and numbered segments."""
    mpd = MPEGDASHParser.parse(read(root, MANIFEST_MPD))
    files: dict[str, set[Path]] = {}
    for adaptation in mpd.periods[0].adaptation_sets:
        for representation in adaptation.representations:
            base = root / representation.base_urls[0].base_url_value
            if not representation.segment_templates:  # text: the one file
                files[representation.id] = {base}
                continue
            template = representation.segment_templates[0]
            count = sum(1 + (s.r or 0) for s in template.segment_timelines[0].Ss)
            names = [template.media.replace("$Number%05d$", f"{n:05d}") for n in range(template.start_number, count)]
            files[representation.id] = {base / template.initialization, *(base / n for n in names)}
    return files


def test_the_package_has_separate_audio_iframes_and_both_manifests_over_one_set_of_segments(
    sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = sample_clip(width=640, height=360, seconds=5, frame_rate=30)
    produced = package_of(source, tmp_path / "work")
    names = [f.name for f in produced.files]
    assert names[-2:] == [MANIFEST_MPD, MASTER] and "v1/package.json" in names and len(set(names)) == len(names)
    root = published(produced, tmp_path / "key")
    master = m3u8.loads(read(root, MASTER))
    (audio,) = [m for m in master.media if m.type == "AUDIO"]
    assert (audio.group_id, audio.default, audio.autoselect, audio.channels) == ("aac", "YES", "YES", "2")
    audio_playlist, audio_dir = media(root, audio.uri)
    audio_peak, audio_average = measured(audio_playlist, audio_dir)
    hls_files: dict[str, set[Path]] = {}
    assert [v.stream_info.resolution for v in master.playlists] == [(320, 180), (640, 360)]
    for variant in master.playlists:
        info = variant.stream_info
        assert info.audio == "aac" and info.codecs.endswith(",mp4a.40.2")
        playlist, directory = media(root, variant.uri)
        with av.open(str(directory / playlist.segment_map[0].uri)) as init:
            assert not init.streams.audio, "the rungs are video only"
        peak, average = measured(playlist, directory)
        assert info.bandwidth == pytest.approx(peak + audio_peak, rel=0.1)  # Apple 1.26, 1.27
        assert info.average_bandwidth == pytest.approx(average + audio_average, rel=0.1)
        hls_files[directory.name] = playlist_files(playlist, directory)
    hls_files[audio_dir.name] = playlist_files(audio_playlist, audio_dir)
    assert mpd_files(root) == hls_files, "DASH addresses the very files HLS names"
    assert all(path.is_file() for paths in hls_files.values() for path in paths)


def test_iframe_playlists_are_byte_ranges_from_a_moof_through_a_keyframe(
    sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = sample_clip(width=640, height=360, seconds=5, frame_rate=30)
    root = published(package_of(source, tmp_path / "work"), tmp_path / "key")
    master = m3u8.loads(read(root, MASTER))
    assert len(master.iframe_playlists) == 2
    for stream in master.iframe_playlists:
        playlist, directory = media(root, stream.uri)
        assert playlist.is_i_frames_only and playlist.segments
        init = (directory / playlist.segment_map[0].uri).read_bytes()
        rates = []
        for segment in playlist.segments:
            length, offset = (int(v) for v in segment.byterange.split("@"))
            data = (directory / segment.uri).read_bytes()[offset : offset + length]
            assert data[4:8] == b"moof" and len(data) == length
            with av.open(io.BytesIO(init + data), format="mp4") as container:
                packet = next(p for p in container.demux(video=0) if p.size)
                assert packet.is_keyframe
                # FFmpeg's demuxer finds the key sample ending exactly where the range ends
                assert packet.pos is not None and packet.pos + packet.size == len(init) + length
                video = container.streams.video[0]
                frames = [*video.codec_context.decode(packet), *video.codec_context.decode(None)]
                assert len(frames) == 1, "the whole key sample is inside the range, and it decodes alone"
            rates.append(length * 8 / segment.duration)
        assert stream.iframe_stream_info.bandwidth == pytest.approx(max(rates), rel=0.01)
        assert stream.iframe_stream_info.resolution is not None


def test_two_audio_tracks_become_two_renditions_with_their_languages(two_languages: Path, tmp_path: Path) -> None:
    root = published(package_of(two_languages, tmp_path / "work"), tmp_path / "key")
    master = m3u8.loads(read(root, MASTER))
    audio = [m for m in master.media if m.type == "AUDIO"]
    assert [(m.language, m.default, m.uri) for m in audio] == [
        ("eng", "YES", "v1/audio/a0-eng/index.m3u8"), ("fra", "NO", "v1/audio/a1-fra/index.m3u8")
    ]  # fmt: skip
    for rendition in audio:
        playlist, directory = media(root, rendition.uri)
        assert all((directory / s.uri).is_file() for s in playlist.segments)
    mpd = MPEGDASHParser.parse(read(root, MANIFEST_MPD))
    langs = [(a.lang, a.roles[0].value) for a in mpd.periods[0].adaptation_sets if a.mime_type == "audio/mp4"]
    assert langs == [("eng", "main"), ("fra", "alternate")]
    one = package_of(two_languages, tmp_path / "one", dataclasses.replace(PACKAGE, max_audio_tracks=1))
    assert [m.language for m in m3u8.loads(one.marker.path.read_text(encoding="utf-8")).media] == ["eng"]


def test_a_source_without_audio_has_no_audio_group(sample_clip: Callable[..., Path], tmp_path: Path) -> None:
    source = sample_clip(width=640, height=360, seconds=4, frame_rate=30, audio=False)
    root = published(package_of(source, tmp_path / "work"), tmp_path / "key")
    master = m3u8.loads(read(root, MASTER))
    assert not master.media and all(v.stream_info.audio is None for v in master.playlists)
    assert all("mp4a" not in v.stream_info.codecs for v in master.playlists)
    mpd = MPEGDASHParser.parse(read(root, MANIFEST_MPD))
    assert [a.content_type for a in mpd.periods[0].adaptation_sets] == ["video"]


def test_a_caption_appears_in_both_manifests(sample_clip: Callable[..., Path], tmp_path: Path) -> None:
    source = sample_clip(width=640, height=360, seconds=4, frame_rate=30)
    vtt = tmp_path / "talk.en.vtt"
    vtt.write_text(CUES, encoding="utf-8")
    produced = package_of(source, tmp_path / "work", captions=(Caption("en", "English", vtt, "talk.en.srt"),))
    root = published(produced, tmp_path / "key")
    master = m3u8.loads(read(root, MASTER))
    (subs,) = [m for m in master.media if m.type == "SUBTITLES"]
    assert (subs.language, subs.name, subs.group_id) == ("en", "English", "subs")
    assert all(v.stream_info.subtitles == "subs" for v in master.playlists)
    playlist, directory = media(root, subs.uri)
    (segment,) = playlist.segments
    assert segment.duration == pytest.approx(4.0, abs=0.1)
    text = (directory / segment.uri).read_text(encoding="utf-8")
    assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n") and "Hello" in text
    mpd = MPEGDASHParser.parse(read(root, MANIFEST_MPD))
    (text_set,) = [a for a in mpd.periods[0].adaptation_sets if a.mime_type == "text/vtt"]
    assert text_set.lang == "en"
    assert root / text_set.representations[0].base_urls[0].base_url_value == directory / segment.uri
    described = read_package(read(root, "v1/package.json"))
    assert [(s.name, s.origin) for s in described.subtitles] == [("s0-en", "talk.en.srt")]


def test_without_dash_no_mpd_is_written(sample_clip: Callable[..., Path], tmp_path: Path) -> None:
    source = sample_clip(width=320, height=180, seconds=2, frame_rate=30)
    produced = package_of(source, tmp_path, dataclasses.replace(PACKAGE, ladder=(180,), dash=False))
    assert MANIFEST_MPD not in [f.name for f in produced.files] and not (tmp_path / "hls" / MANIFEST_MPD).exists()
    assert produced.marker.name == MASTER
    root = published(produced, tmp_path / "key")
    assert not read_package(read(root, "v1/package.json")).dash
    assert PurePosixPath(produced.files[0].name).parts[:2] == ("v1", "180p")


def test_each_audio_rendition_is_normalised_to_the_target_loudness(ffmpeg_exe: str, tmp_path: Path) -> None:
    """A quiet and a loud track of one upload each reach -16 LUFS (within 1 LU) as their own audio rendition,
    under the true-peak ceiling, measured by ebur128 over the rendition's init section and segments."""
    from videoconverter.transcode.loudness import ebur128_args, parse_ebur128

    source = tmp_path / "levels.mp4"
    subprocess.run(
        [ffmpeg_exe, "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=5",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=5,volume=0.03",
         "-f", "lavfi", "-i", "anoisesrc=color=pink:duration=5:amplitude=0.9",
         "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", str(source)],
        check=True, timeout=60,
    )  # fmt: skip
    produced = package_of(source, tmp_path / "work", dataclasses.replace(PACKAGE, loudness_lufs=-16.0))
    root = published(produced, tmp_path / "key")
    before = []
    for name in ("a0-eng", "a1-fra"):
        directory = root / "v1" / "audio" / name
        playlist = m3u8.loads(read(directory, "index.m3u8"))
        whole = tmp_path / f"{name}.mp4"
        whole.write_bytes(b"".join((directory / n).read_bytes() for n in ["init.mp4", *playlist.files]))
        log = subprocess.run(ebur128_args(ffmpeg_exe, whole), capture_output=True, text=True, check=True).stderr
        lufs, peak = parse_ebur128(log)
        assert abs(lufs - -16.0) <= 1.0, (name, lufs)
        assert peak <= -1.0 + 0.1, (name, peak)
        before.append(f"{name}: loudness ")
    assert all(part in produced.note for part in before), produced.note  # each track's before and after
