"""The DynamoDB job store's table: created with its indexes when missing, migrated when it has none.

Partition key ``pk`` (S), sort key ``sk`` (S), on-demand billing, TTL attribute ``expires_at`` (only items written
by earlier versions carry it), and five global secondary indexes, each queried for one kind of listing so no
request path scans the table:

============================  ======================  ============  =========================================
index                         partition key           sort key      serves
============================  ======================  ============  =========================================
``by_created``                ``g_all``               ``g_created``  every job, newest first
``by_state``                  ``state``               ``g_created``  one state's jobs, newest first
``by_rendition_state``        ``g_rendition_state``   ``g_created``  one rendition's jobs in one state
``by_updated``                ``g_all``               ``g_updated``  what changed since a time; retention
``by_key``                    ``g_all``               ``key``        the jobs under a key prefix
============================  ======================  ============  =========================================

All but ``by_key`` project keys only (a page is a Query, then one BatchGetItem), so a job's progress updates
write one index (``by_updated``). ``by_key`` also projects ``g_created`` and ``state``. The ``g_all`` partition
holds every job: DynamoDB serves about 1,000 index writes a second per partition value, far above the rate at
which jobs change here.

A table made by an earlier version has no indexes: :func:`ensure_table` migrates it once (scan the jobs, write
their index attributes and drop their TTL, count them by state, then add the indexes and wait for them).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from videoconverter.aws.clients import error_code
from videoconverter.errors import ConfigError
from videoconverter.jobs.base import JobState
from videoconverter.jobs.counters import state_counter
from videoconverter.jobs.dynamodb_items import (
    COUNTERS_PK,
    JOB_PREFIX,
    attributes,
    index_values,
    job_id_of,
    n,
    s,
)

log = logging.getLogger(__name__)
TTL_ATTRIBUTE = "expires_at"
TABLE_WAIT_SECONDS = 300
INDEX_WAIT_SECONDS = 3600  # an index added to a large table is backfilled by DynamoDB first
KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
#: index name -> (partition key, sort key, projected non-key attributes or None for keys only)
INDEXES: dict[str, tuple[str, str, list[str] | None]] = {
    "by_created": ("g_all", "g_created", None),
    "by_state": ("state", "g_created", None),
    "by_rendition_state": ("g_rendition_state", "g_created", None),
    "by_updated": ("g_all", "g_updated", None),
    "by_key": ("g_all", "key", ["g_created", "state"]),
}
ATTRIBUTES = ["pk", "sk", "g_all", "g_created", "state", "g_rendition_state", "g_updated", "key"]


def index_definition(name: str) -> dict[str, Any]:
    """One index as CreateTable and UpdateTable take it (what the CloudFormation template declares too)."""
    partition, sort, projected = INDEXES[name]
    projection: dict[str, Any] = {"ProjectionType": "KEYS_ONLY"}
    if projected:
        projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": projected}
    keys = [{"AttributeName": partition, "KeyType": "HASH"}, {"AttributeName": sort, "KeyType": "RANGE"}]
    return {"IndexName": name, "KeySchema": keys, "Projection": projection}


def attribute_definitions(names: list[str]) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def ensure_table(client: Any, table: str, where: str) -> None:
    """Create the table (with its indexes and TTL) unless it exists; check an existing one's key schema and
    migrate it when it lacks indexes; wait until the table and its indexes are active. Tolerates another
    process doing the same at the same time."""
    try:
        description = client.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        _create(client, table)
        return
    if sorted(description["KeySchema"], key=str) != sorted(KEY_SCHEMA, key=str):
        raise ConfigError(f"jobs: DynamoDB {where} exists with another key schema (expected pk, sk)")
    _wait_active(client, table, TABLE_WAIT_SECONDS)
    missing = [name for name in INDEXES if name not in _index_names(description)]
    if missing:
        log.warning("jobs: DynamoDB %s has no index %s: migrating it (once)", where, ", ".join(missing))
        _migrate(client, table, missing)
    _wait_active(client, table, INDEX_WAIT_SECONDS)


def _create(client: Any, table: str) -> None:
    created = True
    try:
        client.create_table(
            TableName=table,
            KeySchema=KEY_SCHEMA,
            AttributeDefinitions=attribute_definitions(ATTRIBUTES),
            GlobalSecondaryIndexes=[index_definition(name) for name in INDEXES],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":  # another process is creating it
            raise
        created = False
    _wait_active(client, table, TABLE_WAIT_SECONDS)
    if created:  # TTL only saves space: the store works where it cannot be enabled
        with contextlib.suppress(ClientError):
            client.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
            )


def _migrate(client: Any, table: str, missing: list[str]) -> None:
    """Give every job its index attributes (and no TTL), set the state counters from them, add the indexes.
    Every step may run twice (two processes, or one that died half-way) with the same result."""
    counts: dict[tuple[str, JobState], int] = {}
    params: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": True,
        "FilterExpression": "begins_with(sk, :job)",
        "ExpressionAttributeValues": {":job": s(JOB_PREFIX)},
    }
    while True:  # a one-time migration, not a request path: the only Scan of the store
        page = client.scan(**params)
        for item in page.get("Items", []):
            state = JobState(item["state"]["S"])
            job_id = job_id_of(item)
            counts[(job_id.rendition, state)] = counts.get((job_id.rendition, state), 0) + 1
            created, updated = float(item["created_at"]["N"]), float(item["updated_at"]["N"])
            values = index_values(job_id, state, created, updated)
            with contextlib.suppress(ClientError):  # deleted meanwhile: nothing to index
                client.update_item(
                    TableName=table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression=f"SET {', '.join(f'{k} = :{k}' for k in values)} REMOVE {TTL_ATTRIBUTE}",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues=attributes({f":{k}": v for k, v in values.items()}),
                )
        if "LastEvaluatedKey" not in page:
            break
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for rendition in sorted({r for r, _ in counts}):
        names = {f"#c{i}": state_counter(state) for i, state in enumerate(JobState)}
        client.update_item(
            TableName=table,
            Key={"pk": s(COUNTERS_PK), "sk": s(rendition)},
            UpdateExpression="SET " + ", ".join(f"#c{i} = :c{i}" for i in range(len(names))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":c{i}": n(counts.get((rendition, st), 0)) for i, st in enumerate(JobState)},
        )
    for name in missing:
        _add_index(client, table, name)


def _add_index(client: Any, table: str, name: str) -> None:
    """Add one index (DynamoDB creates one per UpdateTable, while no other update runs) and wait for it; one that
    another process added meanwhile is left alone."""
    partition, sort, _ = INDEXES[name]
    for _attempt in range(20):
        try:
            client.update_table(
                TableName=table,
                AttributeDefinitions=attribute_definitions([partition, sort]),
                GlobalSecondaryIndexUpdates=[{"Create": index_definition(name)}],
            )
            break
        except ClientError as exc:
            if name in _index_names(client.describe_table(TableName=table)["Table"]):
                break
            if error_code(exc) not in ("ResourceInUseException", "LimitExceededException"):
                raise
            _wait_active(client, table, INDEX_WAIT_SECONDS)  # another update runs: after it, try again
    _wait_active(client, table, INDEX_WAIT_SECONDS)


def _index_names(description: dict[str, Any]) -> set[str]:
    return {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}


def _wait_active(client: Any, table: str, timeout_seconds: float) -> None:
    """Until the table and every index of it are ACTIVE."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.05
    while True:
        try:
            description = client.describe_table(TableName=table)["Table"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            description = {"TableStatus": "CREATING"}
        statuses = [description["TableStatus"]]
        statuses += [index.get("IndexStatus", "ACTIVE") for index in description.get("GlobalSecondaryIndexes", [])]
        if all(status == "ACTIVE" for status in statuses):
            return
        if time.monotonic() > deadline:
            raise ConfigError(f"jobs: DynamoDB table {table} is still {', '.join(statuses)} after {timeout_seconds} s")
        time.sleep(delay)
        delay = min(2.0, delay * 2)
