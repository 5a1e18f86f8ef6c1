"""boto3 clients from backend URLs, honouring the standard AWS environment.

A backend URL may carry ``endpoint_url`` and ``region`` as query parameters (``s3://?endpoint_url=http://minio:9000``,
``aws://?region=eu-west-1``, ``dynamodb://videoconverter-jobs?endpoint_url=...``). Without them boto3's own chain
applies: ``AWS_ENDPOINT_URL`` (and the per-service ``AWS_ENDPOINT_URL_S3`` etc.), ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, the profile, and the credentials chain. So one command runs against AWS, moto's server or
an S3-compatible store with nothing changed but the environment.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from videoconverter.errors import ConfigError

DEFAULT_REGION = "us-east-1"
#: A kind of topic address (a broker's ``capabilities.topic_address``, an object store's ``notification_targets``):
#: an SNS topic's ARN, which S3 bucket notifications can publish to.
SNS_TOPIC_ARN = "sns-topic-arn"
_KNOWN_PARAMETERS = {"endpoint_url", "region"}
#: A boto3 session is not safe to create clients from in several threads at once; the clients it makes are.
_SESSION_LOCK = threading.Lock()


@dataclass(frozen=True)
class AwsLocation:
    """Where the clients of one backend URL connect."""

    name: str  # what the URL names after the scheme: a table for dynamodb://, empty for s3:// and aws://
    endpoint_url: str | None
    region: str

    @classmethod
    def from_url(cls, url: str) -> AwsLocation:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - _KNOWN_PARAMETERS
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(sorted(unknown))} in {parts.scheme}:// URL: "
                f"expected only {', '.join(sorted(_KNOWN_PARAMETERS))}"
            )
        name = unquote((parts.netloc + parts.path).strip("/"))
        region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return cls(name=name, endpoint_url=query.get("endpoint_url") or None, region=region or DEFAULT_REGION)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (boto3 is imported here, so the extra stays optional)."""
        try:
            from botocore.config import Config as BotoConfig

            session = _session()
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "the AWS backends need boto3, which is not installed: pip install 'videoconverter[aws]'"
            ) from exc
        config = BotoConfig(
            region_name=self.region,
            retries={"max_attempts": 8, "mode": "standard"},
            # Long polls hold a connection for up to 20 s: the read timeout must be longer than that.
            read_timeout=70,
            connect_timeout=10,
            max_pool_connections=20,
        )
        with _SESSION_LOCK:
            return session.client(service, endpoint_url=self.endpoint_url, config=config)


@functools.cache
def _session() -> Any:  # Any: the stubs' per-service overloads want a literal name
    """One boto3 session for the process, as ``boto3.client`` uses: botocore loads its data files (endpoints,
    retry rules, each service's model) and resolves the credentials once per session: ``import boto3`` and a
    worker's four clients took 0.65 s from four sessions, 0.39 s from one (``bench/standby.py``)."""
    import boto3

    return boto3.session.Session()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
