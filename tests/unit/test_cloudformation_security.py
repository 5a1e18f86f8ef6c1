"""deploy/aws/template.yaml, what protects the data: what outlives the stack, encryption at rest, TLS only, the
image pull and SNS's delivery status logs, each held to the least it needs."""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest

from tests.cloudformation import (
    PSEUDO_PARAMETERS,
    as_list,
    evaluate,
    load_template,
    names_of,
    references,
    resources,
    statements,
    target,
)
from tests.conftest import require_service

require_service(importlib.util.find_spec("cfnlint") is not None, "cfn-lint is not installed (dev extra)")

#: What a stack deletion or replacement must not take with it: messages, logs, outputs, job records, the key
#: that SNS's pending retries are encrypted under, and the TLS rule of a kept bucket.
RETAINED = (
    "AWS::SQS::Queue",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
)
#: The topics whose deliveries SNS logs: uploads and job events (the alarm topic only e-mails).
LOGGED_TOPICS = ("Topic", "NotificationsTopic")
DELIVERY_LOG_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def names(template: dict[str, Any]) -> dict[str, str]:
    return names_of(template)


def test_queues_log_groups_buckets_the_table_and_the_key_outlive_the_stack(template: dict[str, Any]) -> None:
    for kind in RETAINED:
        found = resources(template, kind)
        assert found, kind
        for name, resource in found.items():
            assert resource.get("DeletionPolicy") == "Retain", name
            assert resource.get("UpdateReplacePolicy") == "Retain", name


def test_every_queue_is_encrypted_with_an_sqs_managed_key(template: dict[str, Any]) -> None:
    # SQS-managed keys need no key policy: SNS delivers to these queues with no KMS permission of its own.
    for name, queue in resources(template, "AWS::SQS::Queue").items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True and "KmsMasterKeyId" not in properties, name


