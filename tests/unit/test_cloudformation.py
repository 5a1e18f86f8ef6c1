"""deploy/aws/template.yaml: cfn-lint passes, and the properties the pipeline relies on hold."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cloudformation import (
    TEMPLATE,
    as_list,
    container_of,
    grants,
    load_template,
    queue_of,
    references,
    resources,
    statements,
    target,
    worker_arguments,
    worker_services,
)
from tests.conftest import require_service
from videoconverter.cli.main import build_parser, cmd_worker
from videoconverter.config import Config
from videoconverter.notifications.settings import NotificationSettings
from videoconverter.renditions import DEFAULT_RENDITIONS
from videoconverter.serverless.package import CONFIG_NAME, FUNCTIONS, LAMBDA_RUNTIMES

#: Actions AWS grants only on "*" (no resource-level permissions).
ACTIONS_WITHOUT_RESOURCES = {"ecr:GetAuthorizationToken"}
#: Where the Lambda base image keeps the code (LAMBDA_TASK_ROOT) and its Python.
TASK_ROOT = "/var/task"
#: The services a worker uses: its buckets, its queues, the jobs table, the job events topic and its key.
WORKER_SERVICES = {"s3", "sqs", "dynamodb", "sns", "kms"}

require_service(importlib.util.find_spec("cfnlint") is not None, "cfn-lint is not installed (dev extra)")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_cfn_lint_passes_with_its_informational_checks_too() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    command = [str(cfn_lint), "--include-checks", "I", "--", str(TEMPLATE)]  # I3011: stateful resources kept
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
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
    dead_letter_queues = {dlq for _queue, dlq in dead_letter_pairs(template)}
    alarmed = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if not {target(d["Value"]) for d in props.get("Dimensions", [])} & dead_letter_queues:
            continue  # a worker scaling alarm (see below)
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
    notifications = NotificationSettings()
    expected = {name for r in DEFAULT_RENDITIONS for name in (r.queue, r.dead_letter_queue)}
    assert queues == expected | {notifications.events_queue}
    parameters = template["Parameters"]
    assert parameters["InputBucketName"]["Default"] == Config.input_bucket
    for rendition in DEFAULT_RENDITIONS:
        assert parameters[f"OutputBucket{rendition.name}Name"]["Default"] == rendition.output_bucket
    topics = {
        t["Properties"]["TopicName"] for t in resources(template, "AWS::SNS::Topic").values() if "Condition" not in t
    }
    assert topics == {Config.topic, notifications.topic}
    assert set(parameters["PublishRuntime"]["AllowedValues"]) == {r[0] for r in LAMBDA_RUNTIMES.values()}


def test_only_the_input_bucket_publishes_and_only_the_topic_sends(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["InputBucket"]
    assert "TopicPolicy" in as_list(bucket["DependsOn"])
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert set(statement["Condition"]["ArnLike"]) == {"aws:SourceArn"}
    assert set(statement["Condition"]["StringEquals"]) == {"aws:SourceAccount"}
    for name, queue_policy in resources(template, "AWS::SQS::QueuePolicy").items():
        (statement,) = queue_policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "sqs:SendMessage"
        (queue,) = queue_policy["Properties"]["Queues"]
        topic = "NotificationsTopic" if target(queue) == "EventsQueue" else "Topic"  # job events, or uploads
        assert target(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == topic, name
    for subscription in resources(template, "AWS::SNS::Subscription").values():
        assert subscription["Properties"]["RawMessageDelivery"] is True


def test_the_jobs_table_has_the_store_schema(template: dict[str, Any]) -> None:
    from videoconverter.jobs.dynamodb_table import ATTRIBUTES, INDEXES, attribute_definitions, index_definition

    (table,) = resources(template, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(attribute_definitions(ATTRIBUTES), key=str)
    assert props["GlobalSecondaryIndexes"] == [index_definition(name) for name in INDEXES]  # the store's own


# --- the transcode choice: Lambda functions, or ECS worker services scaled on queue depth -------------------


def choice_of(template: dict[str, Any], resource: dict[str, Any]) -> str | None:
    """The TranscodeOn value a resource's condition requires (None: created either way, as far as it goes)."""
    if "Condition" not in resource:
        return None
    definition = template["Conditions"][resource["Condition"]]
    if "TranscodeOn" not in references(definition):
        return None
    assert set(definition) == {"Fn::Equals"}, definition
    parameter, value = definition["Fn::Equals"]
    assert parameter == {"Ref": "TranscodeOn"}, definition
    return str(value)


