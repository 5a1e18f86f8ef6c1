"""Reading deploy/aws/template.yaml in tests: the decoded template, its resources, and what their references name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from videoconverter.renditions import DEFAULT_RENDITIONS

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "aws" / "template.yaml"


def load_template() -> dict[str, Any]:
    """The template as cfn-lint decodes it (short-form tags such as ``!Ref`` in their long form)."""
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


def references(value: Any) -> set[str]:
    """Every logical id (or parameter) ``value`` names through Ref, Fn::GetAtt or Fn::Sub, at any depth."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(target({key: inner}))
            elif key == "Fn::Sub":
                text, variables = (inner[0], inner[1]) if isinstance(inner, list) else (inner, {})
                found.update(re.findall(r"\$\{([A-Za-z0-9:]+)", str(text)))
                found.update(references(variables))
            else:
                found.update(references(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(references(inner))
    return found


def queue_of(template: dict[str, Any], queue_name: str) -> str:
    (name,) = [
        n for n, q in resources(template, "AWS::SQS::Queue").items() if q["Properties"]["QueueName"] == queue_name
    ]
    return name


def container_of(template: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    task = template["Resources"][target(service["Properties"]["TaskDefinition"])]
    (container,) = task["Properties"]["ContainerDefinitions"]
    return dict(container)


def worker_arguments(container: dict[str, Any]) -> list[str]:
    """The command line after ``python -m videoconverter``."""
    line = [*container["EntryPoint"], *container["Command"]]
    assert line[0] in ("python", "/var/lang/bin/python") and line[1:3] == ["-m", "videoconverter"], line
    return [str(a) for a in line[3:]]


def worker_services(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """rendition name -> (service logical id, service), from the command each service's task runs."""
    found = {}
    for name, service in resources(template, "AWS::ECS::Service").items():
        arguments = worker_arguments(container_of(template, service))
        assert arguments[0] == "worker", (name, arguments)
        found[arguments[1]] = (name, service)
    assert set(found) == {r.name for r in DEFAULT_RENDITIONS}
    return found


def grants(role: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs a role allows, the resource as its template expression."""
    return {
        (action, json.dumps(resource, sort_keys=True))
        for statement in statements(role)
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def worker_roles(template: dict[str, Any]) -> dict[str, list[str]]:
    """rendition name -> the roles its workers run as: the transcode function's (Lambda) and the task's (ECS)."""
    by_queue: dict[str, list[str]] = {}
    for mapping in resources(template, "AWS::Lambda::EventSourceMapping").values():
        function = template["Resources"][target(mapping["Properties"]["FunctionName"])]
        queue = target(mapping["Properties"]["EventSourceArn"])
        by_queue.setdefault(queue, []).append(target(function["Properties"]["Role"]))
    roles = {}
    for rendition in DEFAULT_RENDITIONS:
        _name, service = worker_services(template)[rendition.name]
        task = template["Resources"][target(service["Properties"]["TaskDefinition"])]["Properties"]
        roles[rendition.name] = [*by_queue[queue_of(template, rendition.queue)], target(task["TaskRoleArn"])]
    return roles


#: Pseudo parameters as :func:`names_of` sets them.
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}


def names_of(template: dict[str, Any], **parameters: str) -> dict[str, str]:
    """What each ``Ref`` and ``Fn::GetAtt X.Arn`` the tests evaluate stands for: the parameters (their defaults,
    or ``parameters``), the pseudo parameters, and the ARNs of the buckets, topics and named log groups."""
    names = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    names |= PSEUDO_PARAMETERS | parameters
    region, account = names["AWS::Region"], names["AWS::AccountId"]
    for name, bucket in resources(template, "AWS::S3::Bucket").items():
        names[name] = evaluate(bucket["Properties"]["BucketName"], names)
        names[f"{name}.Arn"] = f"arn:{names['AWS::Partition']}:s3:::{names[name]}"
    for name, topic in resources(template, "AWS::SNS::Topic").items():
        topic_name = topic["Properties"].get("TopicName", name)
        names[name] = f"arn:{names['AWS::Partition']}:sns:{region}:{account}:{topic_name}"
    for name, group in resources(template, "AWS::Logs::LogGroup").items():
        if "LogGroupName" in group["Properties"]:
            names[name] = evaluate(group["Properties"]["LogGroupName"], names)
            names[f"{name}.Arn"] = f"arn:{names['AWS::Partition']}:logs:{region}:{account}:log-group:{names[name]}:*"
    return names


def evaluate(value: Any, names: dict[str, str]) -> Any:
    """``value`` with Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Split and Fn::Select worked out as CloudFormation
    would, each name standing for what ``names`` says (see :func:`names_of`)."""
    if isinstance(value, list):
        return [evaluate(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return names[argument]
    if function == "Fn::GetAtt":
        return names[".".join(argument) if isinstance(argument, list) else argument]
    if function == "Fn::Select":
        return evaluate(argument[1], names)[int(evaluate(argument[0], names))]
    if function == "Fn::Split":
        return str(evaluate(argument[1], names)).split(argument[0])
    if function == "Fn::Join":
        return str(argument[0]).join(evaluate(argument[1], names))
    if function == "Fn::Sub":
        text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
        known = names | {key: evaluate(inner, names) for key, inner in variables.items()}
        return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda match: str(known[match.group(1)]), text)
    raise AssertionError(f"the tests cannot evaluate {function}")
