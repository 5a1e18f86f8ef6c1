"""deploy/aws/template.yaml: cfn-lint passes, and the properties the pipeline relies on hold."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from videoconverter.aws.package import FUNCTIONS, LAMBDA_RUNTIMES
from videoconverter.config import DEFAULT_RENDITIONS, Config

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"
#: Actions AWS grants only on "*" (no resource-level permissions).
ACTIONS_WITHOUT_RESOURCES = {"sns:ListTopics"}

require_service(importlib.util.find_spec("cfnlint") is not None, "cfn-lint is not installed (dev extra)")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from cfnlint.decode import decode

    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert decoded is not None
    return dict(decoded)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def target(value: Any) -> str:
    """The logical id named by a ``Ref`` or ``Fn::GetAtt`` (short or long form)."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        return str(att[0] if isinstance(att, list) else att.split(".")[0])
    raise AssertionError(f"expected a Ref or Fn::GetAtt, got {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_every_function_has_its_own_role(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == len(DEFAULT_RENDITIONS) + 1  # a transcode function per rendition, and publish
    roles = [target(f["Properties"]["Role"]) for f in functions.values()]
    assert len(set(roles)) == len(roles), roles
    for role in roles:
        assert template["Resources"][role]["Type"] == "AWS::IAM::Role"


def test_no_wildcard_actions_and_no_wildcard_resources_beyond_what_aws_requires(template: dict[str, Any]) -> None:
    for name, role in resources(template, "AWS::IAM::Role").items():
        for statement in statements(role):
            actions = as_list(statement["Action"])
            assert not [a for a in actions if "*" in a], f"{name} {statement.get('Sid')}: wildcard action"
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, f"{name} {statement.get('Sid')}: Resource *"


def test_every_function_logs_to_its_own_group_with_retention_and_may_write_only_there(template: dict[str, Any]) -> None:
    groups = []
    for name, function in resources(template, "AWS::Lambda::Function").items():
        group = target(function["Properties"]["LoggingConfig"]["LogGroup"])
        groups.append(group)
        assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
        assert "RetentionInDays" in (template["Resources"][group].get("Properties") or {}), group
        role = template["Resources"][target(function["Properties"]["Role"])]
        logs = [s for s in statements(role) if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        assert [target(s["Resource"]) for s in logs] == [group], name
    assert len(set(groups)) == len(groups)


def dead_letter_pairs(template: dict[str, Any]) -> list[tuple[str, str]]:
    queues = resources(template, "AWS::SQS::Queue")
    pairs = [
        (name, target(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        for name, q in queues.items()
        if "RedrivePolicy" in q["Properties"]
    ]
    assert len(pairs) == len(DEFAULT_RENDITIONS)
    return pairs


def test_every_dead_letter_queue_has_an_alarm(template: dict[str, Any]) -> None:
    alarmed = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        assert props["MetricName"] == "ApproximateNumberOfMessagesVisible" and props["Namespace"] == "AWS/SQS"
        assert props["Threshold"] == 0 and props["ComparisonOperator"] == "GreaterThanThreshold"
        alarmed.update(target(d["Value"]) for d in props["Dimensions"] if d["Name"] == "QueueName")
    for _queue, dlq in dead_letter_pairs(template):
        assert dlq in alarmed, f"{dlq} has no alarm"


def test_each_queue_keeps_messages_shorter_than_its_dead_letter_queue(template: dict[str, Any]) -> None:
    for queue, dlq in dead_letter_pairs(template):
        source = template["Resources"][queue]["Properties"]
        dead = template["Resources"][dlq]["Properties"]
        assert source["MessageRetentionPeriod"] < dead["MessageRetentionPeriod"] <= 1_209_600, queue
        assert source["RedrivePolicy"]["maxReceiveCount"] == Config.max_receive_count


def test_event_source_mappings_report_batch_item_failures_and_fit_the_visibility_timeout(
    template: dict[str, Any],
) -> None:
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(DEFAULT_RENDITIONS)
    for name, mapping in mappings.items():
        props = mapping["Properties"]
        assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], name
        assert props["BatchSize"] == 1, name
        queue = template["Resources"][target(props["EventSourceArn"])]["Properties"]
        function = template["Resources"][target(props["FunctionName"])]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * function["Timeout"], name
        assert function["ImageConfig"]["Command"] == [FUNCTIONS["transcode"]]
        assert function["PackageType"] == "Image" and function["Timeout"] == 900


def test_names_match_the_default_configuration(template: dict[str, Any]) -> None:
    queues = {q["Properties"]["QueueName"] for q in resources(template, "AWS::SQS::Queue").values()}
    assert queues == {name for r in DEFAULT_RENDITIONS for name in (r.queue, r.dead_letter_queue)}
    parameters = template["Parameters"]
    assert parameters["InputBucketName"]["Default"] == Config.input_bucket
    for rendition in DEFAULT_RENDITIONS:
        assert parameters[f"OutputBucket{rendition.name}Name"]["Default"] == rendition.output_bucket
    (topic,) = [t for t in resources(template, "AWS::SNS::Topic").values() if "Condition" not in t]
    assert topic["Properties"]["TopicName"] == Config.topic
    assert set(parameters["PublishRuntime"]["AllowedValues"]) == {r[0] for r in LAMBDA_RUNTIMES.values()}


def test_only_the_input_bucket_publishes_and_only_the_topic_sends(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["InputBucket"]
    assert "TopicPolicy" in as_list(bucket["DependsOn"])
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert set(statement["Condition"]["ArnLike"]) == {"aws:SourceArn"}
    assert set(statement["Condition"]["StringEquals"]) == {"aws:SourceAccount"}
    for queue_policy in resources(template, "AWS::SQS::QueuePolicy").values():
        (statement,) = queue_policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "sqs:SendMessage"
        assert target(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == "Topic"
    for subscription in resources(template, "AWS::SNS::Subscription").values():
        assert subscription["Properties"]["RawMessageDelivery"] is True


def test_the_jobs_table_has_the_store_schema(template: dict[str, Any]) -> None:
    (table,) = resources(template, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST" and "GlobalSecondaryIndexes" not in props
    assert {(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
