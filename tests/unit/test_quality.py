"""build_quality_command() is a pure function of its arguments; the log readers turn FFmpeg's logs into scores."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_command import media_info as command_media_info
from videoconverter.errors import TranscodeError
from videoconverter.renditions import Limits
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.quality import (
    MAX_PSNR_DB,
    build_quality_command,
    read_psnr_log,
    read_vmaf_log,
)

FFMPEG = "/opt/ffmpeg-test/bin/ffmpeg"
SOURCE = Path("/tmp/vc-quality/source.mov")
OUTPUT = Path("/tmp/vc-quality/output.mp4")


def media_info(**overrides: Any) -> MediaInfo:
    """A ten-second 1080p source unless ``overrides`` say otherwise."""
    return command_media_info(**{"duration_seconds": 10.0, **overrides})


def command(
    source_info: MediaInfo | None = None, output_info: MediaInfo | None = None, threads: int = 2, **limits: Any
) -> list[str]:
    return build_quality_command(
        FFMPEG,
        SOURCE,
        OUTPUT,
        source_info or media_info(),
        output_info or media_info(width=1280, height=720),
        Limits(**limits),
        threads,
    )


def graph(args: list[str]) -> str:
    return args[args.index("-filter_complex") + 1]


def reference_chain(args: list[str]) -> str:
    return next(part for part in graph(args).split(";") if part.startswith("[1:v]"))


def test_the_output_is_input_0_and_the_source_input_1_each_hardened() -> None:
    args = command(source_info=media_info(format_name="matroska,webm"), max_pixels=1234)
    inputs = [i for i, arg in enumerate(args) if arg == "-i"]
    assert [args[i + 1] for i in inputs] == [f"file:{OUTPUT}", f"file:{SOURCE}"]
    for position, demuxer in zip(inputs, ["mov", "matroska"], strict=True):
        options = args[position - 6 : position]
        assert options == ["-protocol_whitelist", "file", "-f", demuxer, "-max_pixels", "1234"]
    assert args[0] == FFMPEG and "-nostdin" in args[: inputs[0]]
    assert args.count("-nostdin") == 1, "global options are given once"


@pytest.mark.parametrize(
    ("output_info", "size"),
    [
        (media_info(width=1280, height=720), "1280:720"),
        (media_info(width=640, height=360), "640:360"),
        # FFmpeg turns a rotation-tagged output upright as it decodes it: the reference must match that.
        (media_info(width=1280, height=720, rotation_degrees=90), "720:1280"),
        (media_info(width=1280, height=720, rotation_degrees=180), "1280:720"),
    ],
)
def test_the_reference_is_scaled_to_the_outputs_picture(output_info: MediaInfo, size: str) -> None:
    chain = reference_chain(command(output_info=output_info))
    assert f"scale={size}:flags=bicubic" in chain
    assert "scale" not in graph(command(output_info=output_info)).split(";")[0], "the output is never rescaled"


@pytest.mark.parametrize(
    ("output_rate", "source_rate", "fps"),
    [
        (30.0, 60.0, "fps=30/1"),
        (30000 / 1001, 30000 / 1001, "fps=30000/1001"),
        (29.97003, 59.94006, "fps=30000/1001"),  # a probe figure rounded to a float
        (24.0, 30.0, "fps=24/1"),
        (None, 25.0, "fps=25/1"),  # an output whose rate cannot be read: assume it kept the source's
    ],
)
def test_the_reference_is_resampled_to_the_outputs_frame_rate(
    output_rate: float | None, source_rate: float, fps: str
) -> None:
    args = command(source_info=media_info(frame_rate=source_rate), output_info=media_info(frame_rate=output_rate))
    chain = reference_chain(args)
    assert fps in chain.split(",")
    assert chain.index("setpts=PTS-STARTPTS") < chain.index("fps=") < chain.index("scale=")


def test_both_sides_end_in_the_same_pixel_format() -> None:
    distorted, reference = graph(command()).split(";")[:2]
    assert distorted.endswith("format=yuv420p[distorted]")
    assert "format=yuv420p,split=2" in reference


@pytest.mark.parametrize(
    ("source_transfer", "output_transfer", "tone_mapped"),
    [("smpte2084", "bt709", True), ("arib-std-b67", "", True), ("smpte2084", "smpte2084", False), ("", "", False)],
)
def test_an_hdr_source_is_tone_mapped_only_when_the_output_is_sdr(
    source_transfer: str, output_transfer: str, tone_mapped: bool
) -> None:
    args = command(media_info(color_transfer=source_transfer), media_info(color_transfer=output_transfer))
    chain = reference_chain(args)
    assert ("tonemap=" in chain) is tone_mapped
    assert chain.index("scale=") < chain.index("format=yuv420p,split")


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_vmaf_and_psnr_write_their_logs_into_the_workdir_with_the_thread_count(threads: int) -> None:
    args = command(threads=threads)
    text = graph(args)
    assert "psnr=stats_file=psnr.log:shortest=1" in text
    assert "libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path=vmaf.json" in text
    assert f":n_threads={threads}:" in text
    assert args[args.index("-filter_threads") + 1] == str(threads)
    assert args[-3:] == ["-f", "null", "-"]
    assert args[args.index("-map") + 1] == "[measured]"


def test_every_argument_is_a_separate_string_with_no_shell_involved() -> None:
    args = command()
    assert all(isinstance(arg, str) and arg for arg in args)


def test_the_vmaf_log_is_pooled(tmp_path: Path) -> None:
    log = tmp_path / "vmaf.json"
    scores = [90.0, 80.0, 100.0]
    log.write_text(json.dumps({"frames": [{"frameNum": i, "metrics": {"vmaf": s}} for i, s in enumerate(scores)]}))
    vmaf = read_vmaf_log(log)
    assert (vmaf.mean, vmaf.minimum, vmaf.frames) == (90.0, 80.0, 3)
    assert vmaf.harmonic_mean == pytest.approx(3 / (1 / 91 + 1 / 81 + 1 / 101) - 1)
    assert vmaf.minimum < vmaf.harmonic_mean < vmaf.mean


@pytest.mark.parametrize("content", ["", "{}", '{"frames": []}', "not json"])
def test_an_unusable_vmaf_log_is_a_transcode_error(tmp_path: Path, content: str) -> None:
    log = tmp_path / "vmaf.json"
    log.write_text(content)
    with pytest.raises(TranscodeError):
        read_vmaf_log(log)


def test_psnr_comes_from_the_mean_squared_error_over_all_frames(tmp_path: Path) -> None:
    log = tmp_path / "psnr.log"
    log.write_text(
        "n:1 mse_avg:10.00 mse_y:20.00 mse_u:1.00 mse_v:1.00 psnr_avg:38.13 psnr_y:35.11 psnr_u:48.13 psnr_v:48.13\n"
        "n:2 mse_avg:30.00 mse_y:40.00 mse_u:1.00 mse_v:1.00 psnr_avg:33.36 psnr_y:32.11 psnr_u:48.13 psnr_v:48.13\n"
    )
    psnr_y, psnr_avg = read_psnr_log(log)
    assert psnr_y == pytest.approx(10 * math.log10(255**2 / 30))
    assert psnr_avg == pytest.approx(10 * math.log10(255**2 / 20))


def test_identical_pictures_have_the_capped_psnr(tmp_path: Path) -> None:
    log = tmp_path / "psnr.log"
    log.write_text("n:1 mse_avg:0.00 mse_y:0.00 mse_u:0.00 mse_v:0.00 psnr_avg:inf psnr_y:inf psnr_u:inf psnr_v:inf\n")
    assert read_psnr_log(log) == (MAX_PSNR_DB, MAX_PSNR_DB)


def test_a_missing_psnr_log_is_a_transcode_error(tmp_path: Path) -> None:
    with pytest.raises(TranscodeError):
        read_psnr_log(tmp_path / "psnr.log")
