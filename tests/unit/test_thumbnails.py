"""The thumbnails rendition's pure parts: argument lists, the luma-log parser, the poster time, the sprite layout
and its WebVTT index (no FFmpeg run)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_command import media_info as command_media_info
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode.command import input_args
from videoconverter.transcode.poster import (
    BLACK_LUMA_MAX,
    FADE_IN_SKIP_SECONDS,
    LumaSample,
    choose_poster_time,
    escape_filter_value,
    extract_args,
    parse_luma_log,
    preview_args,
    scan_args,
    scan_end_seconds,
)
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.sprites import build_vtt, cue_bounds_ms, sprite_layout, vtt_timestamp
from videoconverter.transcode.thumbnails import (
    MAX_THUMBNAILS,
    ThumbnailPlan,
    build_index,
    plan_thumbnails,
    thumbnails_args,
)

FFMPEG = "/opt/ffmpeg"
SOURCE = Path("/jobs/1/source")
WORK = Path("/jobs/1/thumbnails")
LIMITS = Limits()
THUMBS = dataclasses.replace(default_rendition(720, kind="thumbnails"), thumbnail_interval_seconds=10.0)


def media_info(**changes: Any) -> MediaInfo:
    """A one-minute 1080p source unless ``changes`` say otherwise."""
    return command_media_info(**{"duration_seconds": 60.0, **changes})


def after(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


# --- argument lists -------------------------------------------------------------------------------------------


def test_every_run_starts_with_the_hardened_input() -> None:
    info = media_info()
    hardened = input_args(FFMPEG, SOURCE, info, LIMITS)
    plan = plan_thumbnails(THUMBS, info)
    runs = [
        scan_args(FFMPEG, SOURCE, info, LIMITS, WORK / "scan.txt"),
        thumbnails_args(FFMPEG, SOURCE, info, LIMITS, plan, sprite_layout(plan.count, 320, 180), WORK, WORK),
    ]
    for args in runs:
        assert args[: len(hardened)] == hardened
    poster = extract_args(FFMPEG, SOURCE, info, LIMITS, 1.5, WORK / "poster.jpg")
    seek = poster.index("-ss")
    assert poster[:seek] + poster[seek + 2 : len(hardened) + 2] == hardened


def test_scan_measures_the_start_at_low_resolution_into_the_workdir() -> None:
    args = scan_args(FFMPEG, SOURCE, media_info(), LIMITS, WORK / "scan.txt")
    graph = after(args, "-vf")
    assert graph.startswith("fps=4,scale=160:-2,format=yuv420p,signalstats,metadata=print")
    assert "key=lavfi.signalstats.YAVG" in graph
    assert graph.endswith(r"file=file\\:/jobs/1/thumbnails/scan.txt")
    assert after(args, "-t") == "10"
    assert after(args, "-map") == "0:v:0"
    assert args[-3:] == ["-f", "null", "-"]


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("file:/tmp/a", r"file\\:/tmp/a"),
        ("/tmp/a,b", r"/tmp/a\,b"),
        ("/tmp/it's", "/tmp/it\\\\\\'s"),
        ("/tmp/[x];y", r"/tmp/\[x\]\;y"),
        ("/tmp/back\\slash", "/tmp/back\\\\\\\\slash"),
    ],
)
def test_filter_values_are_escaped_for_both_parsers(value: str, escaped: str) -> None:
    assert escape_filter_value(value) == escaped


def test_poster_seeks_on_the_input_and_writes_one_full_quality_jpeg() -> None:
    args = extract_args(FFMPEG, SOURCE, media_info(), LIMITS, 2.25, WORK / "poster.jpg")
    assert args.index("-ss") < args.index("-i")
    assert after(args, "-ss") == "2.250"
    assert after(args, "-vf") == "scale=1920:1080:flags=bicubic,setsar=1,format=yuvj420p"
    assert after(args, "-frames:v") == "1"
    assert after(args, "-q:v") == "2"
    assert args[-1] == "file:/jobs/1/thumbnails/poster.jpg"


def test_the_dashboards_poster_reads_the_output_with_the_hardened_input() -> None:
    """The dashboard's poster of a stored output goes through the same input options as every conversion."""
    head, jpeg = WORK / "head.mp4", WORK / "poster.jpg"
    args = preview_args(FFMPEG, head, media_info(), Limits(max_pixels=4_000_000), jpeg, 640)
    at_input = args.index("-i")
    assert args[0] == FFMPEG and "-nostdin" in args[:at_input]
    assert after(args, "-protocol_whitelist") == "file" and args.index("-protocol_whitelist") < at_input
    assert after(args, "-f") == "mov", "the probed demuxer is forced on the input"
    assert after(args, "-max_pixels") == "4000000" and args.index("-max_pixels") < at_input
    assert args.count("-i") == 1 and args[at_input + 1] == f"file:{head}"
    # What the dashboard showed before: the first frame, at most 640 wide, a smaller JPEG than the poster's.
    assert after(args, "-frames:v") == "1" and after(args, "-q:v") == "4"
    assert after(args, "-vf").startswith("scale='min(640,iw)':-2")
    assert args[-3:] == ["-f", "image2", f"file:{jpeg}"]


