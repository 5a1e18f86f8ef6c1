"""The Lambda handlers, fed real SQS event payloads built from messages that S3 -> SNS -> SQS delivered on
moto's server: partial batch failures, dead-lettering, and the publish function of the original design."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.aws import REGION, MotoServer, write_aws_config
from tests.conftest import wait_until
from videoconverter.config import load_config
from videoconverter.events import ObjectCreated, new_sequencer, object_created_event
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.serverless import handlers as aws_lambda
from videoconverter.transcode.runner import ffmpeg_executable

pytestmark = pytest.mark.ffmpeg


@pytest.fixture
def config_path(moto_server: MotoServer, tmp_path: Path) -> Path:
    # Whole jobs, whatever VIDEOCONVERTER_TEST_CHUNKING says: these tests count one record per job in a batch;
    # a split job through the handler has a test of its own below.
    return write_aws_config(tmp_path / "videoconverter.toml", moto_server, tmp_path / "data", split=False)


@pytest.fixture
def svc(config_path: Path) -> Iterator[Services]:
    services = open_services(load_config(environ={}, path=config_path))
    provision(services)
    yield services
    services.close()


def lambda_records(queue: str, count: int) -> list[dict[str, Any]]:
    """Receive ``count`` messages from ``queue`` and shape them as Lambda's SQS event source does."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages: list[dict[str, Any]] = []

    def received() -> bool:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        )  # fmt: skip
        messages.extend(got.get("Messages", []))
        return len(messages) >= count

    wait_until(received, 30, message=f"{count} messages on {queue}")
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
            "messageAttributes": {
                name: {
                    "stringValue": v["StringValue"],
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": v["DataType"],
                }
                for name, v in m.get("MessageAttributes", {}).items()
            },
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }
        for m in messages
    ]


