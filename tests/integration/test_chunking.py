"""Split jobs on the embedded backend with real FFmpeg: a long upload is cut into pieces on keyframe-interval
boundaries, the pieces and the audio are encoded one by one (any worker may take each), joined without
re-encoding, and the output is what one whole encode makes: the same frames, duration and audio offset."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from tests.conftest import tiny_renditions_toml
from videoconverter.config import load_config
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.transcode.produce import convert_file
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg
IN = "videoconverter-input"
OUT = "videoconverter-output-smaller"


@pytest.fixture
def chunked(tmp_path: Path) -> Iterator[Services]:
    """The tiny embedded pipeline with every MP4 job split into pieces of 2 s."""
    path = tmp_path / "videoconverter.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + tiny_renditions_toml(split=True))
    services = open_services(load_config(environ={}, path=path))
    provision(services)
    yield services
    services.close()


def drain(svc: Services) -> None:
    for rendition in svc.config.renditions:
        Worker(svc, rendition).run(exit_when_idle=True)


def media(path: Path) -> dict[str, Any]:
    """What must not differ between a whole and a joined encode, read with PyAV (every frame decoded)."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = list(container.decode(video=0))
        return {
            "frames": len(frames),
            "keyframes": [i for i, frame in enumerate(frames) if frame.key_frame],
            "duration": round(float(container.duration or 0) / 1e6, 3),
            "av_offset": round(float(audio.start_time * audio.time_base - video.start_time * video.time_base), 4),
            "audio_seconds": round(float((audio.duration or 0) * audio.time_base), 2),
            "size": (video.codec_context.width, video.codec_context.height),
        }


def test_a_long_upload_is_split_into_pieces_and_joined_into_what_a_whole_encode_makes(
    chunked: Services, sample_clip: Any, tmp_path: Path
) -> None:
    clip = sample_clip(width=320, height=180, seconds=6)
    uploaded = chunked.store.put_file(IN, "long talk.mp4", clip)
    drain(chunked)
    for name in ("smaller", "small"):  # a fixed CRF, and a VMAF target searched once for every piece
        record = chunked.jobs.get(JobId("long talk.mp4", uploaded.etag, name))
        assert record is not None and record.state is JobState.DONE, record
        assert (record.pieces_done, record.pieces_planned, record.progress_percent) == (4, 4, 100)  # 3 + audio
        assert record.as_json()["pieces"] == {"done": 4, "planned": 4}
    joined = tmp_path / "joined.mp4"
    info = chunked.store.get_file(OUT, "long talk.mp4", joined)
    assert info.metadata["source-etag"] == uploaded.etag
    whole = convert_file(clip, tmp_path, chunked.config.rendition("smaller")).files[0].path
    expected = media(whole)
    assert expected["frames"] == 180 and expected["keyframes"] == [0, 60, 120]  # the clip: 6 s at 30 fps
    assert media(joined) == expected
    assert all(not list(chunked.store.list(r.output_bucket, ".chunks/")) for r in chunked.config.renditions)
    logs = [line.message for line in chunked.jobs.logs("long talk.mp4")]
    assert any("split into 3 video pieces of 60 frames and the audio" in m for m in logs)
    assert any("every piece is done: join queued" in m for m in logs)
    assert quality_of(chunked, uploaded.etag) is not None  # the search's choice reached the job record


def quality_of(svc: Services, etag: str) -> object:
    record = svc.jobs.get(JobId("long talk.mp4", etag, "small"))
    return record.as_json()["quality"] if record else None


def test_a_newer_upload_supersedes_the_pieces_of_the_old_one_which_write_nothing(
    chunked: Services, sample_clip: Any, tmp_path: Path
) -> None:
    old = chunked.store.put_file(IN, "replaced.mp4", sample_clip(width=320, height=180, seconds=6))
    smaller = chunked.config.rendition("smaller")
    assert Worker(chunked, smaller).run(max_messages=2) == 2  # the split, and the first piece
    area = [o.key for o in chunked.store.list(OUT, ".chunks/")]
    assert len(area) == 1  # the first piece, in the work area
    new = chunked.store.put_file(IN, "replaced.mp4", sample_clip(width=320, height=180, seconds=1))
    drain(chunked)
    record = chunked.jobs.get(JobId("replaced.mp4", old.etag, "smaller"))
    assert record is not None and record.state is JobState.DONE and record.note.startswith("superseded")
    assert record.output_url == "" and record.pieces_done == 1  # the other pieces stopped before encoding
    newer = chunked.jobs.get(JobId("replaced.mp4", new.etag, "smaller"))
    assert newer is not None and newer.state is JobState.DONE
    output = chunked.store.head(OUT, "replaced.mp4")
    assert output is not None and output.metadata["source-etag"] == new.etag
    assert not list(chunked.store.list(OUT, ".chunks/"))  # the old work area deleted, the new one joined


def test_chunking_off_or_a_short_source_converts_whole(tmp_path: Path, sample_clip: Any) -> None:
    path = tmp_path / "videoconverter.toml"
    renditions = tiny_renditions_toml(split=False)  # whatever the test run forces
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + renditions + "\n[chunking]\nmin_source_seconds = 5\n")
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        uploaded = svc.store.put_file(IN, "short.mp4", sample_clip(width=320, height=180, seconds=1))
        Worker(svc, svc.config.rendition("smaller")).run(exit_when_idle=True)
        record = svc.jobs.get(JobId("short.mp4", uploaded.etag, "smaller"))
        assert record is not None and record.state is JobState.DONE and record.pieces_planned == 0
        assert record.as_json()["pieces"] is None
    finally:
        svc.close()


