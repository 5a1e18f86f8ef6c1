"""The DynamoDB job store, for the AWS deployment. URL: ``dynamodb://TABLE[?endpoint_url=...&region=...]``.

Optional extra ``videoconverter[aws]`` (boto3). One table holds jobs and their log lines; its schema is fixed,
since a CloudFormation template declares the same table: partition key ``pk`` (S), sort key ``sk`` (S),
on-demand billing, no secondary indexes, TTL attribute ``expires_at`` (epoch seconds). Items:

- a job: ``pk`` = the upload key, ``sk`` = ``job#<rendition>#<source_etag>``, plus one attribute per
  :class:`~videoconverter.jobs.base.JobRecord` field; finished jobs expire :data:`RETENTION_SECONDS` later.
- a log line: ``pk`` = the upload key, ``sk`` = ``log#<nanoseconds, zero-padded>#<random suffix>``, so a Query
  returns a key's lines oldest first; each expires :data:`RETENTION_SECONDS` after it was written.

Every transition is one conditional write (``ConditionExpression``/``UpdateExpression``), never a
read-modify-write, so any number of processes may share the table. The table is created on first open if missing.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from videoconverter.aws.clients import AwsLocation, error_code
from videoconverter.errors import ConfigError, TransientError
from videoconverter.jobs.base import JobId, JobLogLine, JobRecord, JobState
from videoconverter.logs import redact

#: How long finished jobs and log lines are kept before DynamoDB's TTL deletes them.
RETENTION_SECONDS = 14 * 24 * 3600
TTL_ATTRIBUTE = "expires_at"
TABLE_WAIT_SECONDS = 300
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
_JOB_PREFIX = "job#"
_LOG_PREFIX = "log#"
_CONDITION_FAILED = "ConditionalCheckFailedException"
#: Python values for attributes or expression values: ``str`` becomes S, ``int`` and ``float`` become N.
Values = dict[str, str | float]
#: Attribute names for expressions (``state`` and ``key`` are reserved words in DynamoDB).
_NAMES = {"#state": "state", "#error": "error", "#key": "key", "#etag": "source_etag", "#rendition": "rendition"}
_ID_SET = "#key = :key, #etag = :source_etag, #rendition = :rendition"


class DynamoDBJobStore:
    """URL: ``dynamodb://TABLE``; ``endpoint_url`` and ``region`` query parameters are optional."""

    def __init__(self, location: AwsLocation) -> None:
        """Connect to ``location.name``'s table, creating it if it does not exist.

        Raises ConfigError when the table name is invalid, DynamoDB cannot be reached, or an existing table has
        another key schema.
        """
        if not _TABLE_NAME.match(location.name):
            raise ConfigError(
                f"jobs: DynamoDB table name {location.name!r} must be 3-255 letters, digits, '_', '-' or '.' "
                "(dynamodb://TABLE)"
            )
        self._table = location.name
        endpoint = f" at {location.endpoint_url}" if location.endpoint_url else ""
        self._where = redact(f"table {location.name} in {location.region}{endpoint}")
        self._client: Any = location.client("dynamodb")
        self._log_lock = threading.Lock()
        self._last_log_ns = 0
        try:
            self._ensure_table()
        except (BotoCoreError, ClientError) as exc:
            raise ConfigError(f"jobs: cannot open DynamoDB {self._where}: {_describe(exc)}") from exc

    @classmethod
    def from_url(cls, url: str) -> DynamoDBJobStore:
        return cls(AwsLocation.from_url(url))

    # --- the JobStore protocol ----------------------------------------------------------------------------

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        """Put a queued record unless one exists (then leave it unchanged); return the current record."""
        now = time.time()
        fields: Values = {"state": JobState.QUEUED, "attempts": 0, "created_at": now, "updated_at": now}
        item = {**self._job(job_id)["Key"], **_attributes(_identity(job_id) | fields | {"sequencer": sequencer})}
        self._conditional("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")
        return _found(job_id, self.get(job_id))

    def start(self, job_id: JobId, attempt: int) -> JobRecord:
        """Mark running (creating the record if needed); attempts becomes the larger of the stored and ``attempt``."""
        update = (
            f"SET {_ID_SET}, #state = :running, updated_at = :now, started_at = :now, progress_percent = :zero, "
            f"created_at = if_not_exists(created_at, :now)"
        )
        values: Values = {**_identity(job_id), "running": JobState.RUNNING, "now": time.time(), "zero": 0}
        # Two atomic writes, never a read-modify-write: raise attempts if that raises it, else leave it alone.
        raised = self._update(
            job_id,
            f"{update}, attempts = :attempt REMOVE {TTL_ATTRIBUTE}",
            values | {"attempt": attempt},
            condition="attribute_not_exists(attempts) OR attempts < :attempt",
        )
        return raised or _found(job_id, self._update(job_id, f"{update} REMOVE {TTL_ATTRIBUTE}", values))

    def progress(self, job_id: JobId, percent: float) -> None:
        """Record progress (clamped to 0-100) only while the job is running; otherwise do nothing."""
        self._update(
            job_id,
            "SET progress_percent = :percent, updated_at = :now",
            {"percent": max(0.0, min(100.0, percent)), "now": time.time(), "running": JobState.RUNNING},
            condition="#state = :running",
        )

    def finish(
        self, job_id: JobId, output_url: str, note: str = "", output_size: int | None = None, quality: str = ""
    ) -> JobRecord:
        """Mark done with the output, note, size and quality search, clearing the error. Raises LookupError when
        there is no record."""
        now = time.time()
        update = (
            "SET #state = :done, progress_percent = :hundred, output_url = :output, note = :note, #error = :empty, "
            f"updated_at = :now, finished_at = :now, {TTL_ATTRIBUTE} = :expires"
        )
        values: Values = {"done": JobState.DONE, "hundred": 100, "output": output_url, "note": note, "empty": ""}
        values |= {"now": now, "expires": int(now) + RETENTION_SECONDS}
        removed = []
        if output_size is None:
            removed.append("output_size")
        else:
            update += ", output_size = :size"
            values["size"] = output_size
        if quality:  # quality per title: the VMAF search as JSON text
            update += ", quality = :quality"
            values["quality"] = quality
        else:
            removed.append("quality")
        update += f" REMOVE {', '.join(removed)}" if removed else ""
        return _found(job_id, self._update(job_id, update, values, condition="attribute_exists(pk)"))

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "") -> JobRecord:
        """Mark queued again, keeping the error. Raises LookupError when there is no record."""
        update = f"SET #state = :queued, #error = :error, stderr_tail = :tail, updated_at = :now REMOVE {TTL_ATTRIBUTE}"
        values: Values = {"queued": JobState.QUEUED, "error": error, "tail": stderr_tail, "now": time.time()}
        return _found(job_id, self._update(job_id, update, values, condition="attribute_exists(pk)"))

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "") -> JobRecord:
        """Mark failed with the error and stderr tail, creating the record if needed."""
        now = time.time()
        update = (
            f"SET {_ID_SET}, #state = :failed, updated_at = :now, finished_at = :now, #error = :error, "
            "stderr_tail = :tail, created_at = if_not_exists(created_at, :now), "
            f"attempts = if_not_exists(attempts, :zero), {TTL_ATTRIBUTE} = :expires"
        )
        values: Values = {
            **_identity(job_id),
            "failed": JobState.FAILED,
            "now": now,
            "error": error,
            "tail": stderr_tail,
        }
        values |= {"zero": 0, "expires": int(now) + RETENTION_SECONDS}
        return _found(job_id, self._update(job_id, update, values))

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        """Mark failed jobs (of ``key`` and ``rendition`` when given) queued again; return how many changed.

        Each job changes in its own conditional write (is it still failed?), so concurrent redrives count it once.
        """
        changed = 0
        for record in self.find(key, states=[JobState.FAILED]):
            if rendition is None or record.id.rendition == rendition:
                requeued = self._update(
                    record.id,
                    f"SET #state = :queued, updated_at = :now REMOVE finished_at, {TTL_ATTRIBUTE}",
                    {"queued": JobState.QUEUED, "failed": JobState.FAILED, "now": time.time()},
                    condition="#state = :failed",
                )
                changed += requeued is not None
        return changed

    def get(self, job_id: JobId) -> JobRecord | None:
        """The job's record (a strongly consistent read), or None."""
        item = self._call("get_item", **self._job(job_id), ConsistentRead=True).get("Item")
        return _record(item) if item else None

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        """Jobs, newest first, optionally only for ``key`` and in ``states``.

        With a key this is a Query of that key's items; without one it is a Scan of the whole table (jobs and log
        lines), which is fine at dashboard scale but reads every item.
        """
        values: Values = {":job": _JOB_PREFIX}
        values |= {f":s{i}": state for i, state in enumerate(states)}
        filters = [f"#state IN ({', '.join(f':s{i}' for i in range(len(states)))})"] if states else []
        params: dict[str, Any] = {"ExpressionAttributeNames": {"#state": "state"}} if states else {}
        if key is None:
            operation, filters = "scan", ["begins_with(sk, :job)", *filters]
        else:
            operation, values[":pk"] = "query", key
            params["KeyConditionExpression"] = "pk = :pk AND begins_with(sk, :job)"
        if filters:
            params["FilterExpression"] = " AND ".join(filters)
        items = self._pages(operation, ExpressionAttributeValues=_attributes(values), **params)
        records = sorted((_record(item) for item in items), key=lambda r: (r.id.key, r.id.rendition))
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        """Keep one log line; it expires :data:`RETENTION_SECONDS` later."""
        with self._log_lock:  # strictly increasing within this store, so one process's lines keep their order
            at_ns = self._last_log_ns = max(time.time_ns(), self._last_log_ns + 1)
        sort_key = f"{_LOG_PREFIX}{at_ns:020d}#{secrets.token_hex(4)}"
        line: Values = {"pk": key, "sk": sort_key, "key": key, "rendition": rendition, "at": at_ns / 1e9}
        line |= {"level": level, "message": message, TTL_ATTRIBUTE: at_ns // 10**9 + RETENTION_SECONDS}
        self._call("put_item", Item=_attributes(line))

    def logs(self, key: str) -> list[JobLogLine]:
        """Every kept log line of ``key``, oldest first (a Query in sort-key order)."""
        items = self._pages(
            "query",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :log)",
            ExpressionAttributeValues={":pk": _s(key), ":log": _s(_LOG_PREFIX)},
        )
        return [
            JobLogLine(i["key"]["S"], i["rendition"]["S"], float(i["at"]["N"]), i["level"]["S"], i["message"]["S"])
            for i in items
        ]

    def close(self) -> None:
        """Release the client's connections."""
        self._client.close()

    # --- helpers ------------------------------------------------------------------------------------------

    def _ensure_table(self) -> None:
        """Create the table (and enable its TTL) unless it exists; check an existing one's key schema; wait until
        it is active. Tolerates another process creating it at the same time."""
        created = False
        try:
            table = self._client.describe_table(TableName=self._table)["Table"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            created = self._create_table()
        else:
            if sorted(table["KeySchema"], key=str) != sorted(_KEY_SCHEMA, key=str):
                raise ConfigError(f"jobs: DynamoDB {self._where} exists with another key schema (expected pk, sk)")
        delay = 2
        self._client.get_waiter("table_exists").wait(
            TableName=self._table, WaiterConfig={"Delay": delay, "MaxAttempts": TABLE_WAIT_SECONDS // delay}
        )
        if created:  # TTL only saves space: the store works where it cannot be enabled
            with contextlib.suppress(ClientError):
                self._client.update_time_to_live(
                    TableName=self._table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
                )

    def _create_table(self) -> bool:
        """Create the table; False when another process is creating it."""
        attributes = [{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")]
        try:
            self._client.create_table(
                TableName=self._table,
                KeySchema=_KEY_SCHEMA,
                AttributeDefinitions=attributes,
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
            return False
        return True

    def _job(self, job_id: JobId) -> dict[str, Any]:
        """The TableName and Key parameters naming a job's item."""
        return {
            "TableName": self._table,
            "Key": {"pk": _s(job_id.key), "sk": _s(f"{_JOB_PREFIX}{job_id.rendition}#{job_id.source_etag}")},
        }

    def _update(self, job_id: JobId, update: str, values: Values, condition: str = "") -> JobRecord | None:
        """Apply ``update`` atomically (an upsert unless ``condition`` requires the item); ``values`` are named
        without their ``:``. Return the new record, or None when ``condition`` did not hold (nothing changed)."""
        params: dict[str, Any] = {
            "UpdateExpression": update,
            "ExpressionAttributeValues": _attributes({f":{name}": value for name, value in values.items()}),
            "ReturnValues": "ALL_NEW",
        }
        names = {alias: name for alias, name in _NAMES.items() if alias in update + condition}
        if names:
            params["ExpressionAttributeNames"] = names
        if condition:
            params["ConditionExpression"] = condition
        response = self._conditional("update_item", **self._job(job_id), **params)
        return _record(response["Attributes"]) if response else None

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Run one DynamoDB request; connection failures become a TransientError that names the table."""
        params.setdefault("TableName", self._table)
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**params)
        except BotoCoreError as exc:  # endpoint down, timeout, no credentials
            raise TransientError(f"jobs: cannot reach DynamoDB {self._where}: {_describe(exc)}") from exc
        return response

    def _conditional(self, operation: str, **params: Any) -> dict[str, Any] | None:
        """Run a conditional write; None when its condition did not hold (the write was not made)."""
        try:
            return self._call(operation, **params)
        except ClientError as exc:
            if error_code(exc) == _CONDITION_FAILED:
                return None
            raise

    def _pages(self, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a Query or Scan (strongly consistent), following LastEvaluatedKey."""
        while True:
            page = self._call(operation, ConsistentRead=True, **params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _s(value: str) -> dict[str, str]:
    return {"S": str(value)}


def _n(value: float) -> dict[str, str]:
    """A DynamoDB number: a plain decimal string (no exponent), exact for a float's shortest repr."""
    return {"N": format(Decimal(repr(value)), "f")}


def _attributes(values: Values) -> dict[str, dict[str, str]]:
    """Python values as DynamoDB attribute values: ``str`` as S, ``int`` and ``float`` as N."""
    return {name: _s(value) if isinstance(value, str) else _n(value) for name, value in values.items()}


def _identity(job_id: JobId) -> Values:
    """A job's identity attributes (also the values of ``_ID_SET``)."""
    return {"key": job_id.key, "source_etag": job_id.source_etag, "rendition": job_id.rendition}


def _found(job_id: JobId, record: JobRecord | None) -> JobRecord:
    if record is None:
        raise LookupError(f"job {job_id} has no record")
    return record


def _record(item: dict[str, Any]) -> JobRecord:
    def text(name: str) -> str:
        return str(item[name]["S"]) if name in item else ""

    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return JobRecord(
        id=JobId(text("key"), text("source_etag"), text("rendition")),
        state=JobState(text("state")),
        attempts=int(number("attempts") or 0),
        created_at=number("created_at") or 0.0,
        updated_at=number("updated_at") or 0.0,
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        progress_percent=number("progress_percent") or 0.0,
        output_url=text("output_url"),
        error=text("error"),
        stderr_tail=text("stderr_tail"),
        note=text("note"),
        sequencer=text("sequencer"),
        output_size=int(item["output_size"]["N"]) if "output_size" in item else None,
        quality=text("quality"),
    )


def _describe(exc: BaseException) -> str:
    """A short description of an AWS failure: its error code and message, or botocore's message (redacted)."""
    code = error_code(exc)
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        return f"{code}: {message}" if message else code
    return redact(str(exc)) or type(exc).__name__
