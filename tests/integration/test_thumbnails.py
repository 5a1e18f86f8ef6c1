"""The thumbnails rendition with the real FFmpeg: poster past black frames, thumbnails, sprites and their VTT.

Clips are generated (lavfi), 320x180 and a few seconds long; every run takes a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from videoconverter.errors import TruncatedSourceError
from videoconverter.renditions import Limits, Rendition, default_rendition
from videoconverter.transcode.command import generated_input, preamble
from videoconverter.transcode.probe import probe
from videoconverter.transcode.products import Conversion, Produced, Runner
from videoconverter.transcode.runner import run_ffmpeg
from videoconverter.transcode.samples import make_hdr_clip
from videoconverter.transcode.thumbnails import produce_thumbnails

pytestmark = pytest.mark.ffmpeg

THUMBS = dataclasses.replace(default_rendition(720, kind="thumbnails"), thumbnail_interval_seconds=1.0)
TIME = r"(\d\d):(\d\d):(\d\d)\.(\d{3})"
CUE = re.compile(rf"^{TIME} --> {TIME}\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)$")


def lavfi_clip(ffmpeg: str, destination: Path, *sources: str) -> Path:
    """An H.264 MP4, 320x180, of the lavfi ``sources`` one after the other (``color=black:duration=1``)."""
    inputs = [arg for source in sources for arg in generated_input(f"{source}:size=320x180:rate=30")]
    labels = "".join(f"[{i}:v]" for i in range(len(sources)))
    graph = f"{labels}concat=n={len(sources)}:v=1:a=0,format=yuv420p[v]"
    subprocess.run(
        [*preamble(ffmpeg), *inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset",
         "ultrafast", str(destination)],
        check=True,
    )  # fmt: skip
    return destination


@pytest.fixture(scope="module")
def black_start(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Path:
    """1 s of black, then 3 s of a moving test pattern."""
    directory = tmp_path_factory.mktemp("thumbnail-clips")
    return lavfi_clip(ffmpeg_exe, directory / "black-start.mp4", "color=black:duration=1", "testsrc2=duration=3")


def produce(
    source: Path, workdir: Path, ffmpeg: str, rendition: Rendition = THUMBS, limits: Limits | None = None
) -> Produced:
    workdir.mkdir(parents=True, exist_ok=True)
    limits = limits or Limits()
    run: Runner = lambda args, _duration: run_ffmpeg(args, workdir=workdir, timeout_seconds=60)  # noqa: E731
    job = Conversion(ffmpeg, source, probe(source, limits), workdir, limits, run, "v1")
    return produce_thumbnails(rendition, job)


def picture(path: Path) -> tuple[int, int, float]:
    """Width, height and mean luma (0-255) of a JPEG."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).reformat(format="gray")
    return frame.width, frame.height, _plane_mean(frame.planes[0], frame.width, frame.height, centre=0)