def test_transcode_on_is_a_clean_choice_between_lambda_and_ecs(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["TranscodeOn"]
    assert set(parameter["AllowedValues"]) == {"lambda", "ecs"} and parameter["Default"] == "lambda"
    ecs = {
        name
        for name, r in template["Resources"].items()
        if r["Type"].startswith(("AWS::ECS::", "AWS::ApplicationAutoScaling::"))
    }
    for name in list(ecs):  # the roles and log groups the services use, the alarms that drive their scaling
        resource = template["Resources"][name]
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            ecs |= references(resource["Properties"]) & {
                n for n, r in template["Resources"].items() if r["Type"] in ("AWS::IAM::Role", "AWS::Logs::LogGroup")
            }
    ecs |= {
        name
        for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items()
        if references(alarm["Properties"].get("AlarmActions", [])) & ecs
    }
    lambda_ = set(resources(template, "AWS::Lambda::EventSourceMapping"))
    for name in list(lambda_):
        function = target(template["Resources"][name]["Properties"]["FunctionName"])
        props = template["Resources"][function]["Properties"]
        lambda_ |= {function, target(props["Role"]), target(props["LoggingConfig"]["LogGroup"])}
    kinds = {template["Resources"][n]["Type"] for n in ecs}
    assert {"AWS::ECS::Cluster", "AWS::ECS::Service", "AWS::ECS::TaskDefinition", "AWS::IAM::Role"} <= kinds
    assert {"AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::ApplicationAutoScaling::ScalableTarget"} <= kinds
    assert len(lambda_) == 4 * len(DEFAULT_RENDITIONS)
    for name in ecs:
        assert choice_of(template, template["Resources"][name]) == "ecs", name
    for name in lambda_:
        assert choice_of(template, template["Resources"][name]) == "lambda", name
    for name, resource in template["Resources"].items():  # the rest of the pipeline exists either way
        if name not in ecs | lambda_:
            assert choice_of(template, resource) is None, name
    for name, output in template["Outputs"].items():
        if references(output["Value"]) & ecs:
            assert choice_of(template, output) == "ecs", name
    assert {"WorkerClusterName", *(f"WorkerService{r.name}Name" for r in DEFAULT_RENDITIONS)} <= set(
        template["Outputs"]
    )


def test_lambda_deploys_need_no_worker_parameters_and_ecs_ones_need_a_network(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    worker = {name for name in parameters if name.startswith("Worker")}
    assert {
        "WorkerSubnets",
        "WorkerSecurityGroups",
        "WorkerAssignPublicIp",
        "WorkerMinCount",
        "WorkerMaxCount",
    } <= worker
    assert all("Default" in parameters[name] for name in worker), worker
    assert parameters["WorkerMinCount"]["Default"] == 0 and parameters["WorkerMaxCount"]["Default"] == 10
    assert set(parameters["WorkerAssignPublicIp"]["AllowedValues"]) == {"ENABLED", "DISABLED"}
    (rule,) = template["Rules"].values()
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "TranscodeOn"}, "ecs"]}
    asserted = {p for a in rule["Assertions"] for p in references(a["Assert"])}
    assert asserted == {"WorkerSubnets", "WorkerSecurityGroups"}


