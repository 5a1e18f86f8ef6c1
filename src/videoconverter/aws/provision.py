"""The AWS-only part of ``videoconverter provision``: S3 notifies the topic, and only the input bucket may publish;
SNS logs its deliveries.

The generic part (buckets, topic, queues, dead-letter queues, subscriptions) is the backends' own ``declare`` and
``create_bucket``. What is left crosses services: the topic policy that lets S3 publish for the input bucket
only (``aws:SourceArn`` and ``aws:SourceAccount``: :func:`~.policies.topic_policy`, set by the SQS broker's
``allow_bucket``), the input bucket's notification configuration (``s3:ObjectCreated:*``, one suffix filter per
configured suffix) pointing at the topic, set here for the S3 store's ``notify_topic``, and each topic's delivery
status logging to CloudWatch Logs (every failed delivery to a queue or function, a sample of the successful ones),
set by the SQS broker's ``log_deliveries``. All are idempotent, and configurations that are not ours (another Id)
are kept. Everything here takes plain values, never the configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NOTIFICATION_ID_PREFIX = "videoconverter-"


def steps(bucket: str, suffixes: tuple[str, ...], topic: str) -> list[str]:
    """What the topic policy and :func:`wire_notifications` ensure, in words (for ``provision --dry-run`` too)."""
    return [
        f"topic policy: only bucket {bucket} may publish to {topic}",
        f"notification: s3:ObjectCreated:* in {bucket} for keys ending {', '.join(suffixes)} (lower and upper "
        f"case) -> topic {topic}",
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


def wire_notifications(s3: Any, bucket: str, suffixes: tuple[str, ...], topic_arn: str) -> None:
    """Point ``bucket``'s ObjectCreated notifications (keys ending with ``suffixes``) at the topic ``topic_arn``,
    through the S3 client ``s3``. The topic's policy must already let the bucket publish: S3 checks it here."""
    existing = s3.get_bucket_notification_configuration(Bucket=bucket)
    wanted = notification_configuration(existing, topic_arn, suffixes)
    # Only when it changes: every put makes S3 send each queue an s3:TestEvent, and workers provision on start.
    if _comparable(wanted) != _comparable(existing):
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=wanted)


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
