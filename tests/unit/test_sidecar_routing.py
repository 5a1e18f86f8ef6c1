"""Sidecar captions as events: the caption suffixes, which renditions get a job, the marker's sidecar list."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cloudformation import load_template
from videoconverter.config import Config, load_config
from videoconverter.errors import ConfigError
from videoconverter.events import ObjectCreated
from videoconverter.ingest import Ingest
from videoconverter.jobs.base import JobId
from videoconverter.jobs.sqlite import SQLiteJobStore
from videoconverter.pipeline import provision_plan
from videoconverter.sidecars import SIDECAR_METADATA, sidecar_word, with_sidecar

RENDITIONS = (
    '[[renditions]]\nname = "hls"\nkind = "hls"\nladder = [120]\n'
    '[[renditions]]\nname = "small"\nshort_side = 90\n'
    '[[renditions]]\nname = "plain"\nshort_side = 90\ncaptions = false\n'
    '[[renditions]]\nname = "thumbs"\nkind = "thumbnails"\n'
)


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "videoconverter.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(environ={}, path=path)


def test_caption_suffixes_default_to_vtt_and_srt_and_are_announced_with_the_videos() -> None:
    config = load_config(environ={})
    assert config.caption_suffixes == (".vtt", ".srt")
    assert config.event_suffixes == (".mp4", ".vtt", ".srt")


@pytest.mark.parametrize("key", ["talk.vtt", "dir/talk.en.SRT", "a b/talk.pt-BR.srt"])
def test_a_sidecar_is_accepted_and_routed_only_to_renditions_that_carry_captions(tmp_path: Path, key: str) -> None:
    config = load(tmp_path, RENDITIONS)
    assert config.accepts(config.input_bucket, key) and not config.is_input(config.input_bucket, key)
    assert not config.accepts("another-bucket", key)
    assert [r.name for r in config.renditions_for(key)] == ["hls", "small"]


def test_a_video_goes_to_every_rendition_and_other_keys_to_none(tmp_path: Path) -> None:
    config = load(tmp_path, RENDITIONS)
    assert [r.name for r in config.renditions_for("talk.MP4")] == ["hls", "small", "plain", "thumbs"]
    assert config.renditions_for("notes.txt") == ()
    assert not config.accepts(config.input_bucket, "notes.txt")


def test_caption_suffixes_are_configured_and_may_be_empty(tmp_path: Path) -> None:
    config = load(tmp_path, '[input]\ncaption_suffixes = [".ass"]\n' + RENDITIONS)
    assert [r.name for r in config.renditions_for("talk.ASS")] == ["hls", "small"]
    assert config.renditions_for("talk.srt") == ()
    assert load(tmp_path, "[input]\ncaption_suffixes = []\n").event_suffixes == (".mp4",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[input]\ncaption_suffixes = ".srt"\n', "input.caption_suffixes"),
        ('[input]\ncaption_suffixes = [""]\n', "input.caption_suffixes"),
        ('[input]\nsuffixes = [".mp4", ".vtt"]\n', "input.caption_suffixes: .vtt cannot be a video and a caption"),
    ],
)
def test_bad_caption_suffixes_name_the_field(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    assert message in str(info.value)


class RecordingBroker:
    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, topic: str, body: str) -> None:
        self.published.append(topic)


def test_the_ingest_queues_a_sidecar_only_where_it_has_a_job(tmp_path: Path) -> None:
    config = load(tmp_path, RENDITIONS)
    jobs = SQLiteJobStore(tmp_path / "jobs.sqlite3")
    broker = RecordingBroker()
    Ingest(config, broker, jobs).on_object_created(ObjectCreated(config.input_bucket, "a.en.srt", 10, "e1", "s1"))  # type: ignore[arg-type]
    assert broker.published == [config.topic]
    assert [r.name for r in config.renditions if jobs.get(JobId("a.en.srt", "e1", r.name))] == ["hls", "small"]
    jobs.close()


def test_the_marker_lists_each_sidecar_once_at_its_latest_etag() -> None:
    metadata = with_sidecar({"source-etag": "v"}, "a b.srt", "e1")
    metadata = with_sidecar(metadata, "a b.en.srt", "e2")
    metadata = with_sidecar(metadata, "a b.srt", "e3")
    assert metadata[SIDECAR_METADATA].split() == [sidecar_word("a b.en.srt", "e2"), sidecar_word("a b.srt", "e3")]
    assert metadata["source-etag"] == "v"
    assert sidecar_word("a.srt", "e1") != sidecar_word("b.srt", "e1")


def test_s3_notifies_the_topic_of_caption_uploads_too() -> None:
    aws = load_config(environ={"VIDEOCONVERTER_STORAGE": "s3://", "VIDEOCONVERTER_BROKER": "aws://"})
    [step] = [s for s in provision_plan(aws) if s.startswith("notification: s3:ObjectCreated:*")]
    assert "keys ending .mp4, .vtt, .srt" in step


def test_the_cloudformation_template_notifies_caption_uploads_in_both_cases() -> None:
    notifications = load_template()["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]
    for kind in ("TopicConfigurations", "LambdaConfigurations"):
        configurations = notifications[kind]["Fn::If"][1]
        values = {c["Filter"]["S3Key"]["Rules"][0]["Value"] for c in configurations}
        assert values == {".mp4", ".MP4", ".vtt", ".VTT", ".srt", ".SRT"}, kind
