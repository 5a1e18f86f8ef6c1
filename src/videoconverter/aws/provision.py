"""The AWS-only part of ``videoconverter provision``: S3 notifies the topic, and only the input bucket may publish;
SNS logs its deliveries.

The generic part (buckets, topic, queues, dead-letter queues, subscriptions) is the backends' own ``declare`` and
``create_bucket``. What is left crosses services, so it lives here: the topic policy that lets S3 publish for
the input bucket only (``aws:SourceArn`` and ``aws:SourceAccount``), the input bucket's notification
configuration (``s3:ObjectCreated:*``, one suffix filter per configured suffix) pointing at the topic, and each
topic's delivery status logging to CloudWatch Logs (every failed delivery to a queue or function, a sample of the
successful ones). All are idempotent, and configurations that are not ours (another Id) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from videoconverter.aws.clients import AwsLocation
from videoconverter.aws.policies import topic_policy
from videoconverter.config import Config

NOTIFICATION_ID_PREFIX = "videoconverter-"


def server_side_notifications(config: Config) -> bool:
    """Whether S3 itself delivers upload events to the topic (S3 storage with the AWS broker)."""
    return config.storage_url.startswith("s3://") and config.broker_url.startswith("aws://")


def steps(config: Config) -> list[str]:
    """What :func:`wire_notifications` ensures, in words (for ``provision --dry-run`` too)."""
    suffixes = ", ".join(config.input_suffixes)
    return [
        f"topic policy: only bucket {config.input_bucket} may publish to {config.topic}",
        f"notification: s3:ObjectCreated:* in {config.input_bucket} for keys ending {suffixes} (lower and upper "
        f"case) -> topic {config.topic}",
    ]


def notification_configuration(existing: dict[str, Any], topic_arn: str, suffixes: tuple[str, ...]) -> dict[str, Any]:
    """``existing`` with our topic configurations replaced by one per suffix; everything else kept.

    S3's suffix filters are case-sensitive while the pipeline's are not: each suffix is asked for in lower and in
    upper case (``.mp4`` and ``.MP4``); mixed case (``.Mp4``) is left to ``videoconverter up``'s reconciliation.
    """
    kept = {k: v for k, v in existing.items() if k.endswith("Configurations")}
    others = [c for c in kept.get("TopicConfigurations", []) if not _ours(c)]
    variants = list(dict.fromkeys(v for suffix in suffixes for v in (suffix.lower(), suffix.upper())))
    ours = [
        {
            "Id": f"{NOTIFICATION_ID_PREFIX}{suffix.lstrip('.') or 'all'}",
            "TopicArn": topic_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}},
        }
        for suffix in variants
    ]
    return {**kept, "TopicConfigurations": others + ours}


def _ours(configuration: dict[str, Any]) -> bool:
    return str(configuration.get("Id", "")).startswith(NOTIFICATION_ID_PREFIX)


def _comparable(configuration: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Our topic configurations in a form that ignores what S3 normalises (order, the case of rule names)."""
    return sorted(
        (
            c["Id"],
            c["TopicArn"],
            tuple(sorted(c.get("Events", []))),
            tuple((r["Name"].lower(), r["Value"]) for r in c.get("Filter", {}).get("Key", {}).get("FilterRules", [])),
        )
        for c in configuration.get("TopicConfigurations", [])
        if _ours(c)
    )


def wire_notifications(config: Config, topic_arn: str) -> list[str]:
    """Let the input bucket publish to the topic, then point its ObjectCreated notifications at it."""
    sns = AwsLocation.from_url(config.broker_url).client("sns")
    s3 = AwsLocation.from_url(config.storage_url).client("s3")
    try:
        # The policy first: S3 checks that it may publish when the notification is set (and sends a TestEvent).
        sns.set_topic_attributes(
            TopicArn=topic_arn, AttributeName="Policy", AttributeValue=topic_policy(topic_arn, config.input_bucket)
        )
        existing = s3.get_bucket_notification_configuration(Bucket=config.input_bucket)
        wanted = notification_configuration(existing, topic_arn, config.input_suffixes)
        # Only when it changes: every put makes S3 send each queue an s3:TestEvent, and workers provision on start.
        if _comparable(wanted) != _comparable(existing):
            s3.put_bucket_notification_configuration(Bucket=config.input_bucket, NotificationConfiguration=wanted)
    finally:
        sns.close()
        s3.close()
    return steps(config)


#: The subscription protocols whose deliveries are logged: the pipeline's queues, and functions users subscribe.
DELIVERY_STATUS_PROTOCOLS = ("SQS", "Lambda")


def delivery_status_attributes(role_arn: str, success_sample_rate: int) -> dict[str, str]:
    """The topic attributes that make SNS log, as ``role_arn``, every failed delivery and ``success_sample_rate``
    percent of the successful ones, for each of :data:`DELIVERY_STATUS_PROTOCOLS` (in the order to set them)."""
    attributes = {}
    for protocol in DELIVERY_STATUS_PROTOCOLS:
        attributes[f"{protocol}SuccessFeedbackRoleArn"] = role_arn
        attributes[f"{protocol}SuccessFeedbackSampleRate"] = str(success_sample_rate)
        attributes[f"{protocol}FailureFeedbackRoleArn"] = role_arn
    return attributes


def delivery_status_steps(topics: Sequence[str], role_arn: str, success_sample_rate: int) -> list[str]:
    """What :func:`log_deliveries` ensures for ``topics``, in words (for ``provision --dry-run`` too)."""
    names = ", ".join(topics)
    if not role_arn:
        return [f"delivery status logging: skipped for topics {names} (no aws.delivery_status_role_arn configured)"]
    protocols = " and ".join(DELIVERY_STATUS_PROTOCOLS)
    return [
        f"delivery status logging: topics {names} log every failed and {success_sample_rate} % of the successful "
        f"deliveries to {protocols} in CloudWatch Logs, as role {role_arn}"
    ]


def log_deliveries(broker_url: str, topic_arns: Sequence[str], role_arn: str, success_sample_rate: int) -> None:
    """Turn on delivery status logging for each topic (:func:`delivery_status_attributes`); nothing without a role.

    SNS assumes the role (trusting ``sns.amazonaws.com``) and writes to ``sns/REGION/ACCOUNT/TOPIC`` (successes)
    and ``sns/REGION/ACCOUNT/TOPIC/Failure``: the role needs ``logs:CreateLogGroup``, ``logs:CreateLogStream``
    and ``logs:PutLogEvents`` on those groups only (as the CloudFormation template's ``DeliveryStatusRole``).
    """
    if not role_arn:
        return
    sns = AwsLocation.from_url(broker_url).client("sns")
    try:
        for topic_arn in topic_arns:
            for name, value in delivery_status_attributes(role_arn, success_sample_rate).items():
                sns.set_topic_attributes(TopicArn=topic_arn, AttributeName=name, AttributeValue=value)
    finally:
        sns.close()
