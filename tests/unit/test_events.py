"""S3-shaped ObjectCreated events: the exact JSON S3 sends, and parsing it back."""

from __future__ import annotations

import itertools
import json
import types
from typing import Any

import pytest

from videoconverter import events
from videoconverter.errors import InvalidEventError, PermanentError
from videoconverter.events import ObjectCreated, new_sequencer, object_created_event, parse_event


def make(key: str = "clip.mp4", **kwargs: Any) -> ObjectCreated:
    values: dict[str, Any] = {
        "bucket": "videoconverter-input",
        "key": key,
        "size": 1234,
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "sequencer": "0055AED6DCD90281E5",
        **kwargs,
    }
    return ObjectCreated(**values)


def body(record: ObjectCreated) -> str:
    return json.dumps(object_created_event(record))


# --- building ------------------------------------------------------------------------------------------------


def test_object_created_event_has_the_s3_shape() -> None:
    document = object_created_event(make("red flower+1.mp4"), region="eu-west-1")
    assert list(document) == ["Records"]
    assert len(document["Records"]) == 1
    record = document["Records"][0]
    assert record["eventVersion"] == "2.1"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventTime"].endswith("Z")
    s3 = record["s3"]
    assert s3["s3SchemaVersion"] == "1.0"
    assert s3["bucket"]["name"] == "videoconverter-input"
    assert s3["bucket"]["arn"] == "arn:aws:s3:::videoconverter-input"
    assert s3["object"] == {
        "key": "red+flower%2B1.mp4",
        "size": 1234,
        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
        "sequencer": "0055AED6DCD90281E5",
    }


def test_event_time_format() -> None:
    auto = object_created_event(make())["Records"][0]["eventTime"]
    # 2024-01-02T03:04:05.678Z, as S3 writes it: milliseconds and a Z.
    assert len(auto) == 24
    assert auto[10] == "T"
    assert auto[19] == "."
    fixed = object_created_event(make(event_time="2020-01-01T00:00:00.000Z"))
    assert fixed["Records"][0]["eventTime"] == "2020-01-01T00:00:00.000Z"


def test_slashes_in_keys_are_not_encoded() -> None:
    key = object_created_event(make("a b/c/d.mp4"))["Records"][0]["s3"]["object"]["key"]
    assert key == "a+b/c/d.mp4"


def test_event_is_json_serialisable_with_unicode_key() -> None:
    text = body(make("vidéo 日本.mp4"))
    assert "vid%C3%A9o+%E6%97%A5%E6%9C%AC.mp4" in text


# --- parsing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "clip.mp4",
        "red flower.mp4",
        "red flower+1.mp4",
        "literal%2B.mp4",
        "100% done.mp4",
        "vidéo/日本語 ファイル.mp4",
        "-rf.mp4",
        "--help.mp4",
        'it\'s "quoted".mp4',
        "a/b/c.mp4",
        "a&b=c?d#e.mp4",
        "emoji 🎬.mp4",
    ],
)
def test_parse_round_trips_keys(key: str) -> None:
    original = make(key)
    (parsed,) = parse_event(body(original))
    assert parsed.key == key
    assert parsed.bucket == original.bucket
    assert parsed.size == original.size
    assert parsed.etag == original.etag
    assert parsed.sequencer == original.sequencer
    assert parsed.event_name == "ObjectCreated:Put"


def test_parse_decodes_plus_as_space_and_percent_2b_as_plus() -> None:
    document = object_created_event(make())
    document["Records"][0]["s3"]["object"]["key"] = "red+flower%2B1.mp4"
    (parsed,) = parse_event(json.dumps(document))
    assert parsed.key == "red flower+1.mp4"


def test_parse_strips_quotes_around_etag() -> None:
    (parsed,) = parse_event(body(make(etag='"abc"')))
    assert parsed.etag == "abc"


def test_parse_sns_envelope() -> None:
    envelope = {
        "Type": "Notification",
        "MessageId": "1",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:videoconverter-topic",
        "Message": body(make("in sns+.mp4")),
    }
    (parsed,) = parse_event(json.dumps(envelope))
    assert parsed.key == "in sns+.mp4"
    assert parsed.bucket == "videoconverter-input"


def test_sns_envelope_with_bad_message_is_invalid() -> None:
    envelope = {"Type": "Notification", "Message": "not json"}
    with pytest.raises(InvalidEventError, match="SNS Message"):
        parse_event(json.dumps(envelope))


def test_test_event_gives_no_records() -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-01-01T00:00:00.000Z",
        "Bucket": "videoconverter-input",
    }
    assert parse_event(json.dumps(test_event)) == []


