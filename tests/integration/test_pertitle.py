"""Quality per title with the real FFmpeg and libvmaf, on tiny generated clips: the chosen CRF follows the content,
the measured VMAF lands near the target, a ladder keeps a valid master playlist, a failed sample is retried."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_pipeline import IN, job
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import Services
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode.command import generated_input, preamble
from videoconverter.transcode.playlists import parse_media_playlist
from videoconverter.transcode.produce import convert_file
from videoconverter.transcode.runner import ffmpeg_executable
from videoconverter.transcode.samples import make_truncated_clip
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg

#: lavfi sources, 320x180 at 30 fps: FFmpeg's test pattern (easy for x264) and the same under grain (hard).
CONTENT = {
    "easy": "testsrc2=size=320x180:rate=30",
    "hard": "testsrc2=size=320x180:rate=30,noise=alls=24:allf=t+u",
}
TARGET = 93.0
#: The cap kept out of the way, so that the target alone decides.
RENDITION = dataclasses.replace(
    default_rendition(180), target_vmaf=TARGET, verify_vmaf=True, preset="veryfast", max_video_bitrate_kbps=20_000
)


def make_source(ffmpeg: str, content: str, destination: Path, seconds: float = 2.0) -> Path:
    """A near-lossless 2 s H.264 source of one of :data:`CONTENT`, keyframes every second."""
    args = [*preamble(ffmpeg), *generated_input(f"{CONTENT[content]},format=yuv420p"), "-t", str(seconds)]
    subprocess.run([*args, "-c:v", "libx264", "-preset", "veryfast", "-crf", "8", "-g", "30", str(destination)],
                   check=True)  # fmt: skip
    return destination


@pytest.fixture(scope="module")
def sources(ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pertitle")
    return {name: make_source(ffmpeg_exe, name, directory / f"{name}.mp4") for name in CONTENT}


def test_the_crf_follows_the_content_and_the_measured_vmaf_lands_near_the_target(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    chosen = {}
    for name, source in sources.items():
        workdir = tmp_path / name
        workdir.mkdir()
        produced = convert_file(source, workdir, RENDITION, threads=1)
        assert produced.quality is not None
        (choice,) = produced.quality.choices
        assert choice.measured_vmaf is not None and abs(choice.measured_vmaf - TARGET) <= 1.5, choice
        assert 1 <= len(choice.probes) <= 3 and not choice.capped
        assert f"CRF {choice.crf} for VMAF 93" in produced.note and "measured" in produced.note
        chosen[name] = choice.crf
    assert chosen["easy"] > chosen["hard"]  # easy content meets the target with fewer bits


def test_without_a_target_the_fixed_crf_is_used(sources: dict[str, Path], tmp_path: Path) -> None:
    produced = convert_file(sources["easy"], tmp_path, dataclasses.replace(RENDITION, target_vmaf=0.0), threads=1)
    assert produced.quality is None and "CRF" not in produced.note


def test_a_ladder_that_fits_the_content_keeps_a_valid_master_playlist(sources: dict[str, Path], tmp_path: Path) -> None:
    ladder = dataclasses.replace(
        default_rendition(180, kind="hls"), ladder=(90, 120, 144, 180), target_vmaf=TARGET, preset="veryfast"
    )
    produced = convert_file(sources["easy"], tmp_path, ladder, threads=1)
    assert produced.quality is not None
    choices = produced.quality.choices
    assert [c.name for c in choices] == ["90p", "120p", "144p", "180p"]
    assert choices[0].kept and choices[-1].kept  # the bottom and the top always stay
    kept = [c.name for c in choices if c.kept]
    master = (tmp_path / "hls" / "master.m3u8").read_text(encoding="utf-8")
    uris = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert [uri.split("/")[1] for uri in uris] == kept  # lowest first, only the rungs kept
    assert master.count("#EXT-X-STREAM-INF:") == len(kept)
    names = {file.name for file in produced.files}
    for uri in uris:
        assert uri in names
        playlist = parse_media_playlist((tmp_path / "hls" / uri.split("/")[1] / "index.m3u8").read_text())
        assert f"{uri.rsplit('/', 1)[0]}/{playlist.init_uri}" in names
    assert all(f"/{c.name}/" not in name for c in choices if not c.kept for name in names)


def failing_sample_ffmpeg(tmp_path: Path) -> str:
    """A stand-in for FFmpeg whose first sample encode (its output under ``pertitle/``) fails."""
    script, marker = tmp_path / "sample-fails-ffmpeg", tmp_path / "sample-failed"
    script.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"if any('/pertitle/r' in a for a in sys.argv) and not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close()\n    print('sample encode failed', file=sys.stderr)\n    sys.exit(1)\n"
        f"os.execv({ffmpeg_executable()!r}, [{ffmpeg_executable()!r}] + sys.argv[1:])\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_failed_sample_encode_is_a_transient_error_and_the_retry_records_the_choice(
    svc: Services, small_clip: Path, tmp_path: Path
) -> None:
    uploaded = svc.store.put_file(IN, "sample.mp4", small_clip)
    small = svc.config.rendition("small")
    assert small.target_vmaf > 0  # per title by default
    worker = Worker(svc, small, ffmpeg=failing_sample_ffmpeg(tmp_path))
    worker.run(max_messages=1)
    record = job(svc, "sample.mp4", uploaded.etag, "small")
    assert record.state is JobState.QUEUED and "FFmpeg failed" in record.error
    assert "sample encode failed" in record.stderr_tail
    worker.run(exit_when_idle=True)
    record = job(svc, "sample.mp4", uploaded.etag, "small")
    assert (record.state, record.attempts) == (JobState.DONE, 2)
    quality = record.as_json()["quality"]
    assert isinstance(quality, dict) and quality["outputs"][0]["name"] == "small"
    assert f"CRF {quality['outputs'][0]['crf']} for VMAF" in record.note
    assert any(line.message.startswith("VMAF search") for line in svc.jobs.logs("sample.mp4"))
    assert json.loads(json.dumps(record.as_json()))["quality"] == quality


def test_an_accepted_truncated_source_whose_samples_hold_nothing_keeps_the_fixed_crf(tmp_path: Path) -> None:
    source = make_truncated_clip(tmp_path / "cut.mp4", kept_share=0.15)  # 10 s promised, about 1.5 s there
    workdir = tmp_path / "out"
    workdir.mkdir()
    produced = convert_file(source, workdir, RENDITION, limits=Limits(accept_truncated_sources=True), threads=1)
    assert produced.quality is None
    assert produced.note.startswith("VMAF target not used: the samples held no picture")
