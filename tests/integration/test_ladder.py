"""Multi-file outputs with real FFmpeg. HLS ladders: valid playlists, segments cut on the same keyframes in
every rung (video only; the audio its own rendition), the master playlist published last; thumbnails' index
last; both through the pipeline."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest

from tests.aws import pipeline_on
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services
from videoconverter.renditions import default_rendition
from videoconverter.transcode.ladder import MASTER
from videoconverter.transcode.playlists import parse_media_playlist
from videoconverter.transcode.produce import convert_file
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg
LADDER = dataclasses.replace(
    default_rendition(180, kind="hls"),
    ladder=(120, 180),
    preset="ultrafast",
    segment_seconds=2.0,
    keyframe_interval_seconds=1.0,
)


def master_entries(text: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) of each variant in a master playlist."""
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-INDEPENDENT-SEGMENTS" in lines
    entries = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(part.split("=", 1) for part in _split_attributes(line[len("#EXT-X-STREAM-INF:") :]))
            entries.append((attributes, lines[i + 1]))
    return entries


def _split_attributes(text: str) -> Iterator[str]:
    """Split on commas outside quotes (CODECS="avc1...,mp4a...")."""
    part, quoted = "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            yield part
            part = ""
        else:
            part += char
    yield part


def first_frame(init: bytes, segment: bytes) -> tuple[bool, float, tuple[int, int]]:
    """(is keyframe, time in seconds, size) of the first video packet of ``segment``, read with its init."""
    with av.open(io.BytesIO(init + segment), format="mp4") as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None:
                assert packet.time_base is not None
                return packet.is_keyframe, float(packet.pts * packet.time_base), (stream.width, stream.height)
    raise AssertionError("a segment without video")