def test_each_worker_task_runs_the_worker_of_its_rendition_in_the_transcode_image(template: dict[str, Any]) -> None:
    for rendition, (name, service) in worker_services(template).items():
        task = template["Resources"][target(service["Properties"]["TaskDefinition"])]["Properties"]
        assert task["RequiresCompatibilities"] == ["FARGATE"] and task["NetworkMode"] == "awsvpc", name
        assert service["Properties"]["LaunchType"] == "FARGATE", name
        assert "EphemeralStorage" in task, name
        container = container_of(template, service)
        assert container["Image"] == {"Ref": "TranscodeImageUri"}, name
        assert container["WorkingDirectory"] == TASK_ROOT, name
        assert 30 <= container["StopTimeout"] <= 120, name  # time to hand the job back; Fargate allows 120 s
        assert worker_arguments(container)[:2] == ["worker", rendition]
        # The stack provisions everything; provisioning would need rights the task role must not have.
        assert "--no-provision" in worker_arguments(container), name
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert environment == {
            "VIDEOCONVERTER_CONFIG": f"{TASK_ROOT}/{CONFIG_NAME}",
            "VIDEOCONVERTER_STORAGE": "s3://",
            "VIDEOCONVERTER_BROKER": "aws://",
            "VIDEOCONVERTER_JOBS": {"Fn::Sub": "dynamodb://${JobsTable}"},
            "VIDEOCONVERTER_DATA_DIR": "/tmp/videoconverter",
            "VIDEOCONVERTER_LOG_LEVEL": {"Ref": "LogLevel"},
            "AWS_REGION": {"Ref": "AWS::Region"},
        }, name


def test_the_worker_command_is_one_the_cli_accepts(template: dict[str, Any]) -> None:
    parser = build_parser()
    try:
        parser.parse_args(["worker", "720p", "--no-provision"])
    except SystemExit:
        pytest.skip("`videoconverter worker` has no --no-provision option yet")
    for rendition, (_name, service) in worker_services(template).items():
        args = parser.parse_args(worker_arguments(container_of(template, service)))
        assert args.handler is cmd_worker and args.rendition == [rendition] and not args.all  # a dedicated worker


def test_each_worker_task_role_has_the_transcode_functions_permissions_on_its_own_queue(
    template: dict[str, Any],
) -> None:
    lambda_roles = {}  # queue logical id -> the transcode function's role
    for mapping in resources(template, "AWS::Lambda::EventSourceMapping").values():
        function = template["Resources"][target(mapping["Properties"]["FunctionName"])]
        lambda_roles[target(mapping["Properties"]["EventSourceArn"])] = target(function["Properties"]["Role"])
    roles = []
    for rendition in DEFAULT_RENDITIONS:
        _name, service = worker_services(template)[rendition.name]
        task = template["Resources"][target(service["Properties"]["TaskDefinition"])]["Properties"]
        role_name = target(task["TaskRoleArn"])
        roles.append(role_name)
        assert target(task["ExecutionRoleArn"]) != role_name
        role = template["Resources"][role_name]
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}, role_name
        queue, dlq = queue_of(template, rendition.queue), queue_of(template, rendition.dead_letter_queue)
        for statement in statements(role):
            assert statement["Effect"] == "Allow"
            assert "*" not in as_list(statement["Resource"]), role_name
            for action in as_list(statement["Action"]):
                assert "*" not in action and action.split(":")[0] in WORKER_SERVICES, (role_name, action)
            if any(a.startswith("sqs:") for a in as_list(statement["Action"])):
                assert references(statement["Resource"]) <= {queue, dlq}, (role_name, statement.get("Sid"))
        # what the transcode function of the same queue may do, on the same resources, less writing its logs
        lambda_role = template["Resources"][lambda_roles[queue]]
        expected = {grant for grant in grants(lambda_role) if not grant[0].startswith("logs:")}
        assert grants(role) == expected, role_name
    assert len(set(roles)) == len(roles)


