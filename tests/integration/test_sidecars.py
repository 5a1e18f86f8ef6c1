"""Sidecar captions through the pipeline: uploaded before the video they go into its conversion; after it they
are added to the published output without encoding again; a bad one never fails the video."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest

from tests.aws import pipeline_on
from videoconverter.events import ObjectCreated, new_sequencer
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services
from videoconverter.sidecars import NO_VIDEO_NOTE, Gathered
from videoconverter.transcode.captions import MAX_CAPTION_BYTES
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg
INPUT, HLS, MP4 = "videoconverter-input", "videoconverter-output-hls", "videoconverter-output-small"
SRT = b"1\r\n00:00:00,500 --> 00:00:01,500\r\nHello sidecar\r\n\r\n2\r\n00:00:01,600 --> 00:00:01,900\r\nBye\r\n"
VTT = b"WEBVTT\n\n00:00.200 --> 00:01.000\nBonjour\n"
NOT_UTF8 = b"1\n00:00:00,500 --> 00:00:01,500\nGr\xfc\xdfe\n"


@pytest.fixture(params=["sqlite", "aws"])
def caption_svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """A pipeline with a one-rung ladder, a small MP4 and thumbnails, on the file store + SQLite and on
    S3 + SQS (moto). Retries come at once, so a sidecar waiting for its video's job retries in the same run."""
    toml = (
        f'data_dir = "{tmp_path / "data"}"\n[queues]\nreceive_wait_seconds = 1\nretry_base_delay_seconds = 0\n'
        '[[renditions]]\nname = "hls"\nkind = "hls"\nladder = [120]\npreset = "ultrafast"\n'
        "segment_seconds = 2\nkeyframe_interval_seconds = 1\n"
        '[[renditions]]\nname = "small"\nshort_side = 90\nx264_preset = "ultrafast"\n'
        '[[renditions]]\nname = "thumbs"\nkind = "thumbnails"\nthumbnail_interval_seconds = 1\nthumbnail_width = 64\n'
    )
    services = pipeline_on(request, tmp_path, toml)
    yield services
    services.close()