def test_test_event_in_sns_envelope_gives_no_records() -> None:
    inner = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    assert parse_event(json.dumps({"Type": "Notification", "Message": inner})) == []


def test_other_event_types_are_skipped() -> None:
    removed = object_created_event(make("gone.mp4", event_name="ObjectRemoved:Delete"))["Records"][0]
    created = object_created_event(make("kept.mp4"))["Records"][0]
    parsed = parse_event(json.dumps({"Records": [removed, created]}))
    assert [p.key for p in parsed] == ["kept.mp4"]


def test_only_removals_gives_no_records() -> None:
    assert parse_event(body(make(event_name="ObjectRemoved:Delete"))) == []


def test_multipart_upload_is_accepted() -> None:
    (parsed,) = parse_event(body(make(event_name="ObjectCreated:CompleteMultipartUpload")))
    assert parsed.event_name == "ObjectCreated:CompleteMultipartUpload"


def test_several_records() -> None:
    records = [object_created_event(make(f"{i}.mp4"))["Records"][0] for i in range(3)]
    assert [p.key for p in parse_event(json.dumps({"Records": records}))] == ["0.mp4", "1.mp4", "2.mp4"]


def test_empty_records_list() -> None:
    assert parse_event('{"Records": []}') == []


def _without_key() -> str:
    document = object_created_event(make())
    del document["Records"][0]["s3"]["object"]["key"]
    return json.dumps(document)


def _without_bucket() -> str:
    document = object_created_event(make())
    del document["Records"][0]["s3"]["bucket"]
    return json.dumps(document)


def _bad_size() -> str:
    document = object_created_event(make())
    document["Records"][0]["s3"]["object"]["size"] = "big"
    return json.dumps(document)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "",
        "{",
        "[1, 2]",
        '"a string"',
        "null",
        "{}",
        '{"Records": "nope"}',
        '{"Records": ["not a record"]}',
        '{"Records": [{"eventName": "ObjectCreated:Put"}]}',
        _without_key(),
        _without_bucket(),
        _bad_size(),
        json.dumps({"Type": "Notification", "Message": 5}),
    ],
)
def test_invalid_events_raise(text: str) -> None:
    with pytest.raises(InvalidEventError):
        parse_event(text)


def test_invalid_event_is_permanent() -> None:
    with pytest.raises(PermanentError):
        parse_event("[]")


def test_invalid_json_message_mentions_position() -> None:
    with pytest.raises(InvalidEventError, match="not valid JSON"):
        parse_event("{oops")


# --- sequencers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mine", "other", "newer"),
    [
        ("0055AED6DCD90281E6", "0055AED6DCD90281E5", True),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6", False),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E5", False),
        # Different lengths: the shorter is right-padded with zeros before comparing.
        ("0055AED6DCD90281E5", "0055AED6DCD90281", True),
        ("0055AED6DCD90281", "0055AED6DCD90281E5", False),
        ("0055AED6DCD90281", "0055AED6DCD9028100", False),  # equal once padded
        ("0056", "0055AED6DCD90281E5", True),  # numerically smaller, yet newer: not compared as numbers
        ("0055AED6DCD90281E5", "0056", False),
        # Case does not matter.
        ("0055aed6dcd90281e6", "0055AED6DCD90281E5", True),
        ("0055AED6DCD90281E5", "0055aed6dcd90281e6", False),
    ],
)
def test_is_newer_than(mine: str, other: str, newer: bool) -> None:
    assert make(sequencer=mine).is_newer_than(other) is newer


def test_new_sequencer_grows() -> None:
    values = [new_sequencer() for _ in range(1000)]
    assert all(int(v, 16) >= 0 for v in values)  # hex
    assert all(len(v) == len(values[0]) for v in values)
    for earlier, later in itertools.pairwise(values):
        assert make(sequencer=later).is_newer_than(earlier)


def test_new_sequencer_grows_even_if_the_clock_stands_still_or_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([2_000_000_000_000_000_000, 2_000_000_000_000_000_000, 1_000_000_000_000_000_000])
    monkeypatch.setattr(events, "time", types.SimpleNamespace(time_ns=lambda: next(clock)))
    monkeypatch.setattr(events, "_last_sequencer_ns", 0)  # restored afterwards: later tests see the real clock
    first, second, third = new_sequencer(), new_sequencer(), new_sequencer()
    assert make(sequencer=second).is_newer_than(first)
    assert make(sequencer=third).is_newer_than(second)
