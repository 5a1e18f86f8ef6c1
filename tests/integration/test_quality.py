"""measure_quality() with the real FFmpeg and libvmaf on tiny generated clips; the CLI's `quality` and `convert`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from videoconverter.errors import NotAVideoError, NoVideoStreamError
from videoconverter.transcode.quality import measure_quality

pytestmark = pytest.mark.ffmpeg

CLIP = {"width": 320, "height": 180, "seconds": 1, "frame_rate": 30}


def encode(ffmpeg: str, source: Path, destination: Path, *video_args: str) -> Path:
    """Re-encode ``source`` (ultrafast x264, audio copied) with ``video_args`` (e.g. a CRF, a scale filter)."""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
    args += [*video_args, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy", str(destination)]
    subprocess.run(args, check=True)
    return destination


@pytest.fixture(scope="module")
def source(sample_clip: Callable[..., Path]) -> Path:
    return sample_clip(**CLIP)


@pytest.fixture(scope="module")
def encodes(source: Path, ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("quality")
    return {
        "fine": encode(ffmpeg_exe, source, directory / "fine.mp4", "-crf", "5"),
        "coarse": encode(ffmpeg_exe, source, directory / "coarse.mp4", "-crf", "45"),
        "smaller": encode(ffmpeg_exe, source, directory / "smaller.mp4", "-vf", "scale=160:90,fps=15", "-crf", "5"),
    }


def test_a_near_lossless_encode_scores_higher_than_a_coarse_one(source: Path, encodes: dict[str, Path]) -> None:
    fine = measure_quality(source, encodes["fine"], threads=1)
    coarse = measure_quality(source, encodes["coarse"], threads=1)
    assert fine.vmaf_mean > 95 > coarse.vmaf_mean + 10
    assert fine.psnr_y > coarse.psnr_y + 10 and fine.psnr_avg > coarse.psnr_avg + 10
    assert coarse.vmaf_min <= coarse.vmaf_harmonic_mean <= coarse.vmaf_mean
    assert fine.frames_compared == coarse.frames_compared == 30
    assert (fine.width, fine.height) == (320, 180)


def test_the_bitrate_is_the_files_size_over_its_duration(source: Path, encodes: dict[str, Path]) -> None:
    report = measure_quality(source, encodes["coarse"], threads=1)
    assert report.output_bytes == encodes["coarse"].stat().st_size
    assert report.duration_seconds == pytest.approx(1.0, abs=0.1)
    assert report.total_kbps == pytest.approx(report.output_bytes * 8 / report.duration_seconds / 1000)
    # The audio and the container are the rest of the file.
    assert 0 < report.video_kbps < report.total_kbps


def test_an_output_of_another_size_and_rate_is_compared_after_scaling_the_source(
    source: Path, encodes: dict[str, Path]
) -> None:
    report = measure_quality(source, encodes["smaller"], threads=1)
    assert (report.width, report.height, report.frame_rate) == (160, 90, 15.0)
    assert report.frames_compared == 15
    # Near-lossless at its own size: had the frames been misaligned in time, the moving pattern would score low.
    assert report.vmaf_mean > 90 and report.psnr_y > 35


def test_the_identical_file_scores_the_top(source: Path) -> None:
    report = measure_quality(source, source, threads=1)
    assert report.psnr_y == 100.0 and report.vmaf_mean > 97


def test_a_file_that_is_not_a_video_is_named_in_a_clear_error(source: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("definitely not a video")
    with pytest.raises(NotAVideoError, match=r"junk\.mp4: the upload is not a readable video"):
        measure_quality(source, junk, threads=1)


def test_an_audio_only_file_is_refused(source: Path, ffmpeg_exe: str, tmp_path: Path) -> None:
    audio = tmp_path / "audio.mp4"
    subprocess.run([ffmpeg_exe, "-loglevel", "error", "-i", str(source), "-vn", "-c:a", "copy", str(audio)], check=True)
    with pytest.raises(NoVideoStreamError, match=r"audio\.mp4"):
        measure_quality(audio, source, threads=1)


# --- the CLI, as a user runs it ------------------------------------------------------------------------------


def run_cli(config_path: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    env["VIDEOCONVERTER_CONFIG"] = str(config_path)
    return subprocess.run(
        [sys.executable, "-m", "videoconverter", *args], env=env, capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_quality_json_prints_the_documented_keys(
    tiny_config_path: Path, source: Path, encodes: dict[str, Path]
) -> None:
    result = run_cli(tiny_config_path, "quality", str(source), str(encodes["coarse"]), "--json", "--threads", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {
        "source", "output", "vmaf_mean", "vmaf_harmonic_mean", "vmaf_min", "psnr_y", "psnr_avg", "video_kbps",
        "total_kbps", "output_bytes", "duration_seconds", "width", "height", "frame_rate", "frames_compared",
    }  # fmt: skip
    assert report["output"] == str(encodes["coarse"]) and report["frames_compared"] == 30
    table = run_cli(tiny_config_path, "quality", str(source), str(encodes["coarse"]), "--threads", "1").stdout
    assert f"{report['vmaf_mean']:.2f} mean" in table


def test_quality_of_a_non_video_ends_in_one_error_line(tiny_config_path: Path, source: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("definitely not a video")
    result = run_cli(tiny_config_path, "quality", str(source), str(junk))
    assert result.returncode == 1
    assert result.stderr.startswith("videoconverter: error: ") and "junk.mp4" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_convert_writes_the_rendition_under_the_sources_name(
    tiny_config_path: Path, source: Path, tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    result = run_cli(tiny_config_path, "convert", str(source), str(outdir), "--rendition", "smaller", "--json")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    target = outdir / source.name
    assert written["rendition"] == "smaller"
    assert written["files"] == [{"path": str(target), "bytes": target.stat().st_size, "content_type": "video/mp4"}]
    assert sorted(p.name for p in outdir.iterdir()) == [source.name], "no temporary directory is left behind"
    report = measure_quality(source, target, threads=1)
    assert (report.width, report.height) == (160, 90)  # the "smaller" rendition: short side 90


def test_convert_refuses_an_unknown_rendition_and_overwriting_its_source(
    tiny_config_path: Path, source: Path, tmp_path: Path
) -> None:
    unknown = run_cli(tiny_config_path, "convert", str(source), str(tmp_path), "--rendition", "4k")
    assert unknown.returncode == 2 and "unknown rendition '4k'" in unknown.stderr
    same = run_cli(tiny_config_path, "convert", str(source), str(source.parent))
    assert same.returncode == 1 and "would overwrite the source" in same.stderr
    assert len(same.stderr.strip().splitlines()) == 1


def test_convert_and_quality_take_paths_relative_to_the_current_directory(
    tiny_config_path: Path, source: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.mp4").write_bytes(source.read_bytes())
    converted = run_cli(tiny_config_path, "convert", "in.mp4", "out", "--rendition", "smaller", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.startswith(f"wrote {Path('out') / 'in.mp4'} (")
    measured = run_cli(tiny_config_path, "quality", "in.mp4", "out/in.mp4", "--json", "--threads", "1", cwd=tmp_path)
    assert measured.returncode == 0, measured.stderr
    assert json.loads(measured.stdout)["width"] == 160


def test_convert_writes_a_ladder_under_a_directory_named_after_the_source(source: Path, tmp_path: Path) -> None:
    config = tmp_path / "hls.toml"
    config.write_text('[[renditions]]\nkind = "hls"\nladder = [90, 180]\npreset = "ultrafast"\n')
    result = run_cli(config, "convert", str(source), str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    paths = [Path(f["path"]) for f in json.loads(result.stdout)["files"]]
    assert paths[-1] == tmp_path / "out" / source.name / "master.m3u8"
    assert all(p.is_file() and (tmp_path / "out" / source.name) in p.parents for p in paths)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / source.name).write_bytes(b"an earlier MP4")
    clash = run_cli(config, "convert", str(source), str(tmp_path / "flat"))
    assert clash.returncode == 1 and "a hls rendition writes a directory of that name" in clash.stderr