@pytest.mark.parametrize("mode", ["one-decode", "per-rung"])
def test_rungs_cut_on_the_same_keyframes_and_the_playlists_are_valid(
    mode: str, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = sample_clip(width=320, height=180, seconds=5, frame_rate=30)
    produced = convert_file(source, tmp_path, dataclasses.replace(LADDER, ladder_mode=mode), version="v1")
    names = [f.name for f in produced.files]
    assert names[-1] == MASTER and names.count(MASTER) == 1  # the master is written last
    assert names[-2] == "manifest.mpd" and all(name.startswith("v1/") for name in names[:-2])
    entries = master_entries(produced.marker.path.read_text())
    assert [e[0]["RESOLUTION"] for e in entries] == ["214x120", "320x180"]  # lowest first
    starts: list[list[float]] = []
    for attributes, uri in entries:
        video_codec, audio_codec = attributes["CODECS"].strip('"').split(",")
        assert re.fullmatch(r"avc1\.[0-9a-f]{6}", video_codec) and audio_codec == "mp4a.40.2"
        assert attributes["FRAME-RATE"] == "30.000"
        rung_dir = produced.marker.path.parent / uri.split("/", 1)[1].rsplit("/", 1)[0]
        playlist = parse_media_playlist((rung_dir / "index.m3u8").read_text())
        durations = [s.duration_seconds for s in playlist.segments]
        assert durations[:-1] == [2.0] * (len(durations) - 1) and 0 < durations[-1] <= 2.0
        assert sum(durations) == pytest.approx(5.0, abs=0.1)
        init = (rung_dir / playlist.init_uri).read_bytes()
        width, height = (int(v) for v in attributes["RESOLUTION"].split("x"))
        frames = [first_frame(init, (rung_dir / s.uri).read_bytes()) for s in playlist.segments]
        assert all(keyframe for keyframe, _, _ in frames), "every segment starts on a keyframe"
        assert {size for _, _, size in frames} == {(width, height)}
        starts.append([t for _, t, _ in frames])
        peak, average = int(attributes["BANDWIDTH"]), int(attributes["AVERAGE-BANDWIDTH"])
        assert 0 < average <= peak
    assert starts[0] == pytest.approx(starts[1], abs=0.001), "segments begin at the same instants in each rung"
    assert starts[0] == pytest.approx([0.0, 2.0, 4.0], abs=0.05)


def test_rungs_above_the_source_are_skipped_and_said(sample_clip: Callable[..., Path], tmp_path: Path) -> None:
    source = sample_clip(width=320, height=180, seconds=1, frame_rate=30)
    rendition = dataclasses.replace(LADDER, ladder=(90, 180, 360, 720))
    produced = convert_file(source, tmp_path, rendition, version="v1")
    assert [e[0]["RESOLUTION"] for e in master_entries(produced.marker.path.read_text())] == ["160x90", "320x180"]
    assert produced.note.split("; ")[0] == "rungs above the 320x180 source skipped: 360p, 720p"  # then the CRFs


def test_a_source_smaller_than_every_rung_gets_one_rung_at_its_own_size(
    sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = sample_clip(width=160, height=90, seconds=1, frame_rate=30, audio=False)
    produced = convert_file(source, tmp_path, dataclasses.replace(LADDER, ladder=(120, 180)), version="v1")
    entries = master_entries(produced.marker.path.read_text())
    assert [e[0]["RESOLUTION"] for e in entries] == ["160x90"]
    assert "mp4a" not in entries[0][0]["CODECS"]  # no audio in the source, none announced


@pytest.fixture(params=["sqlite", "aws"])
def hls_svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """A pipeline whose one rendition is the ladder, on the file store + SQLite and on S3 + SQS (moto)."""
    toml = (
        f'data_dir = "{tmp_path / "data"}"\n[queues]\nreceive_wait_seconds = 1\n'
        '[[renditions]]\nname = "hls"\nkind = "hls"\nladder = [120, 180]\npreset = "ultrafast"\n'
        "segment_seconds = 2\nkeyframe_interval_seconds = 1\n"
        '[[renditions]]\nname = "thumbs"\nkind = "thumbnails"\nthumbnail_interval_seconds = 1\nthumbnail_width = 64\n'
    )
    services = pipeline_on(request, tmp_path, toml)
    yield services
    services.close()


def test_the_pipeline_publishes_a_ladder_and_replaces_it_whole(
    hls_svc: Services, sample_clip: Callable[..., Path]
) -> None:
    svc, bucket = hls_svc, "videoconverter-output-hls"
    rendition = svc.config.rendition("hls")
    first = svc.store.put_file("videoconverter-input", "trip/day 1.mp4", sample_clip(width=320, height=180, seconds=3))
    Worker(svc, rendition).run(exit_when_idle=True)
    record = svc.jobs.get(JobId("trip/day 1.mp4", first.etag, "hls"))
    assert record is not None and record.state is JobState.DONE
    assert record.output_url == svc.store.url(bucket, "trip/day 1.mp4/master.m3u8")
    master = svc.store.head(bucket, "trip/day 1.mp4/master.m3u8")
    assert master is not None and master.metadata["source-etag"] == first.etag
    first_keys = {o.key for o in svc.store.list(bucket, "trip/day 1.mp4/")}
    # master.m3u8, manifest.mpd, VERSION/files.json and package.json; per rung: init, 2 segments, playlist and
    # I-frame playlist; the audio: init, 2 segments, playlist
    assert len(first_keys) == 4 + 2 * (1 + 2 + 2) + (1 + 2 + 1)

    second = svc.store.put_file("videoconverter-input", "trip/day 1.mp4", sample_clip(width=320, height=180, seconds=5))
    Worker(svc, rendition).run(exit_when_idle=True)
    keys = {o.key for o in svc.store.list(bucket, "trip/day 1.mp4/")}
    manifests = {"trip/day 1.mp4/master.m3u8", "trip/day 1.mp4/manifest.mpd"}  # replaced in place
    assert keys.isdisjoint(first_keys - manifests), "the earlier version's files are gone"
    assert len(keys) == 4 + 2 * (1 + 3 + 2) + (1 + 3 + 1)
    text = b"".join(svc.store.read_range(bucket, "trip/day 1.mp4/master.m3u8", 0, 10_000)).decode()
    for _attributes, uri in master_entries(text):
        assert f"trip/day 1.mp4/{uri}" in keys
    for uri in re.findall(r'URI="([^"]+)"', text):  # the audio rendition and the I-frame playlists
        assert f"trip/day 1.mp4/{uri}" in keys
    head = svc.store.head(bucket, "trip/day 1.mp4/master.m3u8")
    assert head is not None and head.metadata["source-etag"] == second.etag


def test_the_pipeline_publishes_thumbnails_with_their_index_last(
    hls_svc: Services, sample_clip: Callable[..., Path]
) -> None:
    svc, bucket = hls_svc, "videoconverter-output-thumbs"
    uploaded = svc.store.put_file("videoconverter-input", "a.mp4", sample_clip(width=320, height=180, seconds=3))
    Worker(svc, svc.config.rendition("thumbs")).run(exit_when_idle=True)
    record = svc.jobs.get(JobId("a.mp4", uploaded.etag, "thumbs"))
    assert record is not None and record.state is JobState.DONE
    assert record.output_url == svc.store.url(bucket, "a.mp4/index.json")
    index_info = svc.store.head(bucket, "a.mp4/index.json")
    assert index_info is not None and index_info.metadata["source-etag"] == uploaded.etag
    index = json.loads(b"".join(svc.store.read_range(bucket, "a.mp4/index.json", 0, 100_000)))
    listed = {index["poster"]["name"], index["sprites"]["vtt"], *index["sprites"]["sheets"]}
    listed |= {item["name"] for item in index["thumbnails"]["items"]}
    assert len(index["thumbnails"]["items"]) == 3
    version = index_info.metadata["output-version"]
    expected = listed | {"index.json", f"{version}/files.json"}
    assert {o.key for o in svc.store.list(bucket, "a.mp4/")} == {f"a.mp4/{name}" for name in expected}


def test_a_new_version_removes_only_its_own_files_not_another_uploads_under_its_key(
    hls_svc: Services, sample_clip: Callable[..., Path]
) -> None:
    """`holiday.mp4/clip2.mp4` is a key of its own: converting `holiday.mp4` again must leave its outputs.

    Its source is deleted before `holiday.mp4` is uploaded, since a folder of files cannot hold a file and a
    folder of the same name (on S3 both could exist at once; the outputs are what matter).
    """
    svc, bucket, rendition = hls_svc, "videoconverter-output-thumbs", hls_svc.config.rendition("thumbs")
    nested = svc.store.put_file(
        "videoconverter-input", "holiday.mp4/clip2.mp4", sample_clip(width=320, height=180, seconds=3)
    )
    Worker(svc, rendition).run(exit_when_idle=True)
    svc.store.delete("videoconverter-input", "holiday.mp4/clip2.mp4")
    svc.store.put_file("videoconverter-input", "holiday.mp4", sample_clip(width=320, height=180, seconds=2))
    Worker(svc, rendition).run(exit_when_idle=True)
    nested_keys = {o.key for o in svc.store.list(bucket, "holiday.mp4/clip2.mp4/")}
    assert "holiday.mp4/clip2.mp4/index.json" in nested_keys and len(nested_keys) > 3
    first_version = svc.store.head(bucket, "holiday.mp4/index.json")
    assert first_version is not None

    svc.store.put_file("videoconverter-input", "holiday.mp4", sample_clip(width=320, height=180, seconds=4))
    Worker(svc, rendition).run(exit_when_idle=True)
    after = {o.key for o in svc.store.list(bucket, "holiday.mp4/")}
    assert nested_keys <= after, "the other upload's outputs are all still there"
    record = svc.jobs.get(JobId("holiday.mp4/clip2.mp4", nested.etag, "thumbs"))
    assert record is not None and record.state is JobState.DONE
    old_prefix = f"holiday.mp4/{first_version.metadata['output-version']}/"
    assert not [k for k in after if k.startswith(old_prefix)], "the earlier version's own files are gone"
