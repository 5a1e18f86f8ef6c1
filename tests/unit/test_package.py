"""The streaming package: fMP4 box parsing on real FFmpeg segments, I-frame playlists, the master playlist with
and without audio and captions, the DASH manifest, package.json's round trip and captions added afterwards."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from videoconverter.errors import TranscodeError
from videoconverter.transcode import cmaf
from videoconverter.transcode.captions import Caption
from videoconverter.transcode.dash import manifest, timeline_runs
from videoconverter.transcode.package import (
    AudioRendition,
    IFrame,
    Package,
    Rung,
    Segment,
    Subtitle,
    Track,
    read_package,
    to_json,
)
from videoconverter.transcode.packaging import add_captions, track_label
from videoconverter.transcode.playlists import (
    iframe_bitrate,
    iframe_playlist,
    master_playlist,
    subtitle_playlist,
    timestamped_vtt,
)
from videoconverter.transcode.tracks import iframes

DATA = Path(__file__).parent / "data" / "cmaf"  # FFmpeg 7's output: 64x36, 10 fps, keyframes every second


def test_a_real_segment_is_one_fragment_starting_with_its_keyframe() -> None:
    # FFmpeg's HLS muxer (-hls_segment_type fmp4, -hls_time 1): styp, sidx, then one moof + mdat
    segment = (DATA / "seg_00000.m4s").read_bytes()
    assert [b.kind for b in cmaf.boxes(segment)] == [b"styp", b"sidx", b"moof", b"mdat"]
    (fragment,) = cmaf.fragments(segment)
    assert cmaf.timescale((DATA / "init.mp4").read_bytes()) == 10240
    assert (fragment.offset, fragment.decode_time, fragment.duration) == (76, 0, 10240)  # one second
    assert fragment.starts_with_sync_sample
    mdat = next(b for b in cmaf.boxes(segment) if b.kind == b"mdat")
    assert mdat.body < fragment.first_sample_end < mdat.end  # inside the mdat, past its header


def test_a_file_of_several_fragments_is_read_fragment_by_fragment() -> None:
    # -movflags frag_keyframe -frag_duration 0.5 s: a fragment every half second, a keyframe every other one
    data = (DATA / "fragmented.mp4").read_bytes()
    found = cmaf.fragments(data)
    assert [f.decode_time for f in found] == [0, 5120, 10240, 15360]
    assert [f.starts_with_sync_sample for f in found] == [True, False, True, False]
    assert all(f.duration == 5120 for f in found)
    moofs = [b.offset for b in cmaf.boxes(data) if b.kind == b"moof"]
    assert [f.offset for f in found] == moofs


def test_the_key_sample_is_where_the_bytes_say() -> None:
    # an H.264 IDR in MP4 is length-prefixed NAL units; x264 writes its SEI first, then the IDR slice (type 5)
    segment = (DATA / "seg_00000.m4s").read_bytes()
    (fragment,) = cmaf.fragments(segment)
    mdat = next(b for b in cmaf.boxes(segment) if b.kind == b"mdat")
    at, types = mdat.body, []
    while at < fragment.first_sample_end:
        length = int.from_bytes(segment[at : at + 4], "big")
        types.append(segment[at + 4] & 0x1F)
        at += 4 + length
    assert at == fragment.first_sample_end and 5 in types


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x10moov", b"\x00\x00\x00\x08styp"])
def test_broken_or_fragmentless_data_is_an_error(data: bytes) -> None:
    with pytest.raises(TranscodeError):
        cmaf.fragments(data)


def test_iframe_entries_cover_moof_to_the_end_of_the_key_sample(tmp_path: Path) -> None:
    (tmp_path / "seg_00000.m4s").write_bytes((DATA / "seg_00000.m4s").read_bytes())
    segment = Segment("seg_00000.m4s", 1.0, 0, 10240, 3584)
    track = Track("360p", "init.mp4", 10240, "avc1.42c00a", 1, 1, (segment,))
    (entry,) = iframes(tmp_path, track)
    (fragment,) = cmaf.fragments((DATA / "seg_00000.m4s").read_bytes())
    assert entry == IFrame("seg_00000.m4s", 76, fragment.first_sample_end - 76, 1.0)


def test_iframe_entries_of_a_segment_of_several_fragments(tmp_path: Path) -> None:
    (tmp_path / "seg_00000.m4s").write_bytes((DATA / "fragmented.mp4").read_bytes())
    track = Track("360p", "init.mp4", 10240, "avc1", 1, 1, (Segment("seg_00000.m4s", 2.0, 0, 20480, 7475),))
    entries = iframes(tmp_path, track)
    assert [(e.offset, e.duration_seconds) for e in entries] == [(769, 1.0), (4385, 1.0)]  # the keyframes only


IFRAMES = (IFrame("seg_00000.m4s", 76, 5000, 2.0), IFrame("seg_00001.m4s", 76, 3000, 1.5))


def test_iframe_playlist_is_byte_ranges_into_the_segments() -> None:
    text = iframe_playlist("init.mp4", IFRAMES)
    playlist = m3u8.loads(text)
    assert playlist.is_i_frames_only and playlist.is_endlist and playlist.playlist_type == "vod"
    assert playlist.segment_map[0].uri == "init.mp4"
    assert [(s.uri, s.byterange, s.duration) for s in playlist.segments] == [
        ("seg_00000.m4s", "5000@76", 2.0), ("seg_00001.m4s", "3000@76", 1.5)
    ]  # fmt: skip
    assert iframe_bitrate(IFRAMES) == 20_000  # 5000 bytes over 2 s: the largest


def track(directory: str, peak: int, average: int, codecs: str = "avc1.64001e", timescale: int = 15360) -> Track:
    segments = (
        Segment("seg_00000.m4s", 2.0, 0, 2 * timescale, 50_000),
        Segment("seg_00001.m4s", 2.0, 2 * timescale, 2 * timescale, 40_000),
        Segment("seg_00002.m4s", 1.0, 4 * timescale, timescale, 20_000),
    )
    return Track(directory, "init.mp4", timescale, codecs, peak, average, segments)


def package(audio: int = 1, subtitles: int = 0, dash: bool = True) -> Package:
    rungs = tuple(
        Rung(name, w, h, Fraction(30000, 1001), track(name, peak, average), IFRAMES, iframe_bitrate(IFRAMES))
        for name, w, h, peak, average in [
            ("720p", 1280, 720, 2_600_000, 2_000_000),
            ("360p", 640, 360, 700_000, 500_000),
        ]
    )
    languages = ["eng", "fra", "und"]
    renditions = tuple(
        AudioRendition(f"a{i}-{languages[i]}", languages[i], f"Track {i}", 2,
                       track(f"audio/a{i}-{languages[i]}", 130_000 + i * 10_000, 128_000 + i, "mp4a.40.2", 48000))
        for i in range(audio)
    )  # fmt: skip
    subs = tuple(Subtitle(f"s{i}-en", "en", f"English {i}", "talk.en.srt") for i in range(subtitles))
    return Package("v1", 5.0, dash, rungs, renditions, subs)


def test_master_with_separate_audio_lists_the_group_on_every_variant() -> None:
    text = master_playlist(package(audio=2))
    playlist = m3u8.loads(text)
    audio = [m for m in playlist.media if m.type == "AUDIO"]
    assert [(m.group_id, m.language, m.name, m.default, m.autoselect, m.channels, m.uri) for m in audio] == [
        ("aac", "eng", "Track 0", "YES", "YES", "2", "v1/audio/a0-eng/index.m3u8"),
        ("aac", "fra", "Track 1", "NO", "YES", "2", "v1/audio/a1-fra/index.m3u8"),
    ]
    variants = playlist.playlists
    assert [v.uri for v in variants] == ["v1/360p/index.m3u8", "v1/720p/index.m3u8"]  # lowest first
    low = variants[0].stream_info
    assert (low.bandwidth, low.average_bandwidth) == (700_000 + 140_000, 500_000 + 128_001)  # + the largest audio
    assert low.codecs == "avc1.64001e,mp4a.40.2" and low.audio == "aac" and low.subtitles is None
    assert low.resolution == (640, 360) and low.frame_rate == pytest.approx(29.97)
    assert all(v.stream_info.audio == "aac" for v in variants)
    assert "SUBTITLES" not in text
    iframe_streams = playlist.iframe_playlists
    assert [p.uri for p in iframe_streams] == ["v1/360p/iframes.m3u8", "v1/720p/iframes.m3u8"]
    assert iframe_streams[0].iframe_stream_info.bandwidth == 20_000
    assert iframe_streams[0].iframe_stream_info.codecs == "avc1.64001e"


def test_master_without_audio_has_no_group_and_video_codecs_only() -> None:
    text = master_playlist(package(audio=0))
    playlist = m3u8.loads(text)
    assert not playlist.media and "AUDIO=" not in text
    assert [v.stream_info.codecs for v in playlist.playlists] == ["avc1.64001e"] * 2
    assert playlist.playlists[0].stream_info.bandwidth == 700_000


def test_master_with_captions_has_a_subtitles_group() -> None:
    playlist = m3u8.loads(master_playlist(package(audio=1, subtitles=2)))
    subs = [m for m in playlist.media if m.type == "SUBTITLES"]
    assert [(m.group_id, m.language, m.name, m.default, m.autoselect, m.uri) for m in subs] == [
        ("subs", "en", "English 0", "NO", "YES", "v1/subs/s0-en/index.m3u8"),
        ("subs", "en", "English 1", "NO", "YES", "v1/subs/s1-en/index.m3u8"),
    ]
    assert all(v.stream_info.subtitles == "subs" for v in playlist.playlists)


def test_the_subtitle_playlist_is_one_segment_as_long_as_the_video() -> None:
    playlist = m3u8.loads(subtitle_playlist(12.48))
    assert [(s.uri, s.duration) for s in playlist.segments] == [("captions.vtt", 12.48)]
    assert playlist.target_duration == 13 and playlist.is_endlist


@pytest.mark.parametrize(
    "source", ["WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n", "\ufeffWEBVTT\r\n\r\n00:01.000 --> 00:02.000\r\nhi"]
)
def test_vtt_gets_its_timestamp_map_after_the_header_line(source: str) -> None:
    text = timestamped_vtt(source, 0)
    assert text.splitlines()[:3] == ["WEBVTT", "X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000", ""]
    assert text.endswith("hi\n") and "\r" not in text
    assert timestamped_vtt(text, 900).count("X-TIMESTAMP-MAP") == 1  # replaced, never doubled


def test_mpd_has_video_audio_and_text_adaptation_sets() -> None:
    mpd = MPEGDASHParser.parse(manifest(package(audio=2, subtitles=1)))
    assert mpd.type == "static" and "urn:mpeg:dash:profile:isoff-live:2011" in mpd.profiles
    assert mpd.media_presentation_duration == "PT5.000S" and mpd.min_buffer_time == "PT2.000S"
    (period,) = mpd.periods
    video, eng, fra, text = period.adaptation_sets
    assert (video.mime_type, video.segment_alignment) == ("video/mp4", True)
    assert [(r.id, r.width, r.height, r.frame_rate, r.bandwidth, r.codecs) for r in video.representations] == [
        ("360p", 640, 360, "30000/1001", 700_000, "avc1.64001e"),
        ("720p", 1280, 720, "30000/1001", 2_600_000, "avc1.64001e"),
    ]
    low = video.representations[0]
    assert low.base_urls[0].base_url_value == "v1/360p/"
    template = low.segment_templates[0]
    assert (template.timescale, template.initialization, template.media, template.start_number) == (
        15360, "init.mp4", "seg_$Number%05d$.m4s", 0
    )  # fmt: skip
    assert [(s.t, s.d, s.r) for s in template.segment_timelines[0].Ss] == [(0, 30720, 1), (None, 15360, None)]
    assert (eng.lang, eng.mime_type, eng.roles[0].value) == ("eng", "audio/mp4", "main")
    assert fra.roles[0].value == "alternate" and fra.representations[0].id == "a1-fra"
    assert eng.audio_channel_configurations[0].value == "2"
    assert eng.representations[0].segment_templates[0].timescale == 48000
    assert (text.mime_type, text.lang) == ("text/vtt", "en")
    assert text.representations[0].base_urls[0].base_url_value == "v1/subs/s0-en/captions.vtt"


def test_timeline_repeats_equal_durations_and_marks_gaps() -> None:
    gap = dataclasses.replace(
        track("360p", 1, 1),
        segments=(Segment("a", 2, 100, 10, 1), Segment("b", 2, 110, 10, 1), Segment("c", 2, 125, 10, 1)),
    )
    assert timeline_runs(gap) == [(100, 10, 1), (125, 10, 0)]


def test_package_json_round_trips() -> None:
    original = package(audio=2, subtitles=1)
    text = to_json(original)
    assert json.loads(text)["schema"] == 1
    assert read_package(text) == original


@pytest.mark.parametrize("text", ["{", '{"schema": 2}', '{"schema": 1, "version": "v"}', "[]"])
def test_an_unreadable_package_json_is_an_error(text: str) -> None:
    with pytest.raises(TranscodeError):
        read_package(text)


def test_add_captions_writes_only_text_files_the_master_last(tmp_path: Path) -> None:
    vtt = tmp_path / "in.vtt"
    vtt.write_text("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nBonjour\n", encoding="utf-8")
    work = tmp_path / "work"
    produced = add_captions(package(subtitles=1), [Caption("fr", "Français", vtt, "talk.fr.srt")], work)
    names = [f.name for f in produced.files]
    assert names == [
        "v1/subs/s1-fr/captions.vtt", "v1/subs/s1-fr/index.m3u8", "v1/package.json", "manifest.mpd", "master.m3u8"
    ]  # fmt: skip
    assert all(f.path == work / f.name for f in produced.files)
    captions = (work / "v1/subs/s1-fr/captions.vtt").read_text(encoding="utf-8")
    assert captions.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n") and "Bonjour" in captions
    again = read_package((work / "v1/package.json").read_text(encoding="utf-8"))
    assert [(s.name, s.language, s.title) for s in again.subtitles] == [
        ("s0-en", "en", "English 0"), ("s1-fr", "fr", "Français")
    ]  # fmt: skip
    master = m3u8.loads((work / "master.m3u8").read_text(encoding="utf-8"))
    assert [m.uri for m in master.media if m.type == "SUBTITLES"][-1] == "v1/subs/s1-fr/index.m3u8"
    mpd = MPEGDASHParser.parse((work / "manifest.mpd").read_text(encoding="utf-8"))
    assert [a.lang for a in mpd.periods[0].adaptation_sets if a.mime_type == "text/vtt"] == ["en", "fr"]


def test_caption_names_stay_unique_in_their_group(tmp_path: Path) -> None:
    vtt = tmp_path / "in.vtt"
    vtt.write_text("WEBVTT\n", encoding="utf-8")
    same = [Caption("en", "English 0", vtt, "a.vtt"), Caption("en", "English 0", vtt, "b.vtt")]
    produced = add_captions(package(subtitles=1), same, tmp_path / "work")
    master = m3u8.loads(produced.marker.path.read_text(encoding="utf-8"))
    assert [m.name for m in master.media if m.type == "SUBTITLES"] == ["English 0", "English 0 2", "English 0 3"]


def test_add_captions_without_dash_writes_no_mpd(tmp_path: Path) -> None:
    vtt = tmp_path / "in.vtt"
    vtt.write_text("WEBVTT\n", encoding="utf-8")
    produced = add_captions(package(dash=False), [Caption("und", "", vtt, "talk.vtt")], tmp_path / "work")
    assert [f.name for f in produced.files][-2:] == ["v1/package.json", "master.m3u8"]
    assert 'NAME="und"' in produced.marker.path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("language", "label"), [("eng", "eng"), ("pt-BR", "pt-br"), ("", "und"), ("../x", "x")])
def test_track_labels_are_safe_directory_names(language: str, label: str) -> None:
    assert track_label(language) == label
