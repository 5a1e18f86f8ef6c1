"""The DynamoDB job store, for the AWS deployment. URL: ``dynamodb://TABLE[?endpoint_url=...&region=...]``.

Optional extra ``videoconverter[aws]`` (boto3). One table holds jobs, their log lines and their counters (layout:
:mod:`~videoconverter.jobs.dynamodb_items`; table, indexes and migration: :mod:`~videoconverter.jobs.dynamodb_table`,
as the CloudFormation template declares them). Listings are Queries of an index, never a Scan.

A transition reads the job, then writes it in one transaction with the counters it changes, on condition that
its state and attempts are still what was read; a concurrent change makes it read and try again. So any number
of processes may share the table, and the counters stay exact.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from videoconverter.aws.clients import AwsLocation
from videoconverter.errors import ConfigError, TransientError
from videoconverter.jobs import base
from videoconverter.jobs import dynamodb_changes as changes
from videoconverter.jobs.base import JobFilter, JobId, JobLogLine, JobPage, JobRecord, JobState, JobStats
from videoconverter.jobs.counters import (
    line_to_drop,
    state_counter,
    stats_from,
    with_dropped_notes,
)
from videoconverter.jobs.dynamodb_changes import Plan
from videoconverter.jobs.dynamodb_client import Table, describe, entry
from videoconverter.jobs.dynamodb_items import (
    COUNTERS_PK,
    JOB_PARTITION,
    JOB_PREFIX,
    LEGACY_LOG_PREFIX,
    LINE_PREFIX,
    LINES_PREFIX,
    Values,
    attributes,
    identity,
    index_time,
    index_values,
    job_key,
    line_sort_key,
    log_line,
    n,
    place,
    records,
    s,
)
from videoconverter.jobs.dynamodb_pieces import DynamoDBPieces
from videoconverter.jobs.dynamodb_table import ensure_table
from videoconverter.jobs.paging import Order, check_limit, decode_cursor, encode_cursor, matches, states_of
from videoconverter.jobs.timeline import Timeline
from videoconverter.logs import redact

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
TRANSITION_ATTEMPTS = 8
POLL_SECONDS = 0.25  # wait_for_change


class DynamoDBJobStore(DynamoDBPieces):
    """URL: ``dynamodb://TABLE``; ``endpoint_url`` and ``region`` query parameters are optional."""

    def __init__(self, location: AwsLocation) -> None:
        """Connect to ``location.name``'s table, creating it, or migrating one of an earlier version.

        Raises ConfigError when the table name is invalid, DynamoDB cannot be reached, or an existing table has
        another key schema.
        """
        if not _TABLE_NAME.match(location.name):
            raise ConfigError(
                f"jobs: DynamoDB table name {location.name!r} must be 3-255 letters, digits, '_', '-' or '.' "
                "(dynamodb://TABLE)"
            )
        endpoint = f" at {location.endpoint_url}" if location.endpoint_url else ""
        where = redact(f"table {location.name} in {location.region}{endpoint}")
        self._db = Table(location.client("dynamodb"), location.name, where)
        self._log_lock = threading.Lock()
        self._last_log_ns = 0
        try:
            ensure_table(self._db.client, location.name, where)
        except (BotoCoreError, ClientError) as exc:
            raise ConfigError(f"jobs: cannot open DynamoDB {where}: {describe(exc)}") from exc

    @classmethod
    def from_url(cls, url: str) -> DynamoDBJobStore:
        return cls(AwsLocation.from_url(url))

    # --- transitions --------------------------------------------------------------------------------------

    def enqueue(self, job_id: JobId, sequencer: str = "") -> JobRecord:
        """Put a queued record unless one exists (then leave it unchanged); return the current record."""
        now = time.time()
        fields: Values = {"state": JobState.QUEUED, "attempts": 0, "created_at": now, "updated_at": now}
        fields |= identity(job_id) | index_values(job_id, JobState.QUEUED, now, now) | {"sequencer": sequencer}
        put = {"TableName": self._db.name, "Item": {**job_key(job_id), **attributes(fields)}}
        put["ConditionExpression"] = "attribute_not_exists(pk)"
        self._db.transact([{"Put": put}, self._db.count(job_id.rendition, [(state_counter(JobState.QUEUED), 1)])])
        return _found(job_id, self.get(job_id))

    def start(self, job_id: JobId, attempt: int, holder: str = "", fresh_seconds: float = 0.0) -> JobRecord:
        """Mark running for ``holder`` (creating the record if needed) unless another holder runs it and updated
        it less than ``fresh_seconds`` ago; attempts becomes the larger of the stored and ``attempt``; the
        timeline is removed (the new attempt's is recorded when it ends)."""
        plan = changes.start(job_id, attempt, holder, fresh_seconds)
        return _found(job_id, self._transition(job_id, JobState.RUNNING, plan, create=True)[0])

    def progress(self, job_id: JobId, percent: float) -> None:
        """Record progress (clamped to 0-100) only while the job is running; otherwise do nothing."""
        now = time.time()
        values: Values = {":percent": max(0.0, min(100.0, percent)), ":now": now, ":running": JobState.RUNNING}
        values[":g_updated"] = index_values(job_id, JobState.RUNNING, now, now)["g_updated"]
        self._db.conditional(
            "update_item",
            Key=job_key(job_id),
            UpdateExpression="SET progress_percent = :percent, updated_at = :now, g_updated = :g_updated",
            ConditionExpression="#state = :running",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=attributes(values),
        )

    def finish(
        self,
        job_id: JobId,
        output_url: str,
        note: str = "",
        output_size: int | None = None,
        quality: str = "",
        timeline: Timeline | None = None,
    ) -> JobRecord:
        """Mark done with the output, note, size (removed when unknown), quality search (removed when none) and
        timeline (done now), clearing the error; a job that ran adds its run time to the histogram. Raises
        LookupError when there is no record."""
        plan = changes.finish(output_url, note, output_size, quality, timeline)
        return _found(job_id, self._transition(job_id, JobState.DONE, plan, create=False)[0])

    def retry(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        """Mark queued again, keeping the error (and the timeline, when given). Raises LookupError when there is
        no record."""
        plan = changes.retry(error, stderr_tail, timeline)
        return _found(job_id, self._transition(job_id, JobState.QUEUED, plan, create=False)[0])

    def fail(self, job_id: JobId, error: str, stderr_tail: str = "", timeline: Timeline | None = None) -> JobRecord:
        """Mark failed with the error, stderr tail (and timeline, when given), creating the record if needed;
        count the failure's cause unless the job had failed already."""
        plan = changes.fail(job_id, error, stderr_tail, timeline)
        return _found(job_id, self._transition(job_id, JobState.FAILED, plan, create=True)[0])

    def requeue_failed(self, key: str | None = None, rendition: str | None = None) -> int:
        """Mark failed jobs (of ``key`` and ``rendition`` when given) queued again; return how many changed.

        Each job changes in its own conditional transaction (is it still failed?), so concurrent redrives count
        it once."""
        failed = self.find(key, [JobState.FAILED]) if key is not None else self._walk((JobState.FAILED,), rendition)
        return sum(
            self._transition(r.id, JobState.QUEUED, changes.requeue, create=False)[1]
            for r in failed
            if rendition is None or r.id.rendition == rendition
        )

    # --- reads --------------------------------------------------------------------------------------------

    def get(self, job_id: JobId) -> JobRecord | None:
        """The job's record (a strongly consistent read), or None."""
        item = self._db.call("get_item", Key=job_key(job_id), ConsistentRead=True).get("Item")
        found = records([item] if item else [])
        return found[0] if found else None

    def find(self, key: str | None = None, states: Sequence[JobState] = ()) -> list[JobRecord]:
        """Jobs, newest first: a key's are one Query of its partition; without a key, a walk of the indexes."""
        if key is None:
            found = list(self._walk(tuple(states)))
        else:
            found = [r for r in records(self._db.partition(key, JOB_PREFIX)) if not states or r.state in states]
        ordered = sorted(found, key=lambda r: (r.id.key, r.id.rendition))
        return sorted(ordered, key=lambda r: r.created_at, reverse=True)

    def page(
        self, where: JobFilter = base.ALL_JOBS, limit: int = base.DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> JobPage:
        """A Query of the index that serves ``where`` (one per state when it names several, merged), then one
        BatchGetItem of the page's records; records whose state moved on meanwhile are left out."""
        limit = check_limit(limit)
        below = place(decode_cursor(Order.CREATED, cursor)) if cursor else None
        if where.key_prefix:
            entries = self._db.under_prefix(where, below, limit + 1)
        else:
            runs = [
                self._db.entries(self._db.range_params(index, value, below=below), limit + 1, forward=False)
                for index, value in _ranges(where)
            ]
            entries = list(heapq.merge(*runs, key=lambda e: e.sort, reverse=True))[: limit + 1]
        records = [r for r in self._db.fetch(entries[:limit]) if matches(r, where)]
        more = encode_cursor(Order.CREATED, entries[limit - 1].position) if len(entries) > limit else None
        return JobPage(records, more)

    def changes(self, since: float, limit: int = base.DEFAULT_PAGE_SIZE, cursor: str | None = None) -> JobPage:
        """A Query of the by_updated index from ``since`` (or after the cursor), then the records."""
        limit = check_limit(limit)
        if cursor:
            params = self._db.range_params(
                "by_updated", JOB_PARTITION, above=place(decode_cursor(Order.UPDATED, cursor))
            )
        else:
            params = self._db.range_params("by_updated", JOB_PARTITION, start=index_time(since))
        entries = self._db.entries(params, limit + 1, forward=True)
        more = encode_cursor(Order.UPDATED, entries[limit - 1].position) if len(entries) > limit else None
        return JobPage(self._db.fetch(entries[:limit]), more)

    def stats(self) -> JobStats:
        """One Query of the counters' partition (a few items per rendition)."""
        items = self._db.pages(
            ConsistentRead=True, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": s(COUNTERS_PK)}
        )
        return stats_from(
            (item["sk"]["S"].split("#", 1)[0], name, float(value["N"]))
            for item in items
            for name, value in item.items()
            if name not in ("pk", "sk") and "N" in value
        )

    # --- retention and log lines --------------------------------------------------------------------------

    def prune(self, before: float, batch_size: int = base.PRUNE_BATCH_SIZE) -> int:
        """Walk the by_updated index up to ``before``; delete each finished job with its counter in a
        transaction (on condition that it is unchanged), then its key's and rendition's older log lines."""
        deleted, params = 0, self._db.range_params("by_updated", JOB_PARTITION, below=index_time(before))
        while True:
            page = self._db.call("query", **params, ScanIndexForward=True, Limit=batch_size)
            pruned: set[tuple[str, str]] = set()
            for old in self._db.fetch([entry(item, "g_updated") for item in page.get("Items", [])]):
                if old.state.terminal and old.updated_at < before and self._delete(old):
                    deleted += 1
                    pruned.add((old.id.key, old.id.rendition))
            for key, rendition in sorted(pruned):
                self._prune_lines(key, rendition, before)
            if "LastEvaluatedKey" not in page:
                return deleted
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def append_log(self, key: str, rendition: str, level: str, message: str) -> None:
        """Number the line (an atomic counter of the key and rendition), keep it, and drop the oldest line past
        the head once there are more than the cap."""
        with self._log_lock:  # strictly increasing within this store, so one process's lines keep their order
            at_ns = self._last_log_ns = max(time.time_ns(), self._last_log_ns + 1)
        counted = self._db.call(
            "update_item",
            Key={"pk": s(key), "sk": s(f"{LINES_PREFIX}{rendition}")},
            UpdateExpression="ADD appended :one",
            ExpressionAttributeValues={":one": n(1)},
            ReturnValues="UPDATED_NEW",
        )
        appended = int(counted["Attributes"]["appended"]["N"])
        line: Values = {"pk": key, "sk": line_sort_key(rendition, appended), "key": key, "rendition": rendition}
        line |= {"at": at_ns / 1e9, "level": level, "message": message, "seq": appended}
        self._db.call("put_item", Item=attributes(line))
        drop = line_to_drop(appended)
        if drop is not None:
            self._db.call("delete_item", Key={"pk": s(key), "sk": s(line_sort_key(rendition, drop))})

    def logs(self, key: str) -> list[JobLogLine]:
        """The key's lines and line counters in one Query (``line...``), those of earlier versions in another."""
        current = list(self._db.partition(key, "line"))
        lines = [log_line(i) for i in current if i["sk"]["S"].startswith(LINE_PREFIX)]
        lines += [log_line(i) for i in self._db.partition(key, LEGACY_LOG_PREFIX)]
        appended = {
            i["sk"]["S"][len(LINES_PREFIX) :]: int(i["appended"]["N"])
            for i in current
            if i["sk"]["S"].startswith(LINES_PREFIX)
        }
        return with_dropped_notes(sorted(lines, key=lambda pair: pair[1].at), appended)

    def wait_for_change(self, timeout_seconds: float) -> None:
        """A short poll: DynamoDB tells no client of changes (a stream would need a consumer)."""
        time.sleep(max(0.0, min(timeout_seconds, POLL_SECONDS)))

    def close(self) -> None:
        """Release the client's connections."""
        self._db.client.close()

    # --- helpers ------------------------------------------------------------------------------------------

    def _transition(self, job_id: JobId, state: JobState, plan: Plan, *, create: bool) -> tuple[JobRecord | None, bool]:
        """Move the job to ``state`` as ``plan`` says, counting the move, in one conditional transaction; retried
        when the job changed between the read and the write. Returns the record after, and whether it changed
        (the record is None when there is none and ``create`` is false)."""
        for _ in range(TRANSITION_ATTEMPTS):
            before = self.get(job_id)
            now = time.time()
            change = plan(before, now) if before is not None or create else None
            if change is None:
                return before, False
            created = before.created_at if before else now
            index = index_values(job_id, state, created, now)
            values = change.values | {"state": state, "created": created} | {f"i_{k}": v for k, v in index.items()}
            update = f"SET #state = :state, {change.set_clause}, created_at = :created, "
            update += ", ".join(f"{name} = :i_{name}" for name in index)
            update += f" REMOVE {change.remove}" if change.remove else ""
            guard = "attribute_not_exists(#state)"  # no item, or one with no job in it yet (see records)
            if before is not None:  # the holder too: two claims read alike, and the second must see the first
                guard = "#state = :was AND attempts = :was_attempts"
                guard += " AND (attribute_not_exists(holder) OR holder = :was_holder)"
                values |= {"was": before.state, "was_attempts": before.attempts, "was_holder": before.holder}
            counters = list(change.counters)
            if before is None or before.state is not state:
                counters += [(state_counter(state), 1)] + ([(state_counter(before.state), -1)] if before else [])
            items = [self._db.job_update(job_id, update, values, guard)]
            if self._db.transact(items + ([self._db.count(job_id.rendition, counters)] if counters else [])):
                return self.get(job_id), True
        raise TransientError(f"jobs: job {job_id} kept changing while being updated in DynamoDB {self._db.where}")

    def _delete(self, old: JobRecord) -> bool:
        """Delete a job and count it out, on condition that it is as read."""
        delete = {"TableName": self._db.name, "Key": job_key(old.id), "ExpressionAttributeNames": {"#state": "state"}}
        delete["ConditionExpression"] = "#state = :state AND updated_at = :updated"
        delete["ExpressionAttributeValues"] = attributes({":state": old.state, ":updated": old.updated_at})
        return self._db.transact(
            [{"Delete": delete}, self._db.count(old.id.rendition, [(state_counter(old.state), -1)])]
        )

    def _walk(self, states: tuple[JobState, ...], rendition: str | None = None) -> Iterator[JobRecord]:
        """Every job in ``states`` (all when empty), page by page."""
        cursor: str | None = None
        while True:
            page = self.page(JobFilter(states=states, rendition=rendition), base.MAX_PAGE_SIZE, cursor)
            yield from page.records
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _prune_lines(self, key: str, rendition: str, before: float) -> None:
        """Delete the key's and rendition's lines from before ``before``; its line counter too once none is left."""
        lines = list(self._db.partition(key, f"{LINE_PREFIX}{rendition}#"))
        legacy = [i for i in self._db.partition(key, LEGACY_LOG_PREFIX) if i["rendition"]["S"] == rendition]
        old = [i for i in lines + legacy if float(i["at"]["N"]) < before]
        self._db.delete_items(old)
        if all(float(i["at"]["N"]) < before for i in lines):
            self._db.call("delete_item", Key={"pk": s(key), "sk": s(f"{LINES_PREFIX}{rendition}")})


def _ranges(where: JobFilter) -> list[tuple[str, str]]:
    """The index partitions a filter without a key prefix reads: ``(index, partition key value)``."""
    if where.rendition is not None:
        return [("by_rendition_state", f"{where.rendition}#{state.value}") for state in states_of(where)]
    if where.states:
        return [("by_state", state.value) for state in states_of(where)]
    return [("by_created", JOB_PARTITION)]


def _found(job_id: JobId, found: JobRecord | None) -> JobRecord:
    if found is None:
        raise LookupError(f"job {job_id} has no record")
    return found