def test_the_scan_ends_with_its_last_frame() -> None:
    assert scan_end_seconds(()) is None
    assert scan_end_seconds((LumaSample(0.0, 30.0), LumaSample(4.5, 30.0))) == 4.75


@pytest.mark.parametrize(
    ("changes", "size"),
    [
        ({"rotation_degrees": 90}, "1080:1920"),  # a phone held upright: autorotated, portrait
        ({"width": 1440, "sample_aspect_ratio": Fraction(4, 3)}, "1920:1080"),  # anamorphic: square pixels
    ],
)
def test_poster_has_the_displayed_size(changes: dict[str, object], size: str) -> None:
    args = extract_args(FFMPEG, SOURCE, media_info(**changes), LIMITS, 0.0, WORK / "poster.jpg")
    assert after(args, "-vf").startswith(f"scale={size}:")
    assert "-noautorotate" not in args


def test_hdr_sources_are_tone_mapped_for_jpeg() -> None:
    info = media_info(color_transfer="smpte2084")
    assert "tonemap=" in after(extract_args(FFMPEG, SOURCE, info, LIMITS, 0.0, WORK / "p.jpg"), "-vf")
    plan = plan_thumbnails(THUMBS, info)
    assert "tonemap=" in after(thumbnails_args(FFMPEG, SOURCE, info, LIMITS, plan, None, WORK, WORK), "-filter_complex")
    assert "tonemap=" not in after(extract_args(FFMPEG, SOURCE, media_info(), LIMITS, 0.0, WORK / "p.jpg"), "-vf")


def test_one_decode_writes_thumbnails_and_sheets() -> None:
    info = media_info(duration_seconds=1234.0)
    plan = plan_thumbnails(THUMBS, info)
    layout = sprite_layout(plan.count, plan.width, plan.height)
    args = thumbnails_args(FFMPEG, SOURCE, info, LIMITS, plan, layout, WORK / "t", WORK / "s")
    assert after(args, "-filter_complex") == (
        "[0:v:0]fps=fps=1/10:eof_action=pass,trim=end_frame=124,scale=320:180:flags=bicubic,setsar=1,format=yuvj420p,"
        "split=2[thumbs][tiles];[tiles]tile=10x10[sheets]"
    )
    tail = args[args.index("-filter_complex") + 2 :]
    jpeg = ["-q:v", "3", "-start_number", "1", "-f", "image2"]
    assert tail == [
        "-progress", "pipe:1",
        "-map", "[thumbs]", "-frames:v", "124", *jpeg, "file:/jobs/1/thumbnails/t/%05d.jpg",
        "-map", "[sheets]", "-frames:v", "2", *jpeg, "file:/jobs/1/thumbnails/s/%03d.jpg",
    ]  # fmt: skip


def test_without_sprite_there_is_one_output() -> None:
    info = media_info()
    args = thumbnails_args(FFMPEG, SOURCE, info, LIMITS, plan_thumbnails(THUMBS, info), None, WORK, WORK)
    assert "split" not in after(args, "-filter_complex")
    assert args.count("-map") == 1
    assert after(args, "-filter_complex").endswith("format=yuvj420p[thumbs]")


