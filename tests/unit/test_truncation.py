"""A truncated source (data stops before the duration its header promises) fails permanently, or is accepted
with a note; each kind measures how far it read (no FFmpeg run: the runner is a stand-in)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.unit.test_command import media_info
from videoconverter.config import load_config
from videoconverter.errors import ConfigError, PermanentError, TruncatedSourceError
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode.produce import produce
from videoconverter.transcode.products import Conversion
from videoconverter.transcode.runner import RunResult
from videoconverter.transcode.thumbnails import plan_thumbnails, seconds_read
from videoconverter.transcode.truncation import check_read, is_truncated, tolerance_seconds

REFUSE = Limits()
ACCEPT = Limits(accept_truncated_sources=True)
MESSAGE = "the upload is truncated: 4.9 s of 10.0 s could be read"


def test_the_error_is_permanent_and_its_docstring_is_its_message() -> None:
    assert issubclass(TruncatedSourceError, PermanentError)
    assert TruncatedSourceError().message.startswith("The upload is truncated")


@pytest.mark.parametrize(("promised", "tolerance"), [(1.0, 0.5), (10.0, 0.5), (25.0, 0.5), (100.0, 2.0)])
def test_the_tolerance_is_half_a_second_or_two_percent(promised: float, tolerance: float) -> None:
    assert tolerance_seconds(promised) == pytest.approx(tolerance)


@pytest.mark.parametrize(
    ("read", "promised", "resolution", "truncated"),
    [
        (4.93, 10.0, 0.0, True),  # the interrupted transfer of the issue
        (9.6, 10.0, 0.0, False),  # a frame or two short: timestamps, priming
        (9.49, 10.0, 0.0, True),
        (98.1, 100.0, 0.0, False),  # 2 % of a long video
        (97.9, 100.0, 0.0, True),
        (8.0, 10.0, 2.0, False),  # known only to 2 s (a thumbnail every 2 s)
        (7.0, 10.0, 2.0, True),
        (10.4, 10.0, 0.0, False),  # longer than promised is no truncation
        (None, 10.0, 0.0, False),  # a run without progress
        (4.9, None, 0.0, False),  # a source without a duration
        (0.0, 0.0, 0.0, False),
    ],
)
def test_only_a_clear_shortfall_is_truncation(
    read: float | None, promised: float | None, resolution: float, truncated: bool
) -> None:
    assert is_truncated(read, promised, resolution) is truncated


def test_a_truncated_source_fails_permanently_naming_both_lengths() -> None:
    with pytest.raises(TruncatedSourceError) as caught:
        check_read(4.93, 10.0, Limits())
    assert caught.value.message == MESSAGE


def test_the_setting_converts_what_was_there_and_says_so() -> None:
    assert check_read(4.93, 10.0, ACCEPT) == f"{MESSAGE}; converted what was there"
    assert check_read(9.9, 10.0, ACCEPT) == check_read(9.9, 10.0, Limits()) == ""


def test_the_setting_is_read_from_limits(tmp_path: Path) -> None:
    path = tmp_path / "videoconverter.toml"
    path.write_text("[limits]\naccept_truncated_sources = true\n")
    assert load_config(environ={}, path=path).limits.accept_truncated_sources is True
    path.write_text("")
    assert load_config(environ={}, path=path).limits.accept_truncated_sources is False


@pytest.mark.parametrize("value", ['"yes"', "1", "0.5"])
def test_the_setting_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    path = tmp_path / "videoconverter.toml"
    path.write_text(f"[limits]\naccept_truncated_sources = {value}\n")
    with pytest.raises(ConfigError, match=r"limits\.accept_truncated_sources: expected true or false"):
        load_config(environ={}, path=path)


def job(tmp_path: Path, out_time_seconds: float | None, limits: Limits = REFUSE) -> Conversion:
    """A conversion of a 10 s source whose FFmpeg stand-in writes nothing and ends at ``out_time_seconds``."""
    info = media_info(duration_seconds=10.0, width=320, height=180)

    def run(args: list[str], duration_seconds: float | None) -> RunResult:
        return RunResult(0.1, "", out_time_seconds)

    return Conversion("/opt/ffmpeg", tmp_path / "source", info, tmp_path, limits, run, "v1")


def test_an_mp4_that_ends_early_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TruncatedSourceError, match=MESSAGE):
        produce(default_rendition(120, per_title=False), job(tmp_path, 4.93))


def test_an_accepted_mp4_keeps_its_size_note_too(tmp_path: Path) -> None:
    produced = produce(default_rendition(720, per_title=False), job(tmp_path, 4.93, ACCEPT))
    assert produced.note.startswith("source is 320x180, smaller than 720p: kept its size")
    assert produced.note.endswith(f"; {MESSAGE}; converted what was there")
    assert produce(default_rendition(120, per_title=False), job(tmp_path, 9.98)).note == ""
    no_progress = produce(default_rendition(120, per_title=False), job(tmp_path, None))
    assert no_progress.note == "", "no progress: nothing to compare"


@pytest.mark.parametrize("mode", ["one-decode", "per-rung"])
def test_a_ladder_that_ends_early_is_refused_before_its_playlists_are_read(tmp_path: Path, mode: str) -> None:
    fixed = default_rendition(180, kind="hls", per_title=False)
    ladder = dataclasses.replace(fixed, ladder=(120, 180), ladder_mode=mode)
    with pytest.raises(TruncatedSourceError, match=MESSAGE):
        produce(ladder, job(tmp_path, 4.93))


THUMBS = dataclasses.replace(default_rendition(720, kind="thumbnails"), thumbnail_interval_seconds=2.0)


@pytest.mark.parametrize(
    ("video_seconds", "count", "scan_end", "expected"),
    [
        (10.0, 5, 10.0, (None, 10.0, 0.0)),  # every thumbnail, the scan ran its 10 s: nothing missing
        (10.0, 3, 4.75, (4.75, 10.0, 0.25)),  # the scan stopped early: the end of the stream, to a scan frame
        (30.0, 3, 10.0, (4.0, 30.0, 4.0)),  # beyond the scan: where the last thumbnail is, to two intervals
        (30.0, 15, 10.0, (None, 30.0, 0.0)),
        (None, 3, 4.75, (4.75, None, 0.25)),  # no stream duration (Matroska): nothing to compare with
    ],
)
def test_thumbnails_measure_how_far_the_video_was_read(
    video_seconds: float | None, count: int, scan_end: float, expected: tuple[float | None, float | None, float]
) -> None:
    info = media_info(duration_seconds=video_seconds, video_duration_seconds=video_seconds)
    assert seconds_read(info, plan_thumbnails(THUMBS, info), count, scan_end) == expected


def test_one_thumbnail_fewer_is_no_truncation() -> None:
    """A video whose last frame comes a little early misses the last thumbnail: that is not truncation."""
    info = media_info(duration_seconds=10.0, video_duration_seconds=10.0)
    plan = plan_thumbnails(THUMBS, info)
    read, promised, resolution = seconds_read(info, plan, plan.count - 1, 10.0)
    assert not is_truncated(read, promised, resolution)
    read, promised, resolution = seconds_read(info, plan, plan.count - 2, 10.0)
    assert is_truncated(read, promised, resolution)
