"""The resource policies provision sets: each lets one AWS service act for one source only."""

from __future__ import annotations

import json
from typing import Any


def _allow(sid: str, service: str, action: str, resource: str, condition: dict[str, Any]) -> str:
    """A policy of one statement with a fixed ``Sid``, so setting it again changes nothing."""
    statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": action,
        "Resource": resource,
        "Condition": condition,
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Let only the topic ``topic_arn`` send to the queue."""
    return _allow(
        "videoconverter-topic-sends",
        "sns.amazonaws.com",
        "sqs:SendMessage",
        queue_arn,
        {"ArnEquals": {"aws:SourceArn": topic_arn}},
    )


def topic_policy(topic_arn: str, bucket: str) -> str:
    """Let only ``bucket``, in the topic's own account, publish to the topic (the account check guards against
    a bucket of the same name elsewhere, as bucket ARNs carry no account)."""
    return _allow(
        "videoconverter-input-bucket-publishes",
        "s3.amazonaws.com",
        "SNS:Publish",
        topic_arn,
        {
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
            "StringEquals": {"aws:SourceAccount": topic_arn.split(":")[4]},
        },
    )