def test_a_percent_sign_in_the_workdir_is_not_a_pattern() -> None:
    info = media_info()
    args = thumbnails_args(FFMPEG, SOURCE, info, LIMITS, plan_thumbnails(THUMBS, info), None, Path("/j/100%"), WORK)
    assert args[-1] == "file:/j/100%%/%05d.jpg"


# --- the plan -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "interval", "count"),
    [(60.0, 10.0, 6), (61.0, 10.0, 7), (4.0, 1.0, 4), (0.2, 10.0, 1), (59.999, 10.0, 6)],
)
def test_one_thumbnail_an_interval_from_zero(duration: float, interval: float, count: int) -> None:
    rendition = dataclasses.replace(THUMBS, thumbnail_interval_seconds=interval)
    plan = plan_thumbnails(rendition, media_info(duration_seconds=duration))
    assert (plan.count, plan.interval_seconds, plan.note) == (count, interval, "")


def test_thumbnails_keep_the_display_aspect_and_are_never_upscaled() -> None:
    portrait = plan_thumbnails(THUMBS, media_info(rotation_degrees=270))
    assert (portrait.width, portrait.height) == (320, 569)
    small = plan_thumbnails(THUMBS, media_info(width=160, height=90))
    assert (small.width, small.height) == (160, 90)


def test_a_long_video_gets_a_wider_interval() -> None:
    plan = plan_thumbnails(THUMBS, media_info(duration_seconds=4 * 3600.0))
    assert plan.interval_seconds == 15.0
    assert plan.count == 960 <= MAX_THUMBNAILS
    assert "15 s instead of 10 s" in plan.note


def test_an_unknown_duration_is_capped() -> None:
    plan = plan_thumbnails(THUMBS, media_info(duration_seconds=None))
    assert plan.count == MAX_THUMBNAILS
    assert "unknown" in plan.note


# --- the luma log and the poster time -------------------------------------------------------------------------

LOG = """frame:0    pts:0       pts_time:0
lavfi.signalstats.YAVG=16
frame:1    pts:1       pts_time:0.25
lavfi.signalstats.YAVG=16.5
frame:2    pts:2       pts_time:0.5
frame:3    pts:3       pts_time:nan
lavfi.signalstats.YAVG=80
garbage
frame:4    pts:4       pts_time:1
lavfi.signalstats.YAVG=120.805
"""


def test_the_luma_log_is_parsed_and_broken_records_skipped() -> None:
    assert parse_luma_log(LOG) == (LumaSample(0.0, 16.0), LumaSample(0.25, 16.5), LumaSample(1.0, 120.805))
    assert parse_luma_log("") == ()


def samples(*lumas: float) -> tuple[LumaSample, ...]:
    return tuple(LumaSample(i * 0.25, luma) for i, luma in enumerate(lumas))


def test_no_black_start_takes_the_first_frame() -> None:
    assert choose_poster_time(samples(90, 95, 100), 60.0) == choose_poster_time(samples(90), 60.0)
    choice = choose_poster_time(samples(90, 95, 100), 60.0)
    assert (choice.time_seconds, choice.note) == (0.0, "")


def test_black_then_picture_skips_the_fade_in() -> None:
    choice = choose_poster_time(samples(16, 16, 16, 16, BLACK_LUMA_MAX + 1, 100), 60.0)
    assert choice.time_seconds == 1.0 + FADE_IN_SKIP_SECONDS
    assert choice.note == ""


def test_full_range_black_is_black_too() -> None:
    assert choose_poster_time(samples(0, 2, 110), 60.0).time_seconds == 0.5 + FADE_IN_SKIP_SECONDS


def test_the_poster_time_stays_before_the_end() -> None:
    assert choose_poster_time(samples(16, 16, 16, 16, 100), 1.2).time_seconds == pytest.approx(0.95)


