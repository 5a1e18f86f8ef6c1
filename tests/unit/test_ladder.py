"""HLS ladder planning: video-only rungs and audio renditions, FFmpeg argument lists (one decode or one process
per rung), media playlists, codec flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.unit.test_command import media_info, value_of, values_of
from videoconverter.errors import TranscodeError
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode.codecs import encoder_args
from videoconverter.transcode.command import audio_args
from videoconverter.transcode.ladder import audio_command, one_decode_command, plan_audio, plan_ladder, rung_command
from videoconverter.transcode.playlists import avc_codec, bitrates, parse_media_playlist
from videoconverter.transcode.probe import AudioTrack

HLS = default_rendition(1080, kind="hls")
WORK = Path("/tmp/vc-job")
MEDIA_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.000000,
seg_00000.m4s
#EXTINF:4.000000,
seg_00001.m4s
#EXTINF:1.500000,
seg_00002.m4s
#EXT-X-ENDLIST
"""


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1920, 1080, [(640, 360), (854, 480), (1280, 720), (1920, 1080)]),
        (1280, 720, [(640, 360), (854, 480), (1280, 720)]),  # 1080p skipped: never upscaled
        (1080, 1920, [(360, 640), (480, 854), (720, 1280), (1080, 1920)]),  # portrait: the short side
        (320, 240, [(320, 240)]),  # smaller than every rung: one rung at its own size
        (854, 480, [(640, 360), (854, 480)]),
    ],
)
def test_plan_skips_rungs_above_the_source(width: int, height: int, expected: list[tuple[int, int]]) -> None:
    rungs, note = plan_ladder(media_info(width=width, height=height), HLS, WORK)
    assert [(r.size.width, r.size.height) for r in rungs] == expected
    assert all(r.directory == WORK / "hls" / r.rendition.name for r in rungs)
    assert bool(note) == (len(expected) < 4)


def test_each_rung_has_its_own_bitrate_cap() -> None:
    rungs, _ = plan_ladder(media_info(), HLS, WORK)
    assert [r.rendition.max_video_bitrate_kbps for r in rungs] == [490, 960, 1870, 4320]


def test_one_decode_is_the_default() -> None:
    assert HLS.ladder_mode == "one-decode"


TWO_TRACKS = (AudioTrack(0, "eng", 6, "Main"), AudioTrack(1, "fra", 2))


def test_one_decode_reads_the_source_once_and_writes_video_only_rungs_and_each_audio_track() -> None:
    info = media_info(audio_tracks=TWO_TRACKS)
    rungs, _ = plan_ladder(info, HLS, WORK)
    audio = plan_audio(info, HLS, WORK)
    args = one_decode_command("ffmpeg", WORK / "source", info, rungs, HLS, Limits(), 0, audio)
    assert args.count("-i") == 1 and "-nostdin" in args and value_of(args, "-protocol_whitelist") == "file"
    graph = value_of(args, "-filter_complex")
    assert graph.startswith("[0:v]fps=30,split=4[s0][s1][s2][s3];")  # one frame-rate conversion for all
    assert values_of(args, "-map") == ["[v0]", "[v1]", "[v2]", "[v3]", "0:a:0", "0:a:1"]
    playlists = [a for a in args if a.endswith("index.m3u8")]
    assert playlists == [f"file:{WORK}/hls/{side}p/index.m3u8" for side in (360, 480, 720, 1080)] + [
        f"file:{WORK}/hls/audio/a0-eng/index.m3u8", f"file:{WORK}/hls/audio/a1-fra/index.m3u8"
    ]  # fmt: skip
    assert values_of(args, "-hls_time") == ["4"] * 6 and values_of(args, "-hls_segment_type") == ["fmp4"] * 6
    assert values_of(args, "-g") == ["60"] * 4 and values_of(args, "-sc_threshold") == ["0"] * 4
    assert values_of(args, "-maxrate") == ["490k", "960k", "1870k", "4320k"]
    assert values_of(args, "-c:a") == ["aac", "aac"] and values_of(args, "-ac") == ["2", "2"]
    first_audio = args.index("0:a:0")
    assert "-c:a" not in args[:first_audio], "no rung carries audio"


def test_audio_renditions_are_the_first_tracks_up_to_the_limit() -> None:
    three = (*TWO_TRACKS, AudioTrack(2, "", 2))
    info = media_info(audio_tracks=three)
    assert [a.name for a in plan_audio(info, HLS, WORK)] == ["a0-eng", "a1-fra", "a2-und"]
    limited = dataclasses.replace(HLS, max_audio_tracks=2)
    assert [a.directory for a in plan_audio(info, limited, WORK)] == [
        WORK / "hls/audio/a0-eng",
        WORK / "hls/audio/a1-fra",
    ]
    assert plan_audio(media_info(has_audio=False), HLS, WORK) == []
    untracked = plan_audio(media_info(), HLS, WORK)  # a probe without the track list: the first, untagged
    assert [(a.track.index, a.name) for a in untracked] == [(0, "a0-und")]