def test_a_worker_killed_in_the_middle_of_a_piece_loses_nothing_and_the_output_is_whole(
    chunked: Services, sample_clip: Any, tmp_path: Path
) -> None:
    from tests.conftest import wait_until
    from tests.integration.test_pipeline import slow_ffmpeg, start_worker

    clip = sample_clip(width=320, height=180, seconds=6)
    uploaded = chunked.store.put_file(IN, "killed.mp4", clip)
    victim = start_worker(tmp_path / "videoconverter.toml", slow_ffmpeg(tmp_path, 60), "smaller")
    pid_file = tmp_path / "ffmpeg.pid"  # written by the first FFmpeg run: the first piece (the split runs none)
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, message="the first piece's FFmpeg to start")
    job = JobId("killed.mp4", uploaded.etag, "smaller")
    assert chunked.jobs.get(job).pieces_planned == 4  # type: ignore[union-attr]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    Worker(chunked, chunked.config.rendition("smaller")).run(exit_when_idle=True)  # the piece again, after its lease
    record = chunked.jobs.get(job)
    assert record is not None and record.state is JobState.DONE and record.pieces_done == 4
    joined = tmp_path / "joined.mp4"
    chunked.store.get_file(OUT, "killed.mp4", joined)
    assert media(joined)["frames"] == 180 and media(joined)["duration"] == 6.0
    logs = [line.message for line in chunked.jobs.logs("killed.mp4")]
    assert sum("piece 1 of 3 done" in m for m in logs) == 1  # counted once, by the worker that finished it


def test_a_truncated_upload_accepted_leaves_out_the_pieces_past_the_end_of_its_data(
    tmp_path: Path, sample_clip: Any
) -> None:
    from videoconverter.transcode.samples import make_truncated_clip

    path = tmp_path / "videoconverter.toml"
    settings = "\n[limits]\naccept_truncated_sources = true\n"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + tiny_renditions_toml(split=True) + settings)
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        cut = make_truncated_clip(tmp_path / "cut.mp4")  # promises 10 s, holds about 4.9
        uploaded = svc.store.put_file(IN, "cut.mp4", cut)
        Worker(svc, svc.config.rendition("smaller")).run(exit_when_idle=True)
        record = svc.jobs.get(JobId("cut.mp4", uploaded.etag, "smaller"))
        assert record is not None and record.state is JobState.DONE, record
        assert record.pieces_planned == 6  # 5 video pieces of 2 s and the audio, as the index promised
        assert record.note == "the upload is truncated: 4.9 s of 10.0 s could be read; converted what was there"
        joined = tmp_path / "joined.mp4"
        svc.store.get_file(OUT, "cut.mp4", joined)
        whole = convert_file(cut, tmp_path, svc.config.rendition("smaller"), limits=svc.config.limits).files[0].path
        got, expected = media(joined), media(whole)
        assert abs(got["frames"] - expected["frames"]) <= 2 and abs(got["duration"] - expected["duration"]) < 0.1
        logs = [line.message for line in svc.jobs.logs("cut.mp4")]
        assert [m.split(" encoded")[0] for m in logs if "(0 frames)" in m] == ["piece 4 of 5", "piece 5 of 5"]
    finally:
        svc.close()


def test_a_newer_upload_stops_a_piece_while_its_ffmpeg_runs(
    chunked: Services, sample_clip: Any, tmp_path: Path
) -> None:
    import threading
    import time

    from tests.conftest import wait_until
    from tests.integration.test_pipeline import slow_ffmpeg

    old = chunked.store.put_file(IN, "replaced.mp4", sample_clip(width=320, height=180, seconds=6))
    smaller = chunked.config.rendition("smaller")  # a fixed CRF: the first FFmpeg run is the first piece's
    worker = Worker(chunked, smaller, ffmpeg=slow_ffmpeg(tmp_path, 60))  # which sleeps a minute first
    thread = threading.Thread(target=worker.run, kwargs={"exit_when_idle": True})
    thread.start()
    try:
        wait_until(lambda: (tmp_path / "ffmpeg.pid").exists(), 30, message="the first piece's FFmpeg to start")
        replaced_at = time.monotonic()
        new = chunked.store.put_file(IN, "replaced.mp4", sample_clip(width=320, height=180, seconds=1))
        old_job = JobId("replaced.mp4", old.etag, "smaller")
        wait_until(lambda: chunked.jobs.get(old_job).state.terminal, 30, message="the old job")  # type: ignore[union-attr]
        assert time.monotonic() - replaced_at < 15  # the watch's pace (a third of the 5 s lease), not the minute
        thread.join(timeout=60)
    finally:
        worker.stop.set()
        thread.join(timeout=30)
    record = chunked.jobs.get(old_job)
    assert record is not None and record.note.startswith("superseded") and record.pieces_done == 0
    assert chunked.jobs.get(JobId("replaced.mp4", new.etag, "smaller")).state is JobState.DONE  # type: ignore[union-attr]
    output = chunked.store.head(OUT, "replaced.mp4")
    assert output is not None and output.metadata["source-etag"] == new.etag
    logs = [line.message for line in chunked.jobs.logs("replaced.mp4")]
    assert any("piece 1 of 3: the upload was replaced while FFmpeg ran: stopped early" in m for m in logs)