def failing_ffmpeg(tmp_path: Path, fail_for: Path) -> str:
    """FFmpeg, except that it crashes on one particular source (compared by size): a transient failure."""
    script = tmp_path / "ffmpeg-failing-once"
    script.write_text(
        f"#!{sys.executable}\nimport os, sys\nsource = sys.argv[sys.argv.index('-i') + 1].removeprefix('file:')\n"
        f"if os.path.getsize(source) == {fail_for.stat().st_size}:\n"
        "    sys.stderr.write('simulated encoder crash\\n')\n    sys.exit(1)\n"
        f"os.execv({ffmpeg_executable()!r}, [{ffmpeg_executable()!r}] + sys.argv[1:])\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_batch_reports_only_the_record_that_should_come_back(
    svc: Services, small_clip: Path, other_clip: Path, tmp_path: Path
) -> None:
    config = svc.config
    rendition = config.rendition("small")
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n")
    good = svc.store.put_file(config.input_bucket, "good.mp4", small_clip)
    svc.store.put_file(config.input_bucket, "not a video.mp4", text)
    flaky = svc.store.put_file(config.input_bucket, "flaky.mp4", other_clip)
    # Three uploads, plus the s3:TestEvent that S3 sent when provision turned notifications on.
    records = lambda_records(rendition.queue, 4)
    by_key = {}
    for record in records:
        body = json.loads(record["body"])
        by_key[body["Records"][0]["s3"]["object"]["key"] if "Records" in body else body["Event"]] = record
    assert set(by_key) == {"good.mp4", "not+a+video.mp4", "flaky.mp4", "s3:TestEvent"}  # keys arrive URL-encoded

    result = aws_lambda.handle_sqs_batch(
        svc, {"Records": records}, ffmpeg=failing_ffmpeg(tmp_path, fail_for=other_clip)
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": by_key["flaky.mp4"]["messageId"]}]}
    assert svc.store.head(rendition.output_bucket, "good.mp4") is not None
    assert svc.jobs.get(JobId("good.mp4", good.etag, "small")).state is JobState.DONE  # type: ignore[union-attr]
    letters = svc.broker.dead_letters(rendition.queue)
    assert len(letters) == 1 and "not a video" in letters[0].body.replace("+", " ")
    assert letters[0].reason
    flaky_job = svc.jobs.get(JobId("flaky.mp4", flaky.etag, "small"))
    assert flaky_job is not None and flaky_job.state is JobState.QUEUED and "exit" in flaky_job.error.lower()
    # The failed record comes back (with the next attempt number); the others are gone from the queue.
    again = svc.broker.receive(rendition.queue, wait_seconds=5)
    assert [json.loads(d.body)["Records"][0]["s3"]["object"]["key"] for d in again] == ["flaky.mp4"]
    assert again[0].attempt == 2
    svc.broker.ack(again[0])
    assert svc.broker.depth(rendition.queue).total == 0


def test_a_record_from_an_unknown_queue_fails_alone(svc: Services) -> None:
    record = {
        "messageId": "m-1", "receiptHandle": "r-1", "body": "{}", "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:{REGION}:1:elsewhere",
    }  # fmt: skip
    assert aws_lambda.handle_sqs_batch(svc, {"Records": [record]}) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def test_the_publish_handler_fans_an_s3_event_out_and_records_queued_jobs(svc: Services, small_clip: Path) -> None:
    config = svc.config
    info = svc.store.put_file(config.input_bucket, "from lambda.mp4", small_clip)
    for rendition in config.renditions:  # drain what S3 itself published, to see only the handler's messages
        while got := svc.broker.receive(rendition.queue, max_messages=10, wait_seconds=1):
            for delivery in got:
                svc.broker.ack(delivery)
    upload = ObjectCreated(config.input_bucket, "from lambda.mp4", info.size, info.etag, new_sequencer())
    event = object_created_event(upload)
    ignored = {"Records": [{**event["Records"][0], "s3": {**event["Records"][0]["s3"], "object": {
        **event["Records"][0]["s3"]["object"], "key": "notes.txt"}}}]}  # fmt: skip

    assert aws_lambda.publish_uploads(svc, event) == {"published": 1}
    assert aws_lambda.publish_uploads(svc, ignored) == {"published": 0}
    assert aws_lambda.publish_uploads(svc, {"Service": "Amazon S3", "Event": "s3:TestEvent"}) == {"published": 0}
    for rendition in config.renditions:
        got = svc.broker.receive(rendition.queue, wait_seconds=5)
        assert [json.loads(d.body)["Records"][0]["s3"]["object"]["key"] for d in got] == ["from+lambda.mp4"]
        job = svc.jobs.get(JobId("from lambda.mp4", info.etag, rendition.name))
        assert job is not None and job.state is JobState.QUEUED


def test_the_lambda_entry_point_reads_its_configuration_from_the_environment(
    config_path: Path, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEOCONVERTER_CONFIG", str(config_path))
    aws_lambda._services.cache_clear()
    try:
        test_event = lambda_records(svc.config.rendition("smaller").queue, 1)  # the s3:TestEvent
        assert aws_lambda.transcode_handler({"Records": test_event}, None) == {"batchItemFailures": []}
        assert svc.broker.depth(svc.config.rendition("smaller").queue).total == 0
    finally:
        aws_lambda._services().close()
        aws_lambda._services.cache_clear()


def test_a_split_job_runs_its_pieces_and_its_join_as_lambda_invocations(
    moto_server: MotoServer, sample_clip: Any, tmp_path: Path
) -> None:
    path = write_aws_config(tmp_path / "split.toml", moto_server, tmp_path / "data", split=True)
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        rendition = svc.config.rendition("smaller")
        uploaded = svc.store.put_file(
            svc.config.input_bucket, "long.mp4", sample_clip(width=320, height=180, seconds=4)
        )
        job = JobId("long.mp4", uploaded.etag, "smaller")
        steps = [("the split", 2), ("two video pieces and the audio", 3), ("the join", 1)]  # first: + s3:TestEvent
        for step, count in steps:  # each step's messages in one invocation, as Lambda's batches may hold them
            assert aws_lambda.handle_sqs_batch(svc, {"Records": lambda_records(rendition.queue, count)}) == {
                "batchItemFailures": []
            }, step
        record = svc.jobs.get(job)
        assert record is not None and record.state is JobState.DONE, record
        assert (record.pieces_done, record.pieces_planned) == (3, 3)
        output = svc.store.head(rendition.output_bucket, "long.mp4")
        assert output is not None and output.metadata["source-etag"] == uploaded.etag
        assert not list(svc.store.list(rendition.output_bucket, ".chunks/"))  # the work area deleted
        assert svc.broker.depth(rendition.queue).total == 0
    finally:
        svc.close()
