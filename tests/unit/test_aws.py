"""The pure parts of the AWS backend: URLs, policies, the notification configuration and the provision plan."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from videoconverter.aws.clients import AwsLocation
from videoconverter.aws.policies import topic_policy
from videoconverter.aws.provision import delivery_status_attributes, notification_configuration
from videoconverter.aws.settings import AwsSettings
from videoconverter.brokers.base import QueueSpec
from videoconverter.brokers.sqs_messages import delivery_of_record, source_retention_seconds
from videoconverter.config import load_config
from videoconverter.errors import ConfigError, InvalidEventError
from videoconverter.pipeline import provision_plan, server_side_notifications

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:videoconverter-topic"


def test_a_url_names_the_endpoint_and_region_else_the_environment_does(monkeypatch: pytest.MonkeyPatch) -> None:
    located = AwsLocation.from_url("dynamodb://jobs-table?endpoint_url=http://127.0.0.1:5000&region=eu-west-1")
    assert (located.name, located.endpoint_url, located.region) == ("jobs-table", "http://127.0.0.1:5000", "eu-west-1")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert AwsLocation.from_url("aws://") == AwsLocation("", None, "ap-south-1")
    monkeypatch.delenv("AWS_REGION")
    assert AwsLocation.from_url("s3://").region == "us-east-1"


def test_clients_made_in_many_threads_at_once_each_keep_their_endpoint_and_region() -> None:
    """The clients share one boto3 session (botocore's data loaded once), which must not be raced."""
    locations = [AwsLocation("", f"http://127.0.0.{i}:9", f"eu-west-{1 + i % 3}") for i in range(1, 13)]
    services = ["sqs", "s3", "sns", "dynamodb"] * 3
    with ThreadPoolExecutor(12) as pool:
        clients = list(pool.map(lambda at, service: at.client(service), locations, services))
    made = [(c.meta.service_model.service_name, c.meta.endpoint_url, c.meta.region_name) for c in clients]
    assert made == [(svc, at.endpoint_url, at.region) for svc, at in zip(services, locations, strict=True)]


def test_an_unknown_url_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        AwsLocation.from_url("s3://?endpoint=http://minio:9000")


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(3600, 3600), (14 * 86400, 12 * 86400), (10, 60)],
)
def test_a_source_queue_keeps_messages_less_long_than_its_dead_letter_queue(configured: int, expected: int) -> None:
    assert source_retention_seconds(QueueSpec("q", "q-dlq", configured, 5)) == expected


def test_the_topic_policy_lets_only_the_input_bucket_of_this_account_publish() -> None:
    statement = json.loads(topic_policy(TOPIC_ARN, "my-input"))["Statement"][0]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "SNS:Publish" and statement["Resource"] == TOPIC_ARN
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == "arn:aws:s3:::my-input"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"


def test_the_notification_replaces_ours_and_keeps_everyone_elses() -> None:
    theirs = {"Id": "their-lambda", "TopicArn": "arn:aws:sns:eu-west-1:1:other", "Events": ["s3:ObjectRemoved:*"]}
    existing = {
        "TopicConfigurations": [theirs, {"Id": "videoconverter-mov", "TopicArn": TOPIC_ARN, "Events": []}],
        "QueueConfigurations": [{"Id": "q", "QueueArn": "arn:aws:sqs:eu-west-1:1:q", "Events": []}],
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    result = notification_configuration(existing, TOPIC_ARN, (".mp4", ".MP4"))
    assert "ResponseMetadata" not in result
    assert result["QueueConfigurations"] == existing["QueueConfigurations"]
    topics = result["TopicConfigurations"]
    assert topics[0] == theirs
    assert [(t["Id"], t["Filter"]["Key"]["FilterRules"][0]["Value"]) for t in topics[1:]] == [
        ("videoconverter-mp4", ".mp4"),
        ("videoconverter-MP4", ".MP4"),
    ]
    assert all(t["Events"] == ["s3:ObjectCreated:*"] and t["TopicArn"] == TOPIC_ARN for t in topics[1:])


def test_only_s3_with_sns_wires_notifications_on_the_server() -> None:
    aws = load_config(environ={"VIDEOCONVERTER_STORAGE": "s3://", "VIDEOCONVERTER_BROKER": "aws://"})
    minio = load_config(environ={"VIDEOCONVERTER_STORAGE": "s3://?endpoint_url=http://minio:9000"})
    assert server_side_notifications(aws) and not server_side_notifications(minio)
    plan = provision_plan(aws)
    assert any(step.startswith("notification: s3:ObjectCreated:*") for step in plan)
    assert "keeps messages 1036800 s" in plan[4]  # SQS: 12 days, so that the dead-letter queue's 14 are longer
    assert not any(step.startswith("notification") for step in provision_plan(minio))


def test_a_lambda_record_becomes_the_delivery_a_worker_would_have_received() -> None:
    record = {
        "messageId": "sqs-id",
        "receiptHandle": "handle",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "messageAttributes": {"vc-message-id": {"stringValue": "ours", "dataType": "String"}},
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:videoconverter_720p",
    }
    delivery = delivery_of_record(record)
    assert (delivery.queue, delivery.message_id, delivery.receipt) == ("videoconverter_720p", "ours", "handle")
    assert (delivery.attempt, delivery.sent_at) == (2, 1_700_000_000.0)
    retried = {**record, "messageAttributes": {"vc-earlier-attempts": {"stringValue": "3", "dataType": "String"}}}
    assert (delivery_of_record(retried).attempt, delivery_of_record(retried).message_id) == (5, "sqs-id")
    with pytest.raises(InvalidEventError):
        delivery_of_record({"body": "{}"})


ROLE_ARN = "arn:aws:iam::123456789012:role/videoconverter-sns-delivery-status"


def test_delivery_status_logging_sets_each_protocols_role_and_sample_rate() -> None:
    # The attribute names of SNS's SetTopicAttributes (the SNS developer guide's "delivery status" topic).
    assert delivery_status_attributes(ROLE_ARN, 25) == {
        "SQSSuccessFeedbackRoleArn": ROLE_ARN,
        "SQSSuccessFeedbackSampleRate": "25",
        "SQSFailureFeedbackRoleArn": ROLE_ARN,
        "LambdaSuccessFeedbackRoleArn": ROLE_ARN,
        "LambdaSuccessFeedbackSampleRate": "25",
        "LambdaFailureFeedbackRoleArn": ROLE_ARN,
    }


def test_the_plan_logs_both_topics_deliveries_on_sns_with_a_role_and_says_it_skips_without_one() -> None:
    aws = {"VIDEOCONVERTER_BROKER": "aws://"}
    skipped = [s for s in provision_plan(load_config(environ=aws)) if s.startswith("delivery status")]
    assert skipped == [
        "delivery status logging: skipped for topics videoconverter-topic, videoconverter-notifications "
        "(no aws.delivery_status_role_arn configured)"
    ]
    with_role = replace(load_config(environ=aws), aws=AwsSettings(ROLE_ARN, 5))
    (step,) = [s for s in provision_plan(with_role) if s.startswith("delivery status")]
    assert "videoconverter-topic, videoconverter-notifications" in step and "5 %" in step and ROLE_ARN in step
    assert not [s for s in provision_plan(load_config(environ={})) if s.startswith("delivery status")]  # no SNS
