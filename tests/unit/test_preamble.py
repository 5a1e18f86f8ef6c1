"""Every FFmpeg argument list starts from one preamble; files get the hardened input, lavfi graphs do not."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

import videoconverter
from tests.unit.test_command import media_info
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode import ladder, poster, quality, samples, search, thumbnails
from videoconverter.transcode.command import build_command, generated_input, input_args, preamble, upload_input
from videoconverter.transcode.geometry import output_size
from videoconverter.transcode.sprites import sprite_layout

FFMPEG = "/opt/ffmpeg"
SOURCE = Path("/jobs/7/source")
WORK = Path("/jobs/7")
LIMITS = Limits(max_pixels=2_000_000)
INFO = media_info()
SRC = Path(videoconverter.__file__).parent
LEAF_MAY_IMPORT = {"videoconverter.renditions", "videoconverter.errors", "videoconverter.processes"}


def test_the_preamble_is_quiet_closes_stdin_and_overwrites() -> None:
    assert preamble(FFMPEG) == [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y"]


def test_an_upload_input_is_hardened() -> None:
    assert upload_input(SOURCE, INFO, LIMITS) == [
        "-protocol_whitelist", "file", "-f", "mov", "-max_pixels", "2000000", "-i", f"file:{SOURCE}",
    ]  # fmt: skip
    seek = upload_input(SOURCE, INFO, LIMITS, ["-ss", "1.000"])
    assert seek[-4:] == ["-ss", "1.000", "-i", f"file:{SOURCE}"], "an input's own options go before its -i"


def test_a_generated_input_is_a_lavfi_graph_and_takes_no_path() -> None:
    assert generated_input("testsrc2=duration=1") == ["-f", "lavfi", "-i", "testsrc2=duration=1"]


def _hls() -> list[list[str]]:
    rendition = dataclasses.replace(default_rendition(720, kind="hls"), ladder=(360, 720))
    rungs, _ = ladder.plan_ladder(INFO, rendition, WORK)
    audio = ladder.plan_audio(INFO, rendition, WORK)
    return [
        ladder.one_decode_command(FFMPEG, SOURCE, INFO, rungs, rendition, LIMITS, 0, audio),
        ladder.rung_command(FFMPEG, SOURCE, INFO, rungs[0], rendition, LIMITS, 0),
        ladder.audio_command(FFMPEG, SOURCE, INFO, audio, rendition, LIMITS, 0),
    ]


def _thumbnails() -> list[list[str]]:
    plan = thumbnails.plan_thumbnails(default_rendition(720, kind="thumbnails"), INFO)
    layout = sprite_layout(plan.count, plan.width, plan.height)
    return [thumbnails.thumbnails_args(FFMPEG, SOURCE, INFO, LIMITS, plan, layout, WORK, WORK)]


def _posters() -> list[list[str]]:
    return [
        poster.scan_args(FFMPEG, SOURCE, INFO, LIMITS, WORK / "scan.txt"),
        poster.extract_args(FFMPEG, SOURCE, INFO, LIMITS, 2.0, WORK / "poster.jpg"),
        poster.preview_args(FFMPEG, SOURCE, INFO, LIMITS, WORK / "poster.jpg", 640),
    ]


def _mp4() -> list[list[str]]:
    rendition = default_rendition(720)
    size = output_size(*INFO.display_size, rendition)
    return [build_command(FFMPEG, SOURCE, WORK / "out.mp4", INFO, size, rendition, LIMITS)]


def _quality() -> list[list[str]]:
    return [quality.build_quality_command(FFMPEG, SOURCE, WORK / "out.mp4", INFO, INFO, LIMITS)]


def _search() -> list[list[str]]:
    rendition = default_rendition(720)
    target = search.SearchTarget("720p", rendition, output_size(*INFO.display_size, rendition))
    encodes = [search.SampleEncode(target, 23, WORK / "pertitle" / "r0-0.mp4", "vmaf-r0-0.json")]
    windows = [[search.SampleWindow(1.0, 2.0)], [search.SampleWindow(6.0, 2.0)]]
    extracted = WORK / "pertitle" / "windows.mov"
    return [
        search.extract_command(FFMPEG, SOURCE, INFO, LIMITS, windows, rendition, extracted),
        search.sample_encode_command(FFMPEG, extracted, INFO, LIMITS, encodes),
        search.sample_vmaf_command(FFMPEG, extracted, INFO, LIMITS, encodes, [INFO], 2),
    ]


BUILDERS: dict[str, Callable[[], list[list[str]]]] = {
    "mp4": _mp4,
    "hls": _hls,
    "thumbnails and sprites": _thumbnails,
    "posters": _posters,
    "quality": _quality,
    "per-title search": _search,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_run_on_a_file_starts_with_the_preamble_and_the_hardened_input(name: str) -> None:
    hardened = input_args(FFMPEG, SOURCE, INFO, LIMITS)
    assert hardened == [*preamble(FFMPEG), *upload_input(SOURCE, INFO, LIMITS)]
    for args in BUILDERS[name]():
        assert args[: len(preamble(FFMPEG))] == preamble(FFMPEG)
        for i in (i for i, arg in enumerate(args) if arg == "-i"):  # every input, a second one (quality) too
            assert args[i + 1].startswith("file:")
            before = args[:i]
            start = len(before) - before[::-1].index("-protocol_whitelist") - 1
            assert before[start:][:6] == ["-protocol_whitelist", "file", "-f", "mov", "-max_pixels", "2000000"]


def test_generated_samples_start_with_the_preamble_and_read_only_lavfi() -> None:
    args = samples.clip_args(FFMPEG, 320, 180, 1.0, 30, True, "1:1")
    assert args[: len(preamble(FFMPEG))] == preamble(FFMPEG)
    inputs = [i for i, arg in enumerate(args) if arg == "-i"]
    assert len(inputs) == 2 and all(args[i - 2 : i] == ["-f", "lavfi"] for i in inputs)


def test_the_preamble_is_spelled_out_only_in_command_py() -> None:
    spelled = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if any(
            isinstance(node, ast.Constant) and node.value == "-hide_banner"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert spelled == ["transcode/command.py"]


def test_transcode_is_a_leaf_that_reads_only_renditions_of_the_configuration() -> None:
    """transcode/ imports the standard library, PyAV, imageio-ffmpeg, itself and the low-level modules only:
    never config, the pipeline, the worker, web/, cli/, storage/, brokers/ or jobs/."""
    outside = {
        (path.name, name)
        for path in (SRC / "transcode").rglob("*.py")
        for name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] == "videoconverter"
        and not name.startswith("videoconverter.transcode")
        and name not in LEAF_MAY_IMPORT
    }
    assert outside == set()


def _imported(tree: ast.Module) -> list[str]:
    """Every module a file imports, at the top or inside a function; ``from a import b`` counts as ``a.b``
    when ``a`` is the package itself (``b`` may be a module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, "transcode/ uses absolute imports"
            package = node.module == "videoconverter"
            names += [f"videoconverter.{a.name}" for a in node.names] if package else [node.module]
    return names