def the_key(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((name, key),) = resources(template, "AWS::KMS::Key").items()
    return name, key


def test_every_topic_is_encrypted_with_the_stacks_rotating_key(template: dict[str, Any]) -> None:
    key_name, key = the_key(template)
    assert key["Properties"]["EnableKeyRotation"] is True
    for name, topic in resources(template, "AWS::SNS::Topic").items():
        # Not alias/aws/sns: S3 (and CloudWatch alarms) cannot publish to a topic under the AWS managed key.
        assert target(topic["Properties"]["KmsMasterKeyId"]) == key_name, name


def publishers(template: dict[str, Any]) -> dict[str, set[str]]:
    """AWS service -> the topics (logical ids) it publishes to: S3 its upload events, CloudWatch its alarms."""
    notifications = template["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]
    alarms = [a["Properties"].get("AlarmActions", []) for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    topics = set(resources(template, "AWS::SNS::Topic"))
    return {
        "s3.amazonaws.com": references(notifications["TopicConfigurations"]) & topics,
        "cloudwatch.amazonaws.com": references(alarms) & topics,
        "sns.amazonaws.com": topics,  # SNS itself, to deliver each topic's messages
    }


def test_the_key_lets_each_service_use_it_only_for_the_topics_it_publishes_to(
    template: dict[str, Any], names: dict[str, str]
) -> None:
    _name, key = the_key(template)
    policy = key["Properties"]["KeyPolicy"]["Statement"]
    (account,) = [s for s in policy if "AWS" in s["Principal"]]  # lets IAM policies grant the key's use
    assert evaluate(account["Principal"]["AWS"], names) == f"arn:aws:iam::{PSEUDO_PARAMETERS['AWS::AccountId']}:root"
    allowed = {}
    for statement in policy:
        if "Service" not in statement["Principal"]:
            continue
        assert statement["Effect"] == "Allow" and sorted(as_list(statement["Action"])) == [
            "kms:Decrypt",
            "kms:GenerateDataKey*",
        ], statement["Sid"]
        ((condition, values),) = statement["Condition"]["StringEquals"].items()
        assert condition == "kms:EncryptionContext:aws:sns:topicArn", statement["Sid"]  # SNS names the topic
        allowed[statement["Principal"]["Service"]] = set(evaluate(as_list(values), names))
    expected = {service: {names[t] for t in topics} for service, topics in publishers(template).items()}
    assert allowed == expected
    assert expected["s3.amazonaws.com"] == {names["Topic"]} and expected["cloudwatch.amazonaws.com"]


def test_each_role_that_publishes_may_use_the_key_only_through_sns_for_its_own_topics(
    template: dict[str, Any], names: dict[str, str]
) -> None:
    key_name, _key = the_key(template)
    publishing = 0
    for name, role in resources(template, "AWS::IAM::Role").items():
        topics = {
            target(resource)
            for statement in statements(role)
            if "sns:Publish" in as_list(statement["Action"])
            for resource in as_list(statement["Resource"])
        }
        uses = [s for s in statements(role) if any(a.startswith("kms:") for a in as_list(s["Action"]))]
        if not topics:
            assert not uses, name
            continue
        publishing += 1
        (statement,) = uses
        assert sorted(as_list(statement["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"], name
        assert target(statement["Resource"]) == key_name, name
        condition = statement["Condition"]["StringEquals"]
        assert evaluate(condition["kms:ViaService"], names) == f"sns.{PSEUDO_PARAMETERS['AWS::Region']}.amazonaws.com"
        assert {target(t) for t in as_list(condition["kms:EncryptionContext:aws:sns:topicArn"])} == topics, name
    assert publishing >= 5  # the transcode functions, the worker tasks, the publish function


def test_every_bucket_refuses_requests_without_tls(template: dict[str, Any], names: dict[str, str]) -> None:
    policies = {target(p["Properties"]["Bucket"]): p for p in resources(template, "AWS::S3::BucketPolicy").values()}
    for name in resources(template, "AWS::S3::Bucket"):
        document = policies[name]["Properties"]["PolicyDocument"]
        (statement,) = [s for s in document["Statement"] if s["Effect"] == "Deny"]
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, name
        assert statement["Principal"] == "*" and statement["Action"] == "s3:*", name
        arn = names[f"{name}.Arn"]
        assert set(evaluate(statement["Resource"], names)) == {arn, f"{arn}/*"}, name


def execution_roles(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: role
        for name, role in resources(template, "AWS::IAM::Role").items()
        if any(a.startswith("ecr:") for s in statements(role) for a in as_list(s["Action"]))
    }


@pytest.mark.parametrize(
    ("uri", "partition", "repository"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/videoconverter-transcode:1a2b3c4",
            "aws",
            "arn:aws:ecr:eu-west-1:123456789012:repository/videoconverter-transcode",
        ),
        (
            "210987654321.dkr.ecr.us-east-2.amazonaws.com/media/videoconverter@sha256:" + "ab" * 32,
            "aws",
            "arn:aws:ecr:us-east-2:210987654321:repository/media/videoconverter",
        ),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team.tools/transcode",
            "aws-cn",
            "arn:aws-cn:ecr:cn-north-1:123456789012:repository/team.tools/transcode",
        ),
    ],
    ids=["tag", "namespace-and-digest", "china-untagged"],
)
def test_a_worker_task_pulls_its_image_from_that_one_repository(
    template: dict[str, Any], uri: str, partition: str, repository: str
) -> None:
    assert re.fullmatch(template["Parameters"]["TranscodeImageUri"]["AllowedPattern"], uri)
    names = names_of(template, TranscodeImageUri=uri, **{"AWS::Partition": partition})
    roles = execution_roles(template)
    assert len(roles) == 2
    for name, role in roles.items():
        ecr = [s for s in statements(role) if any(a.startswith("ecr:") for a in as_list(s["Action"]))]
        (login,) = [s for s in ecr if s["Resource"] == "*"]
        assert login["Action"] == "ecr:GetAuthorizationToken", name  # AWS grants it on no narrower resource
        (pull,) = [s for s in ecr if s is not login]
        assert set(pull["Action"]) == {
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        }
        assert evaluate(pull["Resource"], names) == repository, name


@pytest.mark.parametrize(
    "uri",
    [
        "docker.io/library/python:3.12",
        "public.ecr.aws/lambda/python:3.12",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/",
        "12345.dkr.ecr.eu-west-1.amazonaws.com/videoconverter:latest",
    ],
)
def test_an_image_uri_the_pull_statement_cannot_take_apart_is_refused_at_deploy(
    template: dict[str, Any], uri: str
) -> None:
    assert not re.fullmatch(template["Parameters"]["TranscodeImageUri"]["AllowedPattern"], uri)


def delivery_status_role(template: dict[str, Any]) -> str:
    roles = set()
    for name in LOGGED_TOPICS:
        for logging in template["Resources"][name]["Properties"]["DeliveryStatusLogging"]:
            roles |= {target(logging["SuccessFeedbackRoleArn"]), target(logging["FailureFeedbackRoleArn"])}
    (role,) = roles
    return role


def test_both_topics_log_every_failed_and_a_sample_of_the_successful_deliveries(template: dict[str, Any]) -> None:
    rate = template["Parameters"]["DeliveryStatusSuccessSampleRate"]
    assert (rate["Type"], rate["MinValue"], rate["MaxValue"]) == ("Number", 0, 100) and 0 <= rate["Default"] <= 100
    unlogged = {
        n for n, t in resources(template, "AWS::SNS::Topic").items() if "DeliveryStatusLogging" not in t["Properties"]
    }
    assert unlogged == {"AlarmTopic"}  # e-mail only: SNS logs no delivery status for it
    for name in LOGGED_TOPICS:
        logging = {c["Protocol"]: c for c in template["Resources"][name]["Properties"]["DeliveryStatusLogging"]}
        assert set(logging) == {"sqs", "lambda"}, name
        for configuration in logging.values():
            assert configuration["SuccessFeedbackSampleRate"] == {"Ref": "DeliveryStatusSuccessSampleRate"}, name
            assert "FailureFeedbackRoleArn" in configuration, name  # failures: always
    assert template["Resources"][delivery_status_role(template)]["Type"] == "AWS::IAM::Role"


def test_the_delivery_status_role_may_write_only_the_log_groups_sns_writes_for_those_topics(
    template: dict[str, Any], names: dict[str, str]
) -> None:
    role = template["Resources"][delivery_status_role(template)]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sns.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    region, account = PSEUDO_PARAMETERS["AWS::Region"], PSEUDO_PARAMETERS["AWS::AccountId"]
    topic_names = [template["Resources"][t]["Properties"]["TopicName"] for t in LOGGED_TOPICS]
    # SNS's own names: sns/REGION/ACCOUNT/TOPIC for successes, .../Failure for failures.
    groups = {f"sns/{region}/{account}/{topic}{suffix}" for topic in topic_names for suffix in ("", "/Failure")}
    created = {
        names[n] for n, g in resources(template, "AWS::Logs::LogGroup").items() if "LogGroupName" in g["Properties"]
    }
    assert created == groups  # the stack makes them, with retention, and keeps them
    arn = f"arn:aws:logs:{region}:{account}:log-group:"
    granted = {
        (action, resource)
        for statement in statements(role)
        for action in as_list(statement["Action"])
        for resource in evaluate(as_list(statement["Resource"]), names)
    }
    expected = {("logs:CreateLogGroup", f"{arn}{group}") for group in groups}
    expected |= {
        (action, f"{arn}{group}:*") for group in groups for action in DELIVERY_LOG_ACTIONS - {"logs:CreateLogGroup"}
    }
    assert granted == expected
