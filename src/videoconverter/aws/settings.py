"""The ``[aws]`` table of the configuration: what ``provision`` sets up on AWS beyond the generic topology."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from videoconverter.errors import ConfigError
from videoconverter.validation import reject_unknown

MAX_SAMPLE_RATE_PERCENT = 100
#: An IAM role ARN in any partition (aws, aws-cn, aws-us-gov), path allowed.
_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_KNOWN = {"delivery_status_role_arn", "delivery_status_success_sample_rate"}


@dataclass(frozen=True)
class AwsSettings:
    # The role SNS assumes to write delivery status logs; "": provision leaves the topics' logging as it is.
    delivery_status_role_arn: str = ""
    # Percent of successful deliveries logged; failed ones are always logged.
    delivery_status_success_sample_rate: int = 10


def aws_settings(table: Mapping[str, Any]) -> AwsSettings:
    """Parse and validate the ``[aws]`` table."""
    reject_unknown("aws.", table, _KNOWN)
    role_arn = table.get("delivery_status_role_arn", "")
    if not isinstance(role_arn, str) or (role_arn and not _ROLE_ARN_RE.match(role_arn)):
        raise ConfigError(
            f"aws.delivery_status_role_arn: expected an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got {role_arn!r}"
        )
    rate = table.get("delivery_status_success_sample_rate", AwsSettings.delivery_status_success_sample_rate)
    if not isinstance(rate, int) or isinstance(rate, bool) or not 0 <= rate <= MAX_SAMPLE_RATE_PERCENT:
        raise ConfigError(
            f"aws.delivery_status_success_sample_rate: expected a whole percentage from 0 to "
            f"{MAX_SAMPLE_RATE_PERCENT}, got {rate!r}"
        )
    return AwsSettings(delivery_status_role_arn=role_arn, delivery_status_success_sample_rate=rate)