def put(svc: Services, key: str, data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return svc.store.put_file(INPUT, key, path).etag


def text(svc: Services, bucket: str, key: str) -> str:
    return b"".join(svc.store.read_range(bucket, key, 0, 10_000_000)).decode()


def objects(svc: Services, bucket: str, prefix: str) -> dict[str, tuple[str, float]]:
    return {o.key: (o.etag, o.last_modified) for o in svc.store.list(bucket, prefix)}


def convert(svc: Services, name: str) -> int:
    return Worker(svc, svc.config.rendition(name)).run(exit_when_idle=True)


def package(svc: Services, key: str) -> dict[str, object]:
    marker = svc.store.head(HLS, f"{key}/master.m3u8")
    assert marker is not None
    return dict(json.loads(text(svc, HLS, f"{key}/{marker.metadata['output-version']}/package.json")))


def test_a_sidecar_before_the_video_joins_its_package(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    svc = caption_svc
    caption_etag = put(svc, "talks/talk.en.srt", SRT, tmp_path)
    convert(svc, "hls")
    alone = svc.jobs.get(JobId("talks/talk.en.srt", caption_etag, "hls"))
    assert alone is not None and alone.state is JobState.DONE and alone.note == NO_VIDEO_NOTE
    video = svc.store.put_file(INPUT, "talks/talk.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "hls")
    job = svc.jobs.get(JobId("talks/talk.mp4", video.etag, "hls"))
    assert job is not None and job.state is JobState.DONE
    master = text(svc, HLS, "talks/talk.mp4/master.m3u8")
    assert "TYPE=SUBTITLES" in master and 'LANGUAGE="en"' in master
    [subtitle] = package(svc, "talks/talk.mp4")["subtitles"]  # type: ignore[misc]
    assert subtitle["origin"] == "talks/talk.en.srt"
    version = package(svc, "talks/talk.mp4")["version"]
    vtt = text(svc, HLS, f"talks/talk.mp4/{version}/subs/{subtitle['name']}/captions.vtt")
    assert vtt.startswith("WEBVTT") and "Hello sidecar" in vtt and "00:00:00.500 --> 00:00:01.500" in vtt


def test_a_sidecar_uploaded_with_the_video_is_added_once(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    """Both events are queued at once, handled in either order (SQS keeps none): the video's job takes the
    sidecar in, and the sidecar's job writes nothing, whether it ran before or after the video's."""
    svc = caption_svc
    caption_etag = put(svc, "a.fr.vtt", VTT, tmp_path)
    svc.store.put_file(INPUT, "a.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "hls")
    caption_job = svc.jobs.get(JobId("a.fr.vtt", caption_etag, "hls"))
    assert caption_job is not None and caption_job.state is JobState.DONE
    assert caption_job.note in {
        "a.mp4 already carries this caption (event delivered again)",
        "the job of a.mp4 is queued: it takes this caption in, or queues it once done",
    }
    assert [s["language"] for s in package(svc, "a.mp4")["subtitles"]] == ["fr"]  # type: ignore[attr-defined]


def test_the_video_job_queues_a_sidecar_its_listing_missed(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidecar's job ran while the video's was running (done at once), and the video's job listed the
    sidecars before this one arrived: once done, the video's job sends the sidecar's event again."""
    import videoconverter.worker

    svc = caption_svc
    caption_etag = put(svc, "late.en.srt", SRT, tmp_path)
    for delivery in svc.broker.receive("videoconverter_hls", max_messages=10, wait_seconds=2):
        svc.broker.ack(delivery)  # its job was done before the video's ended
    monkeypatch.setattr(videoconverter.worker, "gather_sidecars", lambda *args: Gathered())  # listed too early
    video = svc.store.put_file(INPUT, "late.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "hls")
    assert svc.jobs.get(JobId("late.mp4", video.etag, "hls")).state is JobState.DONE  # type: ignore[union-attr]
    lines = [line.message for line in svc.jobs.logs("late.mp4") if line.rendition == "hls"]
    assert "caption late.en.srt arrived during the conversion: queued to be added" in lines
    caption_job = svc.jobs.get(JobId("late.en.srt", caption_etag, "hls"))
    assert caption_job is not None and caption_job.state is JobState.DONE
    assert caption_job.note == "caption added to late.mp4"
    assert 'LANGUAGE="en"' in text(svc, HLS, "late.mp4/master.m3u8")


def test_a_sidecar_after_the_video_writes_only_text_files_and_manifests(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    svc = caption_svc
    svc.store.put_file(INPUT, "b.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "hls")
    before = objects(svc, HLS, "b.mp4/")
    master_before = text(svc, HLS, "b.mp4/master.m3u8")
    assert "SUBTITLES" not in master_before
    caption_etag = put(svc, "b.srt", SRT, tmp_path)
    convert(svc, "hls")
    job = svc.jobs.get(JobId("b.srt", caption_etag, "hls"))
    assert job is not None and job.state is JobState.DONE and job.note == "caption added to b.mp4"
    assert job.output_url == svc.store.url(HLS, "b.mp4/master.m3u8")
    after = objects(svc, HLS, "b.mp4/")
    media = [k for k in before if k.endswith((".m4s", ".mp4"))]
    assert media and all(after[k] == before[k] for k in media), "no segment or init section was written again"
    added = sorted(set(after) - set(before))
    version = package(svc, "b.mp4")["version"]
    subs = f"b.mp4/{version}/subs/s0-und"
    assert added == [f"{subs}/captions.vtt", f"{subs}/index.m3u8"]
    master = text(svc, HLS, "b.mp4/master.m3u8")
    assert f'URI="{version}/subs/s0-und/index.m3u8"' in master and 'SUBTITLES="' in master
    manifest = json.loads(text(svc, HLS, f"b.mp4/{version}/files.json"))
    assert {f"{version}/subs/s0-und/captions.vtt", f"{version}/subs/s0-und/index.m3u8"} <= set(manifest["files"])
    assert "Hello sidecar" in text(svc, HLS, f"{subs}/captions.vtt")

    # Delivered again: nothing is written.
    record = svc.store.head(INPUT, "b.srt")
    assert record is not None
    svc.ingest.on_object_created(ObjectCreated(INPUT, "b.srt", record.size, record.etag, new_sequencer()))
    convert(svc, "hls")
    assert objects(svc, HLS, "b.mp4/") == after

    # A newer version of the sidecar replaces the older one under the same name.
    put(svc, "b.srt", SRT.replace(b"Hello sidecar", b"Hello again"), tmp_path)
    convert(svc, "hls")
    assert sorted(set(objects(svc, HLS, "b.mp4/")) - set(before)) == added
    assert "Hello again" in text(svc, HLS, f"{subs}/captions.vtt")
    assert len(package(svc, "b.mp4")["subtitles"]) == 1  # type: ignore[arg-type]
    assert all(objects(svc, HLS, "b.mp4/")[k] == before[k] for k in media)


def test_a_bad_sidecar_before_the_video_is_refused_in_its_log_and_the_video_is_done(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    svc = caption_svc
    put(svc, "c.de.srt", NOT_UTF8, tmp_path)
    put(svc, "c.fr.vtt", b"WEBVTT\n\n" + b"x" * MAX_CAPTION_BYTES, tmp_path)
    put(svc, "c.en.srt", SRT, tmp_path)
    video = svc.store.put_file(INPUT, "c.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "hls")
    job = svc.jobs.get(JobId("c.mp4", video.etag, "hls"))
    assert job is not None and job.state is JobState.DONE
    assert "caption c.de.srt refused: " in job.note and "not UTF-8" in job.note
    assert f"caption c.fr.vtt refused: {MAX_CAPTION_BYTES + 8} bytes; a caption file may have" in job.note
    lines = [line.message for line in svc.jobs.logs("c.mp4") if line.rendition == "hls"]
    assert any(m.startswith("caption c.de.srt refused: ") and "not UTF-8" in m for m in lines)
    assert [s["language"] for s in package(svc, "c.mp4")["subtitles"]] == ["en"]  # type: ignore[attr-defined]


def test_a_bad_sidecar_after_the_video_fails_its_own_job_and_leaves_the_video(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    svc = caption_svc
    svc.store.put_file(INPUT, "d.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "hls")
    before = objects(svc, HLS, "d.mp4/")
    caption_etag = put(svc, "d.srt", b"1\n00:00:00,500 --> 00:00:99,500\nbroken\n", tmp_path)
    convert(svc, "hls")
    job = svc.jobs.get(JobId("d.srt", caption_etag, "hls"))
    assert job is not None and job.state is JobState.FAILED and "timestamp" in job.error
    assert objects(svc, HLS, "d.mp4/") == before


def test_a_sidecar_after_an_mp4_is_remuxed_in_without_encoding(
    caption_svc: Services, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    svc = caption_svc
    svc.store.put_file(INPUT, "e.mp4", sample_clip(width=320, height=180, seconds=2))
    convert(svc, "small")
    first = tmp_path / "first.mp4"
    svc.store.get_file(MP4, "e.mp4", first)
    caption_etag = put(svc, "e.en.srt", SRT, tmp_path)
    convert(svc, "small")
    job = svc.jobs.get(JobId("e.en.srt", caption_etag, "small"))
    assert job is not None and job.state is JobState.DONE and job.output_url == svc.store.url(MP4, "e.mp4")
    second = tmp_path / "second.mp4"
    marker = svc.store.get_file(MP4, "e.mp4", second)
    assert marker.metadata["source-etag"] == svc.store.head(INPUT, "e.mp4").etag  # type: ignore[union-attr]
    with av.open(str(first)) as a, av.open(str(second)) as b:
        assert len(a.streams.subtitles) == 0 and len(b.streams.subtitles) == 1
        assert [bytes(p) for p in a.demux(a.streams.video[0]) if p.size] == [
            bytes(p) for p in b.demux(b.streams.video[0]) if p.size
        ], "the video is copied, not encoded again"


def test_thumbnails_ignore_sidecars(caption_svc: Services, tmp_path: Path) -> None:
    svc = caption_svc
    etag = put(svc, "f.srt", SRT, tmp_path)
    assert svc.jobs.get(JobId("f.srt", etag, "thumbs")) is None  # no job queued there
    assert svc.jobs.get(JobId("f.srt", etag, "hls")) is not None
    assert convert(svc, "thumbs") == 1  # its event is taken off the queue
    assert svc.jobs.get(JobId("f.srt", etag, "thumbs")) is None
    assert not list(svc.store.list("videoconverter-output-thumbs"))
