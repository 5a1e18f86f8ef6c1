"""The per-title search's FFmpeg argument lists (pure functions) and when it does not run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.unit.test_command import media_info
from tests.unit.test_preamble import FFMPEG, SOURCE
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode import search
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.pertitle import SampleWindow
from videoconverter.transcode.search import SampleEncode, SearchTarget

EXTRACTED, LIMITS, INFO = Path("/jobs/7/pertitle/windows.mov"), Limits(), media_info()
R720 = default_rendition(720)
R1080 = default_rendition(1080)
TARGETS = [
    SearchTarget("720p", R720, OutputSize(1280, 720, "")),
    SearchTarget("1080p", R1080, OutputSize(1920, 1080, "")),
]
ENCODES = [
    SampleEncode(TARGETS[0], 21, Path("/jobs/7/pertitle/r0-0.mp4"), "vmaf-r0-0.json"),
    SampleEncode(TARGETS[1], 24, Path("/jobs/7/pertitle/r0-1.mp4"), "vmaf-r0-1.json"),
]


def value(args: list[str], flag: str, nth: int = 0) -> str:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag][nth]


def test_the_windows_are_cut_made_constant_rate_joined_and_kept_losslessly() -> None:
    groups = [[SampleWindow(1.0, 0.5)], [SampleWindow(6.25, 0.5)]]
    args = search.extract_command(FFMPEG, SOURCE, INFO, LIMITS, groups, R720, EXTRACTED)
    inputs = [i for i, arg in enumerate(args) if arg == "-i"]
    assert [args[i - 4 : i] for i in inputs] == [["-ss", "1.000", "-t", "0.500"], ["-ss", "6.250", "-t", "0.500"]]
    assert value(args, "-filter_complex") == "[0:v]fps=30[g0];[1:v]fps=30[g1];[g0][g1]concat=n=2:v=1:a=0[joined]"
    assert (value(args, "-c:v"), value(args, "-f", 2)) == ("utvideo", "mov")
    assert args[-1] == f"file:{EXTRACTED}"
    hdr = search.extract_command(
        FFMPEG, SOURCE, media_info(color_transfer="smpte2084"), LIMITS, groups, R720, EXTRACTED
    )
    assert (value(hdr, "-c:v"), value(hdr, "-qp")) == ("libx264", "0")  # 10 bits kept


def test_windows_read_in_one_pass_are_picked_from_one_input() -> None:
    groups = [[SampleWindow(1.0, 0.5), SampleWindow(3.0, 0.5)]]
    args = search.extract_command(FFMPEG, SOURCE, INFO, LIMITS, groups, R720, EXTRACTED)
    assert args.count("-i") == 1 and (value(args, "-ss"), value(args, "-t")) == ("1.000", "2.500")
    assert value(args, "-filter_complex") == (
        "[0:v]fps=30,select='between(t,0.000,0.499)+between(t,2.000,2.499)',setpts=N/FRAME_RATE/TB[g0];"
        "[g0]concat=n=1:v=1:a=0[joined]"
    )


def test_each_encode_of_a_round_gets_its_own_crf_size_and_cap() -> None:
    args = search.sample_encode_command(FFMPEG, EXTRACTED, INFO, LIMITS, ENCODES, threads=2)
    graph = value(args, "-filter_complex")
    assert graph.startswith("[0:v]split=2[w0][w1];[w0]scale=1280:720:")
    assert "[w1]scale=1920:1080:" in graph
    assert [value(args, "-crf", n) for n in (0, 1)] == ["21", "24"]
    assert [value(args, "-maxrate", n) for n in (0, 1)] == [
        f"{R720.max_video_bitrate_kbps}k",
        f"{R1080.max_video_bitrate_kbps}k",
    ]
    assert args.count("-an") == 2 and value(args, "-threads") == "2"
    assert [a for a in args if a.startswith("file:/jobs/7/pertitle/r0")] == [f"file:{e.path}" for e in ENCODES]


@pytest.mark.parametrize(("subsample", "tonemap"), [(1, False), (4, True)])
def test_each_encode_is_scored_at_its_own_size(subsample: int, tonemap: bool) -> None:
    args = search.sample_vmaf_command(FFMPEG, EXTRACTED, INFO, LIMITS, ENCODES, [INFO, INFO], 2, subsample, tonemap)
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "-i"] == [
        f"file:{ENCODES[0].path}", f"file:{ENCODES[1].path}", f"file:{EXTRACTED}",
    ]  # fmt: skip
    graph = value(args, "-filter_complex")
    assert graph.startswith("[2:v]setpts=PTS-STARTPTS,split=2[w0][w1];[w0]scale=1280:720:flags=bicubic")
    assert "log_path=vmaf-r0-0.json" in graph and "log_path=vmaf-r0-1.json" in graph
    assert ("n_subsample=4" in graph) is (subsample == 4)
    assert ("tonemap" in graph) is tonemap
    assert args.count("null") == 2


def test_the_search_is_skipped_for_kept_hdr_and_unknown_durations() -> None:
    hevc = dataclasses.replace(R720, codec="hevc", hdr="keep")
    assert "HDR" in search.skip_reason(media_info(color_transfer="smpte2084"), hevc)
    assert search.skip_reason(media_info(color_transfer="smpte2084"), R720) == ""  # tone-mapped: SDR, scored
    assert "duration" in search.skip_reason(media_info(duration_seconds=None), R720)
    assert search.skip_reason(INFO, R720) == ""
