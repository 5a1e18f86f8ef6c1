"""`provision` on AWS turns on SNS delivery status logging for the upload and job-event topics, against moto's
server: the topics' attributes are read back from the server after it ran."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from tests.aws import MotoServer, write_aws_config
from videoconverter.config import Config, load_config
from videoconverter.pipeline import provision, provision_plan, services

TRUST_SNS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def configured(moto_server: MotoServer, tmp_path: Path, aws_table: str) -> Config:
    """The tiny pipeline on moto's server, plus ``aws_table``."""
    path = write_aws_config(tmp_path / "videoconverter.toml", moto_server, tmp_path / "data")
    path.write_text(path.read_text() + aws_table)
    return load_config(environ={}, path=path)


def topic_state(moto_server: MotoServer, topic_arn: str) -> dict[str, Any]:
    """What the server holds for the topic. moto keeps the delivery status attributes it is given but leaves
    them out of GetTopicAttributes, so they are read from its model data (attribute names in snake case).
    The first instance of the ARN since the reset is the topic: each later CreateTopic makes a candidate that
    moto drops."""
    with urllib.request.urlopen(f"{moto_server.endpoint_url}/moto-api/data.json", timeout=10) as response:
        topics = json.load(response)["sns"]["Topic"]
    topic = next(t for t in topics if t["arn"] == topic_arn)
    return {name: value for name, value in topic.items() if "feedback" in name}


def test_provision_logs_every_failed_and_a_sample_of_the_successful_deliveries_of_both_topics(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    # Reset: the job-events topic has its default name, and moto's model data must hold only this test's objects.
    moto_server.reset()
    role_arn = boto3.client("iam").create_role(
        RoleName=f"sns-delivery-status-{tmp_path.name[-20:]}", AssumeRolePolicyDocument=json.dumps(TRUST_SNS)
    )["Role"]["Arn"]
    config = configured(
        moto_server,
        tmp_path,
        f'\n[aws]\ndelivery_status_role_arn = "{role_arn}"\ndelivery_status_success_sample_rate = 25\n',
    )
    with services(config) as svc:
        first, second = provision(svc), provision(svc)
        topic_arns = [svc.broker.topic_arn(t) for t in (config.topic, config.notifications.topic)]
    assert first == second == provision_plan(config)
    (step,) = [s for s in first if s.startswith("delivery status logging")]
    assert config.topic in step and config.notifications.topic in step and "25 %" in step and role_arn in step
    for topic_arn in topic_arns:
        assert topic_state(moto_server, topic_arn) == {
            f"{protocol}_{field}": value
            for protocol in ("sqs", "lambda")
            for field, value in (
                ("success_feedback_role_arn", role_arn),
                ("success_feedback_sample_rate", "25"),
                ("failure_feedback_role_arn", role_arn),
            )
        }, topic_arn


def test_without_a_role_provision_leaves_delivery_logging_off_and_says_so(
    moto_server: MotoServer, tmp_path: Path
) -> None:
    moto_server.reset()
    config = configured(moto_server, tmp_path, "")
    with services(config) as svc:
        ensured = provision(svc)
        topic_arns = [svc.broker.topic_arn(t) for t in (config.topic, config.notifications.topic)]
    (step,) = [s for s in ensured if s.startswith("delivery status logging")]
    assert step.startswith("delivery status logging: skipped") and "aws.delivery_status_role_arn" in step
    for topic_arn in topic_arns:
        assert topic_state(moto_server, topic_arn) == {}, topic_arn
