"""What the DynamoDB job store does beyond the job store contract: its URL, its table, its TTL, its errors.

Runs against moto's server over HTTP (see tests/aws.py); each test uses its own table and deletes it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.aws import MotoServer
from videoconverter.aws.clients import AwsLocation
from videoconverter.errors import ConfigError
from videoconverter.jobs.base import JobId, JobState
from videoconverter.jobs.dynamodb import RETENTION_SECONDS, DynamoDBJobStore

JOB = JobId("holiday.mp4", "etag1", "720p")


@pytest.fixture
def table_url(moto_server: MotoServer) -> Iterator[str]:
    url = moto_server.url("dynamodb", f"vc-unit-{uuid.uuid4().hex[:12]}")
    yield url
    location = AwsLocation.from_url(url)
    client = location.client("dynamodb")
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):  # a test may never create it
        client.delete_table(TableName=location.name)
    client.close()


@pytest.fixture
def client(table_url: str) -> Iterator[Any]:
    c = AwsLocation.from_url(table_url).client("dynamodb")
    yield c
    c.close()


def _item(client: Any, table_url: str, sk_prefix: str) -> dict[str, Any]:
    name = AwsLocation.from_url(table_url).name
    items = client.scan(TableName=name, ConsistentRead=True)["Items"]
    matching = [i for i in items if i["sk"]["S"].startswith(sk_prefix)]
    assert len(matching) == 1, matching
    item: dict[str, Any] = matching[0]
    return item


@pytest.mark.parametrize(
    "url",
    ["dynamodb://", "dynamodb://ab", "dynamodb://bad%20name", "dynamodb://jobs?colour=blue", "dynamodb://a/b"],
)
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        DynamoDBJobStore.from_url(url)


def test_the_table_is_created_with_the_fixed_schema_and_ttl(table_url: str, client: Any) -> None:
    DynamoDBJobStore.from_url(table_url).close()
    name = AwsLocation.from_url(table_url).name
    table = client.describe_table(TableName=name)["Table"]
    assert sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert not table.get("GlobalSecondaryIndexes") and not table.get("LocalSecondaryIndexes")
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_reopening_an_existing_table_keeps_its_jobs(table_url: str) -> None:
    first = DynamoDBJobStore.from_url(table_url)
    first.enqueue(JOB, sequencer="0A")
    first.close()
    second = DynamoDBJobStore.from_url(table_url)
    record = second.get(JOB)
    assert record is not None and (record.state, record.sequencer) == (JobState.QUEUED, "0A")
    second.close()


def test_concurrent_first_opens_share_one_table(table_url: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: DynamoDBJobStore.from_url(table_url), range(4)))
    stores[0].enqueue(JOB)
    assert all(store.get(JOB) is not None for store in stores)
    for store in stores:
        store.close()


def test_a_table_with_another_key_schema_is_refused(table_url: str, client: Any) -> None:
    name = AwsLocation.from_url(table_url).name
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ConfigError, match="key schema"):
        DynamoDBJobStore.from_url(table_url)


def test_finished_jobs_and_log_lines_expire_after_the_retention(table_url: str, client: Any) -> None:
    store = DynamoDBJobStore.from_url(table_url)
    store.start(JOB, attempt=1)
    assert "expires_at" not in _item(client, table_url, "job#")
    before = time.time()
    store.finish(JOB, "s3://out/holiday.mp4")
    expires_at = int(_item(client, table_url, "job#")["expires_at"]["N"])
    assert before + RETENTION_SECONDS - 1 <= expires_at <= time.time() + RETENTION_SECONDS
    store.append_log(JOB.key, JOB.rendition, "INFO", "queued")
    assert int(_item(client, table_url, "log#")["expires_at"]["N"]) >= before + RETENTION_SECONDS - 1
    store.close()


def test_a_redriven_job_no_longer_expires(table_url: str, client: Any) -> None:
    store = DynamoDBJobStore.from_url(table_url)
    store.fail(JOB, "boom")
    assert "expires_at" in _item(client, table_url, "job#")
    assert store.requeue_failed(key=JOB.key) == 1
    item = _item(client, table_url, "job#")
    assert "expires_at" not in item and "finished_at" not in item
    store.close()


def test_a_late_start_never_lowers_attempts(table_url: str) -> None:
    store = DynamoDBJobStore.from_url(table_url)
    store.start(JOB, attempt=3)
    store.retry(JOB, "transient")
    record = store.start(JOB, attempt=2)
    assert (record.state, record.attempts) == (JobState.RUNNING, 3)
    store.close()


def test_finish_without_a_record_raises_lookup_error(table_url: str) -> None:
    store = DynamoDBJobStore.from_url(table_url)
    with pytest.raises(LookupError):
        store.finish(JOB, "s3://out/holiday.mp4")
    assert store.get(JOB) is None  # no half-made item was left behind
    store.close()


def test_an_unreachable_endpoint_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config

    def one_try_client(self: AwsLocation, service: str) -> Any:  # the real client retries for half a minute
        config = Config(region_name=self.region, retries={"max_attempts": 1}, connect_timeout=2)
        return boto3.session.Session().client(service, endpoint_url=self.endpoint_url, config=config)

    monkeypatch.setattr(AwsLocation, "client", one_try_client)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=r"cannot open DynamoDB table jobs-table .*127\.0\.0\.1:9") as caught:
        DynamoDBJobStore.from_url("dynamodb://jobs-table?endpoint_url=http://user:hunter2@127.0.0.1:9")
    assert "hunter2" not in str(caught.value)
