"""Rendition settings: kinds, codecs, ladders and thumbnails from TOML, each mistake named."""

from __future__ import annotations

import tomllib

import pytest

from videoconverter.errors import ConfigError
from videoconverter.renditions import (
    DEFAULT_CRF,
    DEFAULT_LADDER,
    DEFAULT_PRESET,
    DEFAULT_TARGET_VMAF,
    Rendition,
    default_rendition,
    default_target_vmaf,
    parse_renditions,
)


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
        ("crf = 21\ntarget_vmaf = 95\nshort_side = 720", "renditions[0].crf: a fixed crf and a target_vmaf exclude"),
        ("target_vmaf = 101\nshort_side = 720", "renditions[0].target_vmaf: expected a number at least 0 and at most"),
        ('kind = "thumbnails"\ntarget_vmaf = 95', "renditions[0].target_vmaf: only for kind mp4 or hls"),
        ('verify_vmaf = "yes"\nshort_side = 720', "renditions[0].verify_vmaf: expected bool"),
    ],
)
def test_mistakes_are_named(toml: str, message: str) -> None:
    assert error(f"[[renditions]]\n{toml}\n").startswith(message)


def test_a_rung_takes_the_ladders_codec_settings_and_its_own_cap() -> None:
    (r,) = parse('[[renditions]]\nkind = "hls"\npreset = "fast"\ncrf = 21\n')
    rung = r.rung(720)
    assert (rung.kind, rung.name, rung.short_side, rung.max_video_bitrate_kbps) == ("mp4", "720p", 720, 1870)
    assert (rung.effective_preset, rung.effective_crf) == ("fast", 21)


def test_a_rendition_aims_at_the_default_vmaf_target_unless_it_sets_a_crf() -> None:
    default, fixed, off, own = parse(
        "[[renditions]]\nshort_side = 720\n"
        "[[renditions]]\nname = 'fixed'\nshort_side = 720\ncrf = 21\n"
        "[[renditions]]\nname = 'off'\nshort_side = 1080\ntarget_vmaf = 0\n"
        "[[renditions]]\nname = 'own'\nshort_side = 1080\ntarget_vmaf = 93.5\nverify_vmaf = true\n"
    )
    assert (default.target_vmaf, default.max_video_bitrate_kbps) == (DEFAULT_TARGET_VMAF[720], 2400)
    assert (fixed.target_vmaf, fixed.effective_crf, fixed.max_video_bitrate_kbps) == (0.0, 21, 1870)
    assert (off.target_vmaf, off.effective_crf, off.max_video_bitrate_kbps) == (0.0, 23, 4320)
    assert (own.target_vmaf, own.verify_vmaf, own.max_video_bitrate_kbps) == (93.5, True, 5400)


def test_default_targets_by_size() -> None:
    assert [default_target_vmaf(side) for side in (144, 720, 1078, 1080, 2160)] == [
        DEFAULT_TARGET_VMAF[0], DEFAULT_TARGET_VMAF[720], DEFAULT_TARGET_VMAF[720], DEFAULT_TARGET_VMAF[1080],
        DEFAULT_TARGET_VMAF[1080],
    ]  # fmt: skip
    assert default_rendition(720, kind="thumbnails").target_vmaf == 0.0


def test_a_ladders_rungs_share_its_target_and_keep_the_ladders_caps() -> None:
    (r,) = parse('[[renditions]]\nkind = "hls"\n')
    assert r.target_vmaf == DEFAULT_TARGET_VMAF[1080]
    assert [(r.rung(side).target_vmaf, r.rung(side).max_video_bitrate_kbps) for side in (720, 1080)] == [
        (DEFAULT_TARGET_VMAF[1080], 1870), (DEFAULT_TARGET_VMAF[1080], 4320),
    ]  # fmt: skip