def test_every_log_group_keeps_logs_for_a_while_and_each_worker_logs_to_its_own(template: dict[str, Any]) -> None:
    for name, log_group in resources(template, "AWS::Logs::LogGroup").items():
        assert "RetentionInDays" in (log_group.get("Properties") or {}), name
    groups = []
    for name, service in worker_services(template).values():
        task = template["Resources"][target(service["Properties"]["TaskDefinition"])]["Properties"]
        logging = container_of(template, service)["LogConfiguration"]
        assert logging["LogDriver"] == "awslogs", name
        group = target(logging["Options"]["awslogs-group"])
        groups.append(group)
        assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup", name
        execution = template["Resources"][target(task["ExecutionRoleArn"])]
        logs = [s for s in statements(execution) if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        assert [target(s["Resource"]) for s in logs] == [group], name
    assert len(set(groups)) == len(groups)


def alarm_queues(alarm: dict[str, Any]) -> dict[str, set[str]]:
    """metric name -> the queues (logical ids) whose metric of that name the alarm watches."""
    props = alarm["Properties"]
    metrics = (
        [props] if "MetricName" in props else [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]
    )
    found: dict[str, set[str]] = {}
    for metric in metrics:
        assert metric["Namespace"] == "AWS/SQS", metric
        queues = {target(d["Value"]) for d in metric["Dimensions"] if d["Name"] == "QueueName"}
        found.setdefault(metric["MetricName"], set()).update(queues)
    return found


def test_each_worker_service_scales_on_the_depth_of_the_queue_its_worker_reads(template: dict[str, Any]) -> None:
    for rendition, (name, service) in worker_services(template).items():
        queue = queue_of(template, template_rendition(rendition).queue)
        # auto scaling owns the count: a stack update must not reset it (and stop busy workers)
        assert "DesiredCount" not in service["Properties"], name
        (scalable_target,) = [
            n
            for n, t in resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").items()
            if name in references(t["Properties"]["ResourceId"])
        ]
        props = template["Resources"][scalable_target]["Properties"]
        assert props["ServiceNamespace"] == "ecs" and props["ScalableDimension"] == "ecs:service:DesiredCount"
        assert props["MinCapacity"] == {"Ref": "WorkerMinCount"} and props["MaxCapacity"] == {"Ref": "WorkerMaxCount"}
        policies = {
            n: p["Properties"]
            for n, p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").items()
            if target(p["Properties"]["ScalingTargetId"]) == scalable_target
        }
        alarms = {
            n: a
            for n, a in resources(template, "AWS::CloudWatch::Alarm").items()
            if references(a["Properties"].get("AlarmActions", [])) & set(policies)
        }
        assert len(policies) == 2 and len(alarms) == 2, (name, policies, alarms)
        directions = set()
        for alarm_name, alarm in alarms.items():
            watched = alarm_queues(alarm)
            assert watched["ApproximateNumberOfMessagesVisible"] == {queue}, alarm_name
            assert set().union(*watched.values()) == {queue}, alarm_name
            (policy,) = [policies[target(a)] for a in as_list(alarm["Properties"]["AlarmActions"])]
            config = policy["StepScalingPolicyConfiguration"]
            steps = config["StepAdjustments"]
            if alarm["Properties"]["ComparisonOperator"].startswith("GreaterThan"):  # backlog: add workers
                directions.add("out")
                assert config["AdjustmentType"] == "ChangeInCapacity", alarm_name
                assert all(s["ScalingAdjustment"] >= 1 for s in steps) and len(steps) >= 2, alarm_name
                assert alarm["Properties"]["Threshold"] == 1, alarm_name
            else:  # idle: back to the minimum, only when nothing is being converted either
                directions.add("in")
                assert config["AdjustmentType"] == "ExactCapacity", alarm_name
                assert [s["ScalingAdjustment"] for s in steps] == [{"Ref": "WorkerMinCount"}], alarm_name
                assert "ApproximateNumberOfMessagesNotVisible" in watched, alarm_name
                minutes = (
                    alarm["Properties"]["EvaluationPeriods"]
                    * max(m["MetricStat"]["Period"] for m in alarm["Properties"]["Metrics"] if "MetricStat" in m)
                    / 60
                )
                assert minutes >= 5, alarm_name
        assert directions == {"out", "in"}, name


def template_rendition(name: str) -> Any:
    (rendition,) = [r for r in DEFAULT_RENDITIONS if r.name == name]
    return rendition
