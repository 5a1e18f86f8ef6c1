"""The original AWS topology end to end, against moto's server over HTTP: `videoconverter provision` sets up
S3 -> SNS -> SQS, `videoconverter up` runs the workers, and the real AWS CLI uploads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.aws import MotoServer, write_aws_config
from tests.conftest import free_port, interrupt
from videoconverter.config import Config, load_config
from videoconverter.transcode.probe import probe

pytestmark = [pytest.mark.ffmpeg, pytest.mark.slow]


def videoconverter(config_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config_path)}
    return subprocess.run(
        [sys.executable, "-m", "videoconverter", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def aws_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    aws = Path(sys.executable).with_name("aws")
    return subprocess.run(
        [str(aws), *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def config_path(moto_server: MotoServer, tmp_path: Path) -> Path:
    return write_aws_config(tmp_path / "videoconverter.toml", moto_server, tmp_path / "data")


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(environ={}, path=config_path)


@pytest.fixture
def running_pipeline(config_path: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`videoconverter provision`, then `videoconverter up` (stopped with SIGINT at the end)."""
    provisioned = videoconverter(config_path, "provision")
    assert provisioned.returncode == 0, provisioned.stderr
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config_path), "VIDEOCONVERTER_PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-m", "videoconverter", "up"], env=env, stderr=log, stdout=log)
    yield process
    interrupt(process)
    log.close()


def test_provision_sets_up_the_original_topology_and_is_idempotent(config_path: Path, config: Config) -> None:
    planned = videoconverter(config_path, "provision", "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    first = videoconverter(config_path, "provision", "--json")
    assert first.returncode == 0, first.stderr
    second = videoconverter(config_path, "provision", "--json")
    assert second.returncode == 0, second.stderr
    ensured = json.loads(first.stdout)["ensured"]
    assert ensured == json.loads(second.stdout)["ensured"] == json.loads(planned.stdout)["planned"]

    s3, sqs, sns = boto3.client("s3"), boto3.client("sqs"), boto3.client("sns")
    notification = s3.get_bucket_notification_configuration(Bucket=config.input_bucket)["TopicConfigurations"]
    # One configuration per case of each suffix (S3's filters are case-sensitive), videos' and sidecar
    # captions', not added again by the second run.
    rules = [r for c in notification for r in c["Filter"]["Key"]["FilterRules"]]
    expected = [".MP4", ".SRT", ".VTT", ".mp4", ".srt", ".vtt"]
    assert sorted((r["Name"].lower(), r["Value"]) for r in rules) == [("suffix", v) for v in expected]
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in notification)
    topic_arn = notification[0]["TopicArn"]
    assert topic_arn.endswith(f":{config.topic}")
    topic_policy = json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]["Policy"])
    condition = topic_policy["Statement"][0]["Condition"]
    assert condition["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{config.input_bucket}"
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert len(subscriptions) == len(config.renditions)
    for subscription in subscriptions:
        attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
        assert attributes["RawMessageDelivery"] == "true"
    for rendition in config.renditions:
        url = sqs.get_queue_url(QueueName=rendition.queue)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # S3's s3:TestEvent when notifications were turned on; an unchanged configuration was not put again.
        assert attributes["ApproximateNumberOfMessages"] == "1"
        dlq_url = sqs.get_queue_url(QueueName=rendition.dead_letter_queue)["QueueUrl"]
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == config.max_receive_count
        assert int(attributes["MessageRetentionPeriod"]) < int(dlq["MessageRetentionPeriod"]) == 14 * 24 * 3600
        assert int(attributes["VisibilityTimeout"]) == config.visibility_timeout_seconds
        policy = json.loads(attributes["Policy"])
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == topic_arn


def _make_large_clip(path: Path) -> Path:
    """A valid MP4 of about 10 MB (lossless noise), so that the AWS CLI uploads it in parts."""
    from videoconverter.transcode.runner import ffmpeg_executable

    subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", "3", "-vf", "noise=alls=60:allf=t",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_uploads_with_the_aws_cli_become_every_rendition(
    config_path: Path,
    config: Config,
    running_pipeline: subprocess.Popen[bytes],
    moto_server: MotoServer,
    small_clip: Path,
    tmp_path: Path,
) -> None:
    large = _make_large_clip(tmp_path / "large.mp4")
    assert large.stat().st_size > 6 * 1024 * 1024
    cli_config = tmp_path / "aws-cli-config"  # parts of 5 MiB (S3's minimum), so the large clip has several
    cli_config.write_text("[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n")
    uploads = {"holiday clip.mp4": small_clip, "large upload.mp4": large}
    for key, path in uploads.items():
        done = aws_cli(
            "s3",
            "cp",
            str(path),
            f"s3://{config.input_bucket}/{key}",
            "--endpoint-url",
            moto_server.endpoint_url,
            env={"AWS_CONFIG_FILE": str(cli_config)},
        )
        assert done.returncode == 0, done.stderr
    head = boto3.client("s3").head_object(Bucket=config.input_bucket, Key="large upload.mp4")
    assert head["ETag"].strip('"').endswith("-2"), "the large clip should have been uploaded in two parts"

    for key in uploads:
        waited = videoconverter(config_path, "jobs", key, "--wait", "120", "--json", timeout=150)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        jobs = json.loads(waited.stdout)["jobs"]
        assert {(j["rendition"], j["state"]) for j in jobs} == {("small", "done"), ("smaller", "done")}, jobs
    expected = {"small": (214, 120), "smaller": (160, 90)}
    for key in uploads:
        for rendition in config.renditions:
            local = tmp_path / f"{rendition.name}-{key}"
            copied = videoconverter(config_path, "cp", f"s3://{rendition.output_bucket}/{key}", str(local))
            assert copied.returncode == 0, copied.stderr
            media = probe(local, config.limits)
            assert media.display_size == expected[rendition.name] and media.video_codec == "h264"
    assert running_pipeline.poll() is None, "the workers should still be running"


def test_an_s3_compatible_store_feeds_the_embedded_broker(
    moto_server: MotoServer, tmp_path: Path, small_clip: Path
) -> None:
    """MinIO, Ceph or R2 with the SQLite broker: the uploading process publishes, as with the embedded store."""
    from videoconverter.jobs.base import JobState
    from videoconverter.pipeline import open_services, provision, settled
    from videoconverter.worker import Worker

    path = write_aws_config(tmp_path / "minio.toml", moto_server, tmp_path / "data")
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith(("broker", "jobs")))
    path.write_text(text)  # the default SQLite broker and job store under data_dir
    svc = open_services(load_config(environ={}, path=path))
    try:
        provision(svc)
        assert "TopicConfigurations" not in boto3.client("s3").get_bucket_notification_configuration(
            Bucket=svc.config.input_bucket
        )
        svc.store.put_file(svc.config.input_bucket, "clip.mp4", small_clip)
        assert {r.state for r in svc.jobs.find("clip.mp4")} == {JobState.QUEUED}
        for rendition in svc.config.renditions:
            Worker(svc, rendition).run(exit_when_idle=True)
        records, finished = settled(svc, "clip.mp4")
        assert finished and {r.state for r in records} == {JobState.DONE}
        for rendition in svc.config.renditions:
            assert svc.store.head(rendition.output_bucket, "clip.mp4") is not None
    finally:
        svc.close()
