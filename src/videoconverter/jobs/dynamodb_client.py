"""The DynamoDB job store's requests: calls with their errors, transactions, index ranges, batch reads."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from videoconverter.aws.clients import error_code
from videoconverter.errors import TransientError
from videoconverter.jobs.base import JobFilter, JobId, JobRecord
from videoconverter.jobs.dynamodb_items import (
    COUNTERS_PK,
    JOB_PARTITION,
    NAMES,
    IndexEntry,
    Values,
    attributes,
    job_id_of,
    job_key,
    n,
    records,
    s,
)
from videoconverter.jobs.dynamodb_table import INDEXES
from videoconverter.logs import redact

#: Counters are spread over this many items per rendition, so concurrent transitions rarely contend for one.
COUNTER_SHARDS = 8
TRANSACTION_ATTEMPTS = 8
BATCH_GET_SIZE = 100  # BatchGetItem's limit
BATCH_WRITE_SIZE = 25  # BatchWriteItem's limit


class Table:
    """One table, spoken to through a boto3 client; failures to reach it become TransientError."""

    def __init__(self, client: Any, name: str, where: str) -> None:
        self.client = client
        self.name = name
        self.where = where

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Run one request on this table (batch and transaction requests name it per item)."""
        if operation not in ("batch_get_item", "batch_write_item", "transact_write_items"):
            params.setdefault("TableName", self.name)
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        except BotoCoreError as exc:  # endpoint down, timeout, no credentials
            raise TransientError(f"jobs: cannot reach DynamoDB {self.where}: {describe(exc)}") from exc
        return response

    def conditional(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """Run a conditional write; None when its condition did not hold (the write was not made)."""
        try:
            return self.call(operation, **params)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise

    def pages(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query, following LastEvaluatedKey."""
        while True:
            page = self.call("query", **params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def partition(self, key: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The items of ``key``'s partition whose sort key starts with ``prefix`` (strongly consistent)."""
        return self.pages(
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": s(key), ":prefix": s(prefix)},
        )

    # --- transactions -------------------------------------------------------------------------------------

    def transact(self, items: list[dict[str, Any]]) -> bool:
        """Run one transaction; False when a condition did not hold. Conflicts with another transaction on the
        same items are retried after a short, random pause."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self.call("transact_write_items", TransactItems=items)
                return True
            except ClientError as exc:
                reasons = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                if error_code(exc) not in ("TransactionCanceledException", "TransactionConflictException"):
                    raise
                time.sleep(secrets.randbelow(20 * (attempt + 1)) / 1000)
        raise TransientError(f"jobs: DynamoDB {self.where} is busy (transactions kept conflicting)")

    def job_update(self, job_id: JobId, update: str, values: Values, condition: str) -> dict[str, Any]:
        """A transaction item that updates a job on a condition; ``values`` are named without their ``:``."""
        params: dict[str, Any] = {
            "TableName": self.name,
            "Key": job_key(job_id),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": attributes({f":{name}": value for name, value in values.items()}),
        }
        names = {alias: name for alias, name in NAMES.items() if alias in update + condition}
        if names:
            params["ExpressionAttributeNames"] = names
        return {"Update": params}

    def count(self, rendition: str, increments: list[tuple[str, float]]) -> dict[str, Any]:
        """A transaction item that adds ``increments`` to one of the rendition's counter items."""
        totals: dict[str, float] = {}
        for name, value in increments:
            totals[name] = totals.get(name, 0) + value
        names = {f"#c{i}": name for i, name in enumerate(totals)}
        return {
            "Update": {
                "TableName": self.name,
                "Key": {"pk": s(COUNTERS_PK), "sk": s(f"{rendition}#{secrets.randbelow(COUNTER_SHARDS)}")},
                "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(names))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":c{i}": n(v) for i, v in enumerate(totals.values())},
            }
        }

    # --- indexes and batches ------------------------------------------------------------------------------

    def range_params(
        self, index: str, value: str, *, below: str | None = None, above: str | None = None, start: str | None = None
    ) -> dict[str, Any]:
        """A Query of one partition of ``index``, its sort key ``< below``, ``> above`` or ``>= start``."""
        partition, sort, _ = INDEXES[index]
        condition, names, values = "#p = :p", {"#p": partition}, {":p": s(value)}
        for operator, bound in (("<", below), (">", above), (">=", start)):
            if bound is not None:
                condition, names = f"{condition} AND #s {operator} :b", {**names, "#s": sort}
                values[":b"] = s(bound)
        return {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def entries(self, params: dict[str, Any], limit: int, forward: bool) -> list[IndexEntry]:
        """Up to ``limit`` entries of a keys-only index range, in its sort key's order."""
        found: list[IndexEntry] = []
        sort = INDEXES[params["IndexName"]][1]
        while len(found) < limit:
            page = self.call("query", **params, ScanIndexForward=forward, Limit=limit - len(found))
            found += [entry(item, sort) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found

    def under_prefix(self, where: JobFilter, below: str | None, limit: int) -> list[IndexEntry]:
        """Every job under the prefix, from by_key (which projects state and creation), filtered, newest first."""
        items = self.pages(
            IndexName="by_key",
            KeyConditionExpression="g_all = :job AND begins_with(#key, :prefix)",
            ExpressionAttributeNames={"#key": "key"},
            ExpressionAttributeValues={":job": s(JOB_PARTITION), ":prefix": s(where.key_prefix)},
        )
        entries = [
            entry(item, "g_created")
            for item in items
            if (not where.states or item["state"]["S"] in where.states)
            and where.rendition in (None, job_id_of(item).rendition)
            and (below is None or item["g_created"]["S"] < below)
        ]
        return sorted(entries, key=lambda e: e.sort, reverse=True)[:limit]

    def fetch(self, entries: list[IndexEntry]) -> list[JobRecord]:
        """The records ``entries`` name (strongly consistent), in their order; any deleted meanwhile left out."""
        found: dict[JobId, JobRecord] = {}
        for start in range(0, len(entries), BATCH_GET_SIZE):
            keys = [job_key(e.job_id) for e in entries[start : start + BATCH_GET_SIZE]]
            request: dict[str, Any] = {self.name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                reply = self.call("batch_get_item", RequestItems=request)
                found.update((r.id, r) for r in records(reply.get("Responses", {}).get(self.name, [])))
                request = reply.get("UnprocessedKeys") or {}
        return [found[e.job_id] for e in entries if e.job_id in found]

    def delete_items(self, items: list[dict[str, Any]]) -> None:
        """Delete items by their ``pk`` and ``sk``, 25 a request."""
        for start in range(0, len(items), BATCH_WRITE_SIZE):
            chunk = items[start : start + BATCH_WRITE_SIZE]
            request: dict[str, Any] = {
                self.name: [{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in chunk]
            }
            while request:
                request = self.call("batch_write_item", RequestItems=request).get("UnprocessedItems") or {}


def entry(item: dict[str, Any], sort: str) -> IndexEntry:
    return IndexEntry(item[sort]["S"], job_id_of(item))


def describe(exc: BaseException) -> str:
    """A short description of an AWS failure: its error code and message, or botocore's message (redacted)."""
    code = error_code(exc)
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        return f"{code}: {message}" if message else code
    return redact(str(exc)) or type(exc).__name__
