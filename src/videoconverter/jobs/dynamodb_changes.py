"""What each transition of the DynamoDB job store writes, given the record as read: a :class:`Change` (SET
clause, values, REMOVE, counters) that :meth:`DynamoDBJobStore._transition` writes in one conditional
transaction with the state, index attributes and state counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from videoconverter.jobs.base import JobId, JobRecord, JobState
from videoconverter.jobs.counters import duration_counters, failure_counter
from videoconverter.jobs.dynamodb_items import Values, identity
from videoconverter.jobs.timeline import Timeline

_ID_SET = "#key = :key, #etag = :source_etag, #rendition = :rendition"


@dataclass
class Change:
    """What a transition writes besides the state and index attributes: a SET clause over named values,
    attributes to REMOVE, and counters to add to (beyond the state counters)."""

    set_clause: str
    values: Values
    counters: list[tuple[str, float]] = field(default_factory=list)
    remove: str = ""


#: Given the record as read (None: none yet) and the time, what to write; None to leave the job alone.
Plan = Callable[[JobRecord | None, float], Change | None]


def start(job_id: JobId, attempt: int, holder: str, fresh_seconds: float) -> Plan:
    """Running for ``holder``; attempts the larger of the stored and ``attempt``; the previous attempt's timeline
    removed. Nothing when another holder runs the job and updated it less than ``fresh_seconds`` ago."""

    def plan(before: JobRecord | None, now: float) -> Change | None:
        if before is not None and held_elsewhere(before, holder, now - fresh_seconds):
            return None
        values: Values = {**identity(job_id), "now": now, "zero": 0, "holder": holder}
        values["attempts"] = max(attempt, before.attempts if before else 0)
        update = f"{_ID_SET}, updated_at = :now, started_at = :now, progress_percent = :zero, attempts = :attempts"
        return Change(f"{update}, holder = :holder", values, remove="timeline")

    return plan


def held_elsewhere(record: JobRecord, holder: str, fresh_after: float) -> bool:
    """Whether ``record`` is running for a holder other than ``holder`` that updated it after ``fresh_after``
    (the rule of :meth:`~videoconverter.jobs.base.JobStore.start`, as the SQL stores' START query has it)."""
    return (
        bool(holder)
        and record.state is JobState.RUNNING
        and record.holder not in ("", holder)
        and record.updated_at >= fresh_after
    )


def finish(output_url: str, note: str, output_size: int | None, quality: str, timeline: Timeline | None) -> Plan:
    """Done: the output, note, size (removed when unknown), quality search (removed when none) and timeline (its
    ``done`` now); the error cleared; a job that ran counts its run time."""

    def plan(before: JobRecord | None, now: float) -> Change:
        update = "progress_percent = :hundred, output_url = :output, note = :note, #error = :empty, "
        update += "updated_at = :now, finished_at = :now, timeline = :timeline"
        values: Values = {"hundred": 100, "output": output_url, "note": note, "empty": "", "now": now}
        values["timeline"] = (timeline or Timeline()).with_stamp("done", now).to_text()
        removed = []
        if output_size is not None:
            update, values = f"{update}, output_size = :size", values | {"size": output_size}
        else:
            removed.append("output_size")
        if quality:  # quality per title: the VMAF search as JSON text
            update, values = f"{update}, quality = :quality", values | {"quality": quality}
        else:
            removed.append("quality")
        started = before.started_at if before is not None and before.state is JobState.RUNNING else None
        counters = duration_counters(now - started) if started is not None else []
        return Change(update, values, counters, remove=", ".join(removed))

    return plan


def retry(error: str, stderr_tail: str, timeline: Timeline | None) -> Plan:
    """Queued again, keeping the error (and the failed attempt's timeline, when given)."""

    def plan(before: JobRecord | None, now: float) -> Change:
        values: Values = {"error": error, "tail": stderr_tail, "now": now}
        return _with_timeline(Change("#error = :error, stderr_tail = :tail, updated_at = :now", values), timeline)

    return plan


def fail(job_id: JobId, error: str, stderr_tail: str, timeline: Timeline | None) -> Plan:
    """Failed, with the error and stderr tail (and timeline, when given); the cause counted unless it had failed."""

    def plan(before: JobRecord | None, now: float) -> Change:
        update = f"{_ID_SET}, updated_at = :now, finished_at = :now, #error = :error, stderr_tail = :tail, "
        update += "attempts = :attempts"
        values: Values = {**identity(job_id), "now": now, "error": error, "tail": stderr_tail}
        values["attempts"] = before.attempts if before else 0
        first = before is None or before.state is not JobState.FAILED
        return _with_timeline(Change(update, values, [(failure_counter(error), 1)] if first else []), timeline)

    return plan


def requeue(before: JobRecord | None, now: float) -> Change | None:
    """Queued again after a redrive, only if it is still failed."""
    if before is None or before.state is not JobState.FAILED:
        return None
    return Change("updated_at = :now", {"now": now}, remove="finished_at")


def _with_timeline(change: Change, timeline: Timeline | None) -> Change:
    """``change`` that also keeps ``timeline``, when one with a known stage is given (else the stored one stays)."""
    text = timeline.to_text() if timeline is not None else ""
    if text:
        change.set_clause += ", timeline = :timeline"
        change.values = change.values | {"timeline": text}
    return change