def test_per_rung_mode_encodes_the_audio_in_a_process_of_its_own() -> None:
    info = media_info(audio_tracks=TWO_TRACKS)
    audio = plan_audio(info, HLS, WORK)
    args = audio_command("ffmpeg", WORK / "source", info, audio, HLS, Limits(), threads=1)
    assert values_of(args, "-map") == ["0:a:0", "0:a:1"] and "-filter_complex" not in args and "-vf" not in args
    assert "-c:v" not in args and values_of(args, "-threads") == ["1", "1"]
    assert args[-1] == f"file:{WORK}/hls/audio/a1-fra/index.m3u8"


def test_an_audio_filter_runs_before_the_resampler_and_mp4_is_unchanged() -> None:
    info = media_info()
    assert value_of(audio_args(info, HLS), "-af") == "aresample=async=1"
    assert value_of(audio_args(info, HLS, "volume=2.5dB"), "-af") == "volume=2.5dB,aresample=async=1"


def test_a_rung_process_decodes_on_its_own_with_the_same_keyframes() -> None:
    info = media_info(frame_rate=25.0, has_audio=False)
    rungs, _ = plan_ladder(info, HLS, WORK)
    args = rung_command("ffmpeg", WORK / "source", info, rungs[0], HLS, Limits(), threads=2)
    assert values_of(args, "-map") == ["0:v:0"] and value_of(args, "-threads") == "2"
    assert value_of(args, "-vf").startswith("fps=25,scale=640:360")
    assert value_of(args, "-g") == "50" and value_of(args, "-force_key_frames") == "expr:gte(t,n_forced*2)"
    assert args[-1] == f"file:{WORK}/hls/360p/index.m3u8"


def test_media_playlist_is_read() -> None:
    playlist = parse_media_playlist(MEDIA_PLAYLIST)
    assert playlist.init_uri == "init.mp4"
    assert [(s.uri, s.duration_seconds) for s in playlist.segments] == [
        ("seg_00000.m4s", 4.0), ("seg_00001.m4s", 4.0), ("seg_00002.m4s", 1.5)
    ]  # fmt: skip
    sizes = {"seg_00000.m4s": 1_000_000, "seg_00001.m4s": 500_000, "seg_00002.m4s": 300_000}
    assert bitrates(playlist, sizes, init_bytes=1000) == (2_000_000, round((1_800_000 + 1000) * 8 / 9.5))


@pytest.mark.parametrize("text", ["#EXTM3U\n#EXT-X-ENDLIST\n", "#EXTM3U\nseg.m4s\n"])
def test_a_playlist_without_proper_segments_is_an_error(text: str) -> None:
    with pytest.raises(TranscodeError):
        parse_media_playlist(text)


def test_avc_codec_name_comes_from_the_init_section() -> None:
    init = b"\x00\x00\x00\x20ftyp....moov....\x00\x00\x00\x30avcC\x01\x64\x00\x1f\xff"
    assert avc_codec(init) == "avc1.64001f"
    with pytest.raises(TranscodeError):
        avc_codec(b"no configuration here")


@pytest.mark.parametrize(
    ("codec", "encoder", "expected"),
    [
        ("h264", "libx264", ["-profile:v", "high", "-x264-params", "vbv-init=0.5", "-sc_threshold", "0"]),
        ("hevc", "libx265", ["-tag:v", "hvc1", "-sc_threshold", "0"]),
        ("av1", "libsvtav1", ["-svtav1-params", "scd=0", "-maxrate", "1870k"]),
        ("vp9", "libvpx-vp9", ["-b:v", "1870k", "-row-mt", "1", "-cpu-used", "4"]),
    ],
)
def test_every_codec_is_quality_targeted_capped_and_keyframed(codec: str, encoder: str, expected: list[str]) -> None:
    rendition = dataclasses.replace(default_rendition(720, per_title=False), codec=codec)
    args = encoder_args(rendition, gop_frames=48, keyframe_seconds=2.0)
    assert value_of(args, "-c:v") == encoder and value_of(args, "-pix_fmt") == "yuv420p"
    assert value_of(args, "-crf") == str(rendition.effective_crf)
    assert (value_of(args, "-g"), value_of(args, "-keyint_min")) == ("48", "48")
    assert value_of(args, "-force_key_frames") == "expr:gte(t,n_forced*2)"
    for flag, value in zip(expected[::2], expected[1::2], strict=True):
        assert value_of(args, flag) == value
    assert value_of(encoder_args(rendition, 48, 2.0, ten_bit=True), "-pix_fmt") == "yuv420p10le"


def test_a_package_takes_the_sidecar_captions_unless_captions_are_off(tmp_path: Path) -> None:
    from videoconverter.transcode.captions import Caption
    from videoconverter.transcode.ladder import conversion_captions
    from videoconverter.transcode.products import Conversion
    from videoconverter.transcode.runner import RunResult

    def run(_args: list[str], _duration: float | None) -> RunResult:
        raise AssertionError("no FFmpeg for captions that are already WebVTT")

    sidecar = Caption("en", "English", tmp_path / "talk.vtt", "talk.en.srt")
    job = Conversion("ffmpeg", tmp_path / "s", media_info(), tmp_path, Limits(), run, "v1", captions=(sidecar,))
    assert conversion_captions(HLS, job) == ((sidecar,), "")
    assert conversion_captions(dataclasses.replace(HLS, captions=False), job) == ((), "")