@pytest.mark.parametrize(("duration", "time"), [(60.0, 30.0), (None, 0.0)])
def test_all_black_falls_back_to_the_middle(duration: float | None, time: float) -> None:
    for scanned in (samples(16, 16, BLACK_LUMA_MAX), ()):
        choice = choose_poster_time(scanned, duration)
        assert choice.time_seconds == time
        assert "black" in choice.note


# --- sprites and their WebVTT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "grid", "sheets"),
    [(1, (1, 1), 1), (4, (4, 1), 1), (23, (10, 3), 1), (100, (10, 10), 1), (101, (10, 10), 2), (250, (10, 10), 3)],
)
def test_sheet_layout(count: int, grid: tuple[int, int], sheets: int) -> None:
    layout = sprite_layout(count, 160, 90)
    assert (layout.columns, layout.rows) == grid
    assert layout.sheet_count == sheets
    assert (layout.sheet_width, layout.sheet_height) == (grid[0] * 160, grid[1] * 90)


def test_tile_positions_fill_rows_then_sheets() -> None:
    layout = sprite_layout(250, 160, 90)
    assert (layout.position(0).x, layout.position(0).y) == (0, 0)
    assert (layout.position(11).sheet, layout.position(11).x, layout.position(11).y) == (0, 160, 90)
    assert (layout.position(99).x, layout.position(99).y) == (1440, 810)
    assert (layout.position(100).sheet, layout.position(100).x, layout.position(100).y) == (1, 0, 0)
    assert layout.position(249).sheet == 2
    with pytest.raises(IndexError):
        layout.position(250)


def test_vtt_timestamps_always_show_hours() -> None:
    assert vtt_timestamp(0) == "00:00:00.000"
    assert vtt_timestamp(3_723_045) == "01:02:03.045"


def test_cues_are_back_to_back_and_cover_the_duration() -> None:
    assert cue_bounds_ms(3, 10.0, 25.5) == [(0, 10000), (10000, 20000), (20000, 25500)]
    assert cue_bounds_ms(2, 10.0, None) == [(0, 10000), (10000, 20000)]
    # A video whose last thumbnail came out early: the last cue still reaches the end.
    assert cue_bounds_ms(2, 1.0, 4.0)[-1] == (1000, 4000)


def test_vtt_points_into_several_sheets() -> None:
    layout = sprite_layout(101, 160, 90)
    vtt = build_vtt(layout, ["sprites/001.jpg", "sprites/002.jpg"], 2.0, 201.0)
    blocks = vtt.strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = blocks[1:]
    assert len(cues) == 101
    assert cues[0] == "00:00:00.000 --> 00:00:02.000\nsprites/001.jpg#xywh=0,0,160,90"
    assert cues[12] == "00:00:24.000 --> 00:00:26.000\nsprites/001.jpg#xywh=320,90,160,90"
    assert cues[100] == "00:03:20.000 --> 00:03:21.000\nsprites/002.jpg#xywh=0,0,160,90"


def test_vtt_needs_one_url_a_sheet() -> None:
    with pytest.raises(ValueError, match="sheet"):
        build_vtt(sprite_layout(101, 16, 9), ["sprites/001.jpg"], 1.0, None)


# --- index.json -----------------------------------------------------------------------------------------------


def test_index_lists_versioned_names_and_times() -> None:
    plan = ThumbnailPlan(interval_seconds=2.5, count=3, width=320, height=180, note="")
    index = build_index("v1", media_info(duration_seconds=7.0), 1.5, plan, 3, sprite_layout(3, 320, 180))
    assert index["schema"] == 1
    assert index["poster"] == {"name": "v1/poster.jpg", "time_seconds": 1.5, "width": 1920, "height": 1080}
    assert [(t["name"], t["time_seconds"]) for t in index["thumbnails"]["items"]] == [
        ("v1/thumbnails/00001.jpg", 0.0),
        ("v1/thumbnails/00002.jpg", 2.5),
        ("v1/thumbnails/00003.jpg", 5.0),
    ]
    assert index["sprites"]["sheets"] == ["v1/sprites/001.jpg"]
    assert (index["sprites"]["columns"], index["sprites"]["rows"]) == (3, 1)
    assert build_index("v1", media_info(), 0.0, plan, 3, None)["sprites"] is None