def saturation(path: Path) -> float:
    """Mean distance of the chroma samples from grey (128): washed-out pictures have little."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).reformat(format="yuv444p")
    return sum(_plane_mean(frame.planes[i], frame.width, frame.height, centre=128) for i in (1, 2)) / 2


def _plane_mean(plane: av.video.plane.VideoPlane, width: int, height: int, centre: int) -> float:
    data = bytes(plane)
    rows = (data[row * plane.line_size : row * plane.line_size + width] for row in range(height))
    return sum(abs(value - centre) for row in rows for value in row) / (width * height)


def index_of(produced: Produced) -> dict:  # type: ignore[type-arg]
    assert produced.marker.name == "index.json"
    return json.loads(produced.marker.path.read_text())  # type: ignore[no-any-return]


def cues(vtt: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    assert vtt.startswith("WEBVTT\n\n")
    parsed = []
    for block in vtt.strip().split("\n\n")[1:]:
        match = CUE.match(block)
        assert match, block
        h1, m1, s1, ms1, h2, m2, s2, ms2, url, *xywh = match.groups()
        start = int(h1) * 3600 + int(m1) * 60 + int(s1) + int(ms1) / 1000
        end = int(h2) * 3600 + int(m2) * 60 + int(s2) + int(ms2) / 1000
        parsed.append((start, end, url, (int(xywh[0]), int(xywh[1]), int(xywh[2]), int(xywh[3]))))
    return parsed


def test_poster_skips_the_black_start(black_start: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    produced = produce(black_start, tmp_path, ffmpeg_exe)
    index = index_of(produced)
    assert index["poster"]["time_seconds"] > 1.0
    poster = produced.files[0]
    assert (poster.name, poster.content_type) == ("v1/poster.jpg", "image/jpeg")
    width, height, luma = picture(poster.path)
    assert (width, height) == (320, 180)
    assert luma > 60, "the poster is black"
    assert produced.note == ""


def test_thumbnails_sprites_and_vtt_agree(black_start: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    produced = produce(black_start, tmp_path, ffmpeg_exe)
    index = index_of(produced)
    thumbnails = [f for f in produced.files if f.name.startswith("v1/thumbnails/")]
    assert len(thumbnails) == 4  # 4 s, one a second from 0
    assert [t["time_seconds"] for t in index["thumbnails"]["items"]] == [0.0, 1.0, 2.0, 3.0]
    assert picture(thumbnails[0].path)[2] < 30 < picture(thumbnails[-1].path)[2]  # 0 s is black, 3 s is not
    assert all(picture(t.path)[:2] == (320, 180) for t in thumbnails)
    sprites = index["sprites"]
    assert (sprites["columns"], sprites["rows"], sprites["tile_width"], sprites["tile_height"]) == (4, 1, 320, 180)
    [sheet] = [f for f in produced.files if f.name.startswith("v1/sprites/")]
    assert picture(sheet.path)[:2] == (4 * 320, 180)
    vtt = next(f for f in produced.files if f.name == "v1/sprites.vtt")
    assert vtt.content_type == "text/vtt"
    parsed = cues(vtt.path.read_text())
    assert [(start, end) for start, end, _, _ in parsed] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert {url for _, _, url, _ in parsed} == {"sprites/001.jpg"}
    for _, _, _, (x, y, w, h) in parsed:
        assert x + w <= 4 * 320 and y + h <= 180


def test_index_lists_exactly_the_produced_files(black_start: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    produced = produce(black_start, tmp_path, ffmpeg_exe)
    index = index_of(produced)
    listed = {index["poster"]["name"], index["sprites"]["vtt"], *index["sprites"]["sheets"]}
    listed |= {item["name"] for item in index["thumbnails"]["items"]}
    names = [f.name for f in produced.files]
    assert set(names[:-1]) == listed and len(names) == len(listed) + 1
    assert all(name.startswith("v1/") for name in names[:-1])
    assert all(f.path.is_file() and f.path.stat().st_size > 0 for f in produced.files)
    assert produced.marker.content_type == "application/json"


def test_many_thumbnails_fill_several_sheets(black_start: Path, tmp_path: Path, ffmpeg_exe: str) -> None:
    # 4 s every 0.03 s: 134 tiles, a full 10 x 10 sheet and a padded one (0.03 s is below the configurable
    # minimum of 1 s, which only the config checks, so that one short clip makes two sheets).
    rendition = dataclasses.replace(THUMBS, thumbnail_interval_seconds=0.03, thumbnail_width=16)
    produced = produce(black_start, tmp_path, ffmpeg_exe, rendition)
    count = len([f for f in produced.files if f.name.startswith("v1/thumbnails/")])
    assert count == 134  # the last at 3.99 s
    assert len(index_of(produced)["thumbnails"]["items"]) == count
    sheets = [f for f in produced.files if f.name.startswith("v1/sprites/")]
    assert [picture(s.path)[:2] for s in sheets] == [(160, 90), (160, 90)]
    vtt = next(f for f in produced.files if f.name == "v1/sprites.vtt").path.read_text()
    parsed = cues(vtt)
    assert len(parsed) == count and parsed[-1][1] == 4.0
    assert all(parsed[i][1] == parsed[i + 1][0] for i in range(len(parsed) - 1))
    assert [url for _, _, url, _ in parsed].count("sprites/002.jpg") == count - 100
    assert all(x + w <= 160 and y + h <= 90 for _, _, _, (x, y, w, h) in parsed)


def test_a_rotated_source_gives_upright_pictures(
    sample_clip: Callable[..., Path], tmp_path: Path, ffmpeg_exe: str
) -> None:
    source = sample_clip(width=320, height=180, seconds=2.0, rotation_degrees=90)
    produced = produce(source, tmp_path, ffmpeg_exe)
    width, height, _ = picture(produced.files[0].path)
    assert (width, height) == (180, 320)
    thumbnail = next(f for f in produced.files if f.name.startswith("v1/thumbnails/"))
    assert picture(thumbnail.path)[:2] == (180, 320)


def test_all_black_in_an_awkward_directory(tmp_path: Path, ffmpeg_exe: str) -> None:
    # The work directory's name has what FFmpeg's filter and image2 syntaxes would misread if not escaped.
    source = lavfi_clip(ffmpeg_exe, tmp_path / "black.mp4", "color=black:duration=2")
    workdir = tmp_path / "odd, dir:'[x];%d"
    produced = produce(source, workdir, ffmpeg_exe, dataclasses.replace(THUMBS, sprite=False))
    index = index_of(produced)
    assert index["poster"]["time_seconds"] == 1.0
    assert "black" in produced.note
    assert index["sprites"] is None
    assert [f.name for f in produced.files] == [
        "v1/poster.jpg", "v1/thumbnails/00001.jpg", "v1/thumbnails/00002.jpg", "index.json"
    ]  # fmt: skip
    assert all(f.path.is_relative_to(workdir) for f in produced.files)


def test_a_clip_shorter_than_the_interval_gets_one_thumbnail_and_sheet(
    black_start: Path, tmp_path: Path, ffmpeg_exe: str
) -> None:
    produced = produce(black_start, tmp_path, ffmpeg_exe, dataclasses.replace(THUMBS, thumbnail_interval_seconds=10))
    names = [f.name for f in produced.files]
    assert names[1:] == ["v1/thumbnails/00001.jpg", "v1/sprites/001.jpg", "v1/sprites.vtt", "index.json"]
    assert picture(produced.files[2].path)[:2] == (320, 180)
    assert cues(produced.files[3].path.read_text()) == [(0.0, 4.0, "sprites/001.jpg", (0, 0, 320, 180))]


def test_hdr_is_tone_mapped_for_jpeg(sample_clip: Callable[..., Path], tmp_path: Path, ffmpeg_exe: str) -> None:
    hdr = make_hdr_clip(tmp_path / "hdr.mp4", transfer="smpte2084", width=320, height=180, seconds=1.0)
    assert probe(hdr, Limits()).is_hdr
    produced = produce(hdr, tmp_path / "hdr", ffmpeg_exe)
    sdr = produce(sample_clip(width=320, height=180, seconds=1.0), tmp_path / "sdr", ffmpeg_exe)
    luma, sdr_luma = picture(produced.files[0].path)[2], picture(sdr.files[0].path)[2]
    assert 0.65 * sdr_luma <= luma <= 1.2 * sdr_luma, (luma, sdr_luma)
    # Shown as they are, BT.2020 colours read as BT.709 look washed out.
    colour, sdr_colour = saturation(produced.files[0].path), saturation(sdr.files[0].path)
    assert colour >= 0.75 * sdr_colour, (colour, sdr_colour)


def test_a_truncated_video_is_caught_past_the_poster_scan_by_the_missing_thumbnails(
    sample_clip: Callable[..., Path], tmp_path: Path, ffmpeg_exe: str
) -> None:
    """Cut after about 12 s of 24: the poster's scan (the first 10 s) sees nothing wrong, the thumbnails stop."""
    whole = sample_clip(width=320, height=180, seconds=24, keyframe_interval_seconds=1.0, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    truncated = r"^the upload is truncated: 1[0-3]\.0 s of 24\.0 s could be read$"
    with pytest.raises(TruncatedSourceError, match=truncated):
        produce(cut, tmp_path / "work", ffmpeg_exe)
    produced = produce(cut, tmp_path / "accepted", ffmpeg_exe, limits=Limits(accept_truncated_sources=True))
    assert produced.note.endswith("could be read; converted what was there")
    assert 10 <= len(index_of(produced)["thumbnails"]["items"]) <= 14
