"""What the DynamoDB job store does beyond the job store contract: its URL, its table and indexes, the migration
of an earlier version's table, no Scan on a request path, its errors.

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
from videoconverter.jobs.base import ALL_JOBS, JobFilter, JobId, JobState
from videoconverter.jobs.dynamodb import DynamoDBJobStore
from videoconverter.jobs.dynamodb_table import INDEXES, index_definition

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


def test_the_table_is_created_with_its_indexes_and_ttl(table_url: str, client: Any) -> None:
    DynamoDBJobStore.from_url(table_url).close()
    name = AwsLocation.from_url(table_url).name
    table = client.describe_table(TableName=name)["Table"]
    assert sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == {
        "pk", "sk", "g_all", "g_created", "g_updated", "g_rendition_state", "state", "key",
    }  # fmt: skip
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == set(INDEXES)
    for index_name, index in indexes.items():
        wanted = index_definition(index_name)
        assert (index["KeySchema"], index["Projection"]) == (wanted["KeySchema"], wanted["Projection"])
    assert not table.get("LocalSecondaryIndexes")
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


def test_jobs_and_log_lines_no_longer_expire_by_ttl(table_url: str, client: Any) -> None:
    """Retention is `[jobs] retention_days` (prune), which keeps the counters exact; TTL would not."""
    store = DynamoDBJobStore.from_url(table_url)
    store.start(JOB, attempt=1)
    store.finish(JOB, "s3://out/holiday.mp4")
    store.append_log(JOB.key, JOB.rendition, "INFO", "queued")
    assert "expires_at" not in _item(client, table_url, "job#")
    assert "expires_at" not in _item(client, table_url, "line#")
    store.close()


def test_a_redriven_job_loses_its_finish_time(table_url: str, client: Any) -> None:
    store = DynamoDBJobStore.from_url(table_url)
    store.fail(JOB, "boom")
    assert "finished_at" in _item(client, table_url, "job#")
    assert store.requeue_failed(key=JOB.key) == 1
    item = _item(client, table_url, "job#")
    assert "finished_at" not in item and item["g_rendition_state"]["S"] == "720p#queued"
    assert store.requeue_failed(key=JOB.key) == 0
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


def test_an_item_with_no_state_yet_is_no_job(table_url: str, client: Any) -> None:
    """moto's server lets a read see the item an Update is creating before its attributes are set (CI met one)."""
    store = DynamoDBJobStore.from_url(table_url)
    name = AwsLocation.from_url(table_url).name
    client.put_item(TableName=name, Item={"pk": {"S": JOB.key}, "sk": {"S": f"job#{JOB.rendition}#{JOB.source_etag}"}})
    assert store.get(JOB) is None and store.find(JOB.key) == [] and store.page(ALL_JOBS).records == []
    assert store.start(JOB, attempt=1).state is JobState.RUNNING
    assert [r.state for r in store.find(JOB.key)] == [JobState.RUNNING]
    assert store.stats().jobs[("720p", JobState.RUNNING)] == 1
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


def _old_table(client: Any, name: str) -> None:
    """A table as the previous version made it, with a finished job, a queued one and a log line in it."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    now = time.time()
    for key, state, age in (("old.mp4", "done", 100.0), ("waiting.mp4", "queued", 50.0)):
        item = {"pk": {"S": key}, "sk": {"S": "job#720p#etag1"}, "key": {"S": key}, "source_etag": {"S": "etag1"}}
        item |= {"rendition": {"S": "720p"}, "state": {"S": state}, "attempts": {"N": "1"}}
        item |= {"created_at": {"N": str(now - age)}, "updated_at": {"N": str(now - age + 1)}}
        item |= {"expires_at": {"N": str(int(now) + 3600)}, "output_url": {"S": ""}}
        client.put_item(TableName=name, Item=item)
    line = {"pk": {"S": "old.mp4"}, "sk": {"S": f"log#{int((now - 99) * 1e9):020d}#abcd"}, "key": {"S": "old.mp4"}}
    line |= {"rendition": {"S": "720p"}, "at": {"N": str(now - 99)}, "level": {"S": "INFO"}}
    line |= {"message": {"S": "queued for 720p"}, "expires_at": {"N": str(int(now) + 3600)}}
    client.put_item(TableName=name, Item=line)


def test_a_table_of_the_previous_version_is_migrated_on_open(table_url: str, client: Any) -> None:
    name = AwsLocation.from_url(table_url).name
    _old_table(client, name)
    store = DynamoDBJobStore.from_url(table_url)
    indexes = client.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
    assert {i["IndexName"] for i in indexes} == set(INDEXES)
    assert [r.id.key for r in store.page().records] == ["waiting.mp4", "old.mp4"]
    assert [r.id.key for r in store.page(JobFilter(states=(JobState.DONE,))).records] == ["old.mp4"]
    assert store.stats().jobs == {("720p", JobState.DONE): 1, ("720p", JobState.QUEUED): 1}
    job = client.get_item(TableName=name, Key={"pk": {"S": "old.mp4"}, "sk": {"S": "job#720p#etag1"}})["Item"]
    assert "expires_at" not in job and job["g_rendition_state"]["S"] == "720p#done"
    store.append_log("old.mp4", "720p", "INFO", "a new line")
    assert [line.message for line in store.logs("old.mp4")] == ["queued for 720p", "a new line"]
    store.start(JobId("waiting.mp4", "etag1", "720p"), attempt=2)
    assert store.stats().jobs == {("720p", JobState.DONE): 1, ("720p", JobState.RUNNING): 1}
    store.close()
    DynamoDBJobStore.from_url(table_url).close()  # opening again changes nothing
    assert DynamoDBJobStore.from_url(table_url).stats().jobs[("720p", JobState.RUNNING)] == 1


def test_no_request_path_scans_the_table(table_url: str) -> None:
    """Every store call the HTTP API, the live poller, /metrics, the CLI and the workers make: Queries, Gets,
    batches and transactions, never a Scan (which reads the whole table)."""
    store = DynamoDBJobStore.from_url(table_url)
    calls: list[str] = []
    store._db.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    other = JobId("holiday/other.mp4", "etag2", "1080p")
    store.enqueue(JOB)
    store.start(JOB, attempt=1)
    store.progress(JOB, 40)
    store.append_log(JOB.key, JOB.rendition, "INFO", "probed")
    store.finish(JOB, "s3://out/holiday.mp4")
    store.start(other, attempt=1)
    store.retry(other, "FFmpeg failed (exit code 1)")
    store.fail(other, "gave up after 1 attempts")
    for where in (
        ALL_JOBS,
        JobFilter(states=(JobState.QUEUED, JobState.RUNNING)),
        JobFilter(rendition="720p"),
        JobFilter(states=(JobState.FAILED,), rendition="1080p"),
        JobFilter(key_prefix="holiday"),
    ):
        page = store.page(where, 1)
        if page.next_cursor:
            store.page(where, 1, page.next_cursor)
    since = time.time() - 60
    store.changes(since, 1, store.changes(since, 1).next_cursor)
    store.stats()
    store.find(JOB.key)
    store.find(states=[JobState.FAILED])
    store.get(other)
    store.logs(JOB.key)
    assert store.requeue_failed(rendition="1080p") == 1
    assert store.prune(time.time() + 1) == 1
    assert "Scan" not in calls and {"Query", "TransactWriteItems", "BatchGetItem"} <= set(calls), calls
    store.close()
