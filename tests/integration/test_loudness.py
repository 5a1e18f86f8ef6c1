"""Loudness normalisation with real FFmpeg: quiet and loud sources reach -16 and -23 LUFS (measured on the
MP4 by ebur128) under the -1 dBTP ceiling; a gain that would clip turns dynamic; a silent track is left as it is."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from videoconverter.renditions import TRUE_PEAK_DBTP, Limits, default_rendition
from videoconverter.transcode.command import generated_input, input_args, preamble
from videoconverter.transcode.loudness import ebur128_args, is_linear, normalise_filter, parse_ebur128, plan_loudness
from videoconverter.transcode.probe import probe
from videoconverter.transcode.produce import convert_file
from videoconverter.transcode.products import Conversion
from videoconverter.transcode.runner import run_ffmpeg

pytestmark = pytest.mark.ffmpeg
SMALL = dataclasses.replace(default_rendition(120, per_title=False), preset="ultrafast")
LOUDNESS_TOLERANCE_LU = 1.0
PEAK_TOLERANCE_DB = 0.1
#: Each a mono 48 kHz track of 4 s: lavfi's sine is 1/8 of full scale (-21 LUFS) before the volume.
AUDIO = {
    "quiet": "sine=frequency=440:sample_rate=48000:duration=4,volume=0.2",  # about -36 LUFS
    "loud": "sine=frequency=440:sample_rate=48000:duration=4,volume=7.2",  # 0.9 of full scale, about -5 LUFS
    # A faint tone and a 0.95 click each second (about -20 LUFS, -3 dBTP): raised to -16 linearly it would clip.
    "spiky": "aevalsrc=0.01*sin(2*PI*440*t)+if(lt(mod(t\\,1)\\,0.01)\\,0.95*sin(2*PI*1000*t)\\,0):s=48000:d=4",
    "silent": "anullsrc=r=48000:cl=mono,atrim=duration=4",
}


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_exe: str) -> Callable[[str], Path]:
    """``clip(name)``: a 320x240 H.264 clip of 4 s with :data:`AUDIO`'s ``name`` track as AAC, made once."""
    directory = tmp_path_factory.mktemp("loudness-clips")

    def make(name: str) -> Path:
        path = directory / f"{name}.mp4"
        if not path.exists():
            args = [*preamble(ffmpeg_exe), *generated_input("testsrc2=size=320x240:rate=25:duration=4")]
            args += [*generated_input(AUDIO[name]), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
            run_ffmpeg([*args, "-b:a", "192k", "-shortest", f"file:{path}"], workdir=directory, timeout_seconds=60)
        return path

    return make


def loudness_of(ffmpeg: str, path: Path) -> tuple[float, float]:
    """ebur128's integrated loudness and true peak of the file's first audio stream."""
    result = run_ffmpeg(ebur128_args(ffmpeg, path), workdir=path.parent, timeout_seconds=60)
    return parse_ebur128(result.stderr_tail)


@pytest.mark.parametrize("source", ["quiet", "loud"])
@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_quiet_and_loud_sources_reach_the_target_linearly(
    source: str, target: float, clip: Callable[[str], Path], ffmpeg_exe: str, tmp_path: Path
) -> None:
    before, _ = loudness_of(ffmpeg_exe, clip(source))
    assert abs(before - target) > 10, "the source is far from the target"
    produced = convert_file(clip(source), tmp_path, dataclasses.replace(SMALL, loudness_lufs=target))
    loudness, peak = loudness_of(ffmpeg_exe, produced.marker.path)
    assert abs(loudness - target) <= LOUDNESS_TOLERANCE_LU
    assert peak <= TRUE_PEAK_DBTP + PEAK_TOLERANCE_DB
    assert f"-> {loudness:.1f} LUFS ({peak:.1f} dBTP), linear" in produced.note
    measured = re.search(r"loudness (-?[\d.]+) LUFS \(true peak -?[\d.]+ dBTP\) ->", produced.note)
    assert measured is not None and abs(float(measured.group(1)) - before) <= 0.5, "loudnorm's and ebur128's agree"


def test_a_gain_that_would_clip_turns_dynamic_and_keeps_the_ceiling(
    clip: Callable[[str], Path], ffmpeg_exe: str, tmp_path: Path
) -> None:
    before, _ = loudness_of(ffmpeg_exe, clip("spiky"))
    produced = convert_file(clip("spiky"), tmp_path, dataclasses.replace(SMALL, loudness_lufs=-16.0))
    loudness, peak = loudness_of(ffmpeg_exe, produced.marker.path)
    assert "dynamic (a linear" in produced.note
    assert peak <= TRUE_PEAK_DBTP + PEAK_TOLERANCE_DB
    assert loudness > before + 1, "brought up towards the target"


@pytest.mark.parametrize(("source", "target"), [("quiet", -16.0), ("loud", -23.0), ("spiky", -16.0), ("spiky", -23.0)])
def test_the_linear_rule_is_loudnorms_own(
    source: str, target: float, clip: Callable[[str], Path], ffmpeg_exe: str, tmp_path: Path
) -> None:
    """What is_linear predicts (and the note says) is what loudnorm's second pass reports it did."""
    path, limits = clip(source), Limits()
    info = probe(path, limits)
    run = lambda args, _duration: run_ffmpeg(args, workdir=tmp_path, timeout_seconds=60)  # noqa: E731
    job = Conversion(ffmpeg_exe, path, info, tmp_path, limits, run, "v")
    plan = plan_loudness(job, dataclasses.replace(SMALL, loudness_lufs=target))
    assert plan is not None
    # The second pass as the encode runs it, with loudnorm asked to write what it did.
    chain = normalise_filter(target, plan.measurement, 48000)
    chain = chain.replace(":linear=true,", ":linear=true:print_format=json:stats_file=second.json,")
    args = [*input_args(ffmpeg_exe, path, info, limits), "-map", "0:a:0", "-af", chain, "-f", "null", "-"]
    run_ffmpeg(args, workdir=tmp_path, timeout_seconds=60)
    reported = json.loads((tmp_path / "second.json").read_text())["normalization_type"]
    assert reported == ("linear" if is_linear(target, plan.measurement) else "dynamic")
    assert (reported == "dynamic") == (source == "spiky" and target == -16.0)


def test_a_silent_track_is_left_as_it_is(clip: Callable[[str], Path], ffmpeg_exe: str, tmp_path: Path) -> None:
    produced = convert_file(clip("silent"), tmp_path, dataclasses.replace(SMALL, loudness_lufs=-16.0))
    assert "loudness: silent track (below -70 LUFS), left as it is" in produced.note
    assert probe(produced.marker.path, Limits()).has_audio
    assert loudness_of(ffmpeg_exe, produced.marker.path)[0] <= -70.0


@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_a_worker_normalises_the_job_and_logs_the_loudness(
    split: bool, clip: Callable[[str], Path], ffmpeg_exe: str, tmp_path: Path
) -> None:
    """Through the embedded pipeline, whole and split into pieces (the audio is encoded once, normalised)."""
    from tests.conftest import FORCED_CHUNKING_TOML
    from videoconverter.config import load_config
    from videoconverter.jobs.base import JobId, JobState
    from videoconverter.pipeline import open_services, provision
    from videoconverter.worker import Worker

    path = tmp_path / "videoconverter.toml"
    renditions = '[[renditions]]\nname = "even"\nshort_side = 120\npreset = "ultrafast"\ntarget_vmaf = 0\n'
    settings = "[queues]\nvisibility_timeout_seconds = 5\nreceive_wait_seconds = 1\nretry_base_delay_seconds = 0\n"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n{FORCED_CHUNKING_TOML if split else ""}{settings}{renditions}'
        "loudness_lufs = -16\n"
    )
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        uploaded = svc.store.put_file(svc.config.input_bucket, "quiet.mp4", clip("quiet"))
        rendition = svc.config.rendition("even")
        Worker(svc, rendition).run(exit_when_idle=True)
        record = svc.jobs.get(JobId("quiet.mp4", uploaded.etag, "even"))
        assert record is not None and record.state is JobState.DONE, record
        output = svc.store.get_file(rendition.output_bucket, "quiet.mp4", tmp_path / "output.mp4")
        assert output.etag
        loudness, peak = loudness_of(ffmpeg_exe, tmp_path / "output.mp4")
        assert abs(loudness - -16.0) <= LOUDNESS_TOLERANCE_LU and peak <= TRUE_PEAK_DBTP + PEAK_TOLERANCE_DB
        logs = [line.message for line in svc.jobs.logs("quiet.mp4")]
        assert any(f"-> {loudness:.1f} LUFS ({peak:.1f} dBTP), linear" in message for message in logs), logs
        assert any("split into" in message for message in logs) == split
    finally:
        svc.close()
