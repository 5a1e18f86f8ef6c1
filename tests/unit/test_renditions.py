"""Rendition settings: kinds, codecs, ladders and thumbnails from TOML, each mistake named."""

from __future__ import annotations

import tomllib

import pytest

from videoconverter.errors import ConfigError
from videoconverter.renditions import DEFAULT_CRF, DEFAULT_LADDER, DEFAULT_PRESET, Rendition, parse_renditions


def parse(text: str) -> tuple[Rendition, ...]:
    return parse_renditions(tomllib.loads(text)["renditions"])


def error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.message


def test_an_mp4_rendition_defaults_to_h264_with_its_crf_and_preset() -> None:
    (r,) = parse("[[renditions]]\nshort_side = 720\n")
    assert (r.kind, r.codec, r.effective_crf, r.effective_preset) == ("mp4", "h264", 23, "medium")


@pytest.mark.parametrize("codec", ["h264", "hevc", "av1", "vp9"])
def test_each_codec_has_its_own_defaults(codec: str) -> None:
    (r,) = parse(f'[[renditions]]\nshort_side = 480\ncodec = "{codec}"\n')
    assert (r.effective_crf, r.effective_preset) == (DEFAULT_CRF[codec], DEFAULT_PRESET[codec])


def test_x264_preset_still_works_for_h264() -> None:
    (r,) = parse('[[renditions]]\nshort_side = 480\nx264_preset = "fast"\ncrf = 20\n')
    assert (r.effective_preset, r.effective_crf) == ("fast", 20)


def test_an_hls_rendition_needs_no_short_side_and_is_named_after_its_kind() -> None:
    (r,) = parse('[[renditions]]\nkind = "hls"\n')
    assert (r.name, r.queue, r.output_bucket) == ("hls", "videoconverter_hls", "videoconverter-output-hls")
    assert (r.ladder, r.short_side, r.segment_seconds, r.ladder_mode) == (DEFAULT_LADDER, 1080, 4.0, "one-decode")


def test_a_ladder_is_sorted_and_deduplicated() -> None:
    (r,) = parse('[[renditions]]\nkind = "hls"\nladder = [720, 360, 720]\n')
    assert (r.ladder, r.short_side) == ((360, 720), 720)


def test_a_thumbnails_rendition() -> None:
    (r,) = parse('[[renditions]]\nkind = "thumbnails"\nthumbnail_interval_seconds = 5\nsprite = false\n')
    assert (r.name, r.thumbnail_interval_seconds, r.sprite, r.thumbnail_width) == ("thumbnails", 5.0, False, 320)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('kind = "dash"\nshort_side = 720', "renditions[0].kind: expected one of mp4, hls, thumbnails"),
        ('codec = "mpeg2"\nshort_side = 720', "renditions[0].codec: expected one of h264, hevc, av1, vp9"),
        ('codec = "av1"\npreset = "slow"\nshort_side = 720', "renditions[0].preset: 'slow' is not a av1 preset"),
        ('codec = "vp9"\ncrf = 70\nshort_side = 720', "renditions[0].crf: expected a whole number from 0 to 63"),
        ('codec = "hevc"\nx264_preset = "fast"\nshort_side = 720', "renditions[0].x264_preset: only for codec h264"),
        ('hdr = "keep"\nshort_side = 720', "renditions[0].hdr: H.264 outputs are 8-bit SDR"),
        ('hdr = "bright"\nshort_side = 720', "renditions[0].hdr: expected tonemap or keep"),
        ('kind = "hls"\ncodec = "vp9"', "renditions[0].codec: HLS ladders are H.264"),
        ('kind = "hls"\nladder = []', "renditions[0].ladder: expected a non-empty list"),
        ('kind = "hls"\nladder = [361]', "renditions[0].ladder: rungs are even short sides"),
        ('kind = "hls"\nsegment_seconds = 10', "renditions[0].segment_seconds: expected a number at least 2"),
        ('kind = "hls"\nsegment_seconds = 3', "renditions[0].segment_seconds: must be a multiple of"),
        ('kind = "hls"\nladder_mode = "fast"', "renditions[0].ladder_mode: expected one of one-decode, per-rung"),
        ('kind = "thumbnails"\nthumbnail_width = 4', "renditions[0].thumbnail_width: expected a whole number from 16"),
        ('kind = "thumbnails"\nsprite = "yes"', "renditions[0].sprite: expected bool"),
        ("segment_second = 4\nshort_side = 720", "renditions[0].segment_second: unknown setting"),
        ("crf = 2.5\nshort_side = 720", "renditions[0].crf: expected a whole number"),
    ],
)
def test_mistakes_are_named(toml: str, message: str) -> None:
    assert error(f"[[renditions]]\n{toml}\n").startswith(message)


def test_a_rung_takes_the_ladders_codec_settings_and_its_own_cap() -> None:
    (r,) = parse('[[renditions]]\nkind = "hls"\npreset = "fast"\ncrf = 21\n')
    rung = r.rung(720)
    assert (rung.kind, rung.name, rung.short_side, rung.max_video_bitrate_kbps) == ("mp4", "720p", 720, 1870)
    assert (rung.effective_preset, rung.effective_crf) == ("fast", 21)
