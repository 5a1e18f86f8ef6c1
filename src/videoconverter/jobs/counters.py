"""The counters every job store keeps as jobs change, named alike in every backend, and the log-line cap.

A counter is a number per rendition and name: ``state:STATE`` (records in that state now), ``duration_le:BOUND``
(finished jobs whose run time fell in the bucket that ends at BOUND, not cumulative), ``duration_sum``,
``duration_count``, and ``failed:CAUSE`` (transitions to failed, by cause). Reading them is one small read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from videoconverter.jobs.base import (
    DURATION_BUCKETS_SECONDS,
    LOG_HEAD_LINES,
    LOG_TAIL_LINES,
    DurationTotals,
    JobLogLine,
    JobState,
    JobStats,
)
from videoconverter.jobs.causes import classify

STATE_PREFIX = "state:"
DURATION_PREFIX = "duration_le:"
DURATION_SUM = "duration_sum"
DURATION_COUNT = "duration_count"
FAILED_PREFIX = "failed:"


def state_counter(state: JobState) -> str:
    return f"{STATE_PREFIX}{state.value}"


def duration_counters(seconds: float) -> list[tuple[str, float]]:
    """The increments that count one finished job that ran ``seconds``."""
    seconds = max(0.0, seconds)
    bound = next((b for b in DURATION_BUCKETS_SECONDS if seconds <= b), math.inf)
    return [(f"{DURATION_PREFIX}{_bound_name(bound)}", 1), (DURATION_SUM, seconds), (DURATION_COUNT, 1)]


def failure_counter(error: str) -> str:
    return f"{FAILED_PREFIX}{classify(error)[0]}"


def stats_from(counters: Iterable[tuple[str, str, float]]) -> JobStats:
    """:class:`JobStats` from ``(rendition, name, value)`` counters; a counter given twice (a backend that
    spreads one over several items) is summed, and unknown names are ignored."""
    summed: dict[tuple[str, str], float] = {}
    for rendition, name, value in counters:
        summed[(rendition, name)] = summed.get((rendition, name), 0.0) + float(value)
    stats = JobStats()
    buckets: dict[str, dict[float, int]] = {}
    for (rendition, name), value in sorted(summed.items()):
        if name.startswith(STATE_PREFIX) and name[len(STATE_PREFIX) :] in JobState._value2member_map_:
            if round(value):
                stats.jobs[(rendition, JobState(name[len(STATE_PREFIX) :]))] = round(value)
        elif name.startswith(DURATION_PREFIX):
            bound = math.inf if name.endswith("+Inf") else float(name[len(DURATION_PREFIX) :])
            buckets.setdefault(rendition, {})[bound] = round(value)
        elif name.startswith(FAILED_PREFIX) and round(value):
            stats.failures[(rendition, name[len(FAILED_PREFIX) :])] = round(value)
    for rendition in sorted({r for r, name in summed if name == DURATION_COUNT} | set(buckets)):
        count = round(summed.get((rendition, DURATION_COUNT), 0))
        stats.durations[rendition] = DurationTotals(
            buckets.get(rendition, {}), summed.get((rendition, DURATION_SUM), 0.0), count
        )
    return stats


def _bound_name(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


# --- the log-line cap: per key and rendition, lines are numbered 1, 2, ... as they are appended ----------------


def line_to_drop(appended: int) -> int | None:
    """The number of the line to delete once line ``appended`` is kept: the oldest beyond the head, if any."""
    return appended - LOG_TAIL_LINES if appended > LOG_HEAD_LINES + LOG_TAIL_LINES else None


def with_dropped_notes(lines: list[tuple[int | None, JobLogLine]], appended: dict[str, int]) -> list[JobLogLine]:
    """``lines`` (with their numbers, oldest first), plus a line before each rendition's kept tail that says how
    many of its lines were dropped. ``appended`` is how many lines each rendition of the key was ever given."""
    notes: dict[int, JobLogLine] = {}  # index in ``lines`` -> the note that goes before it
    for rendition, total in appended.items():
        dropped = total - LOG_HEAD_LINES - LOG_TAIL_LINES
        tail = [
            i
            for i, (seq, line) in enumerate(lines)
            if line.rendition == rendition and seq is not None and seq > LOG_HEAD_LINES
        ]
        if dropped > 0 and tail:
            first = lines[tail[0]][1]
            notes[tail[0]] = JobLogLine(
                first.key,
                rendition,
                first.at,
                "WARNING",
                f"{dropped} log line(s) dropped here: a job keeps its first {LOG_HEAD_LINES} and last "
                f"{LOG_TAIL_LINES} lines",
            )
    out: list[JobLogLine] = []
    for i, (_, line) in enumerate(lines):
        if i in notes:
            out.append(notes[i])
        out.append(line)
    return out
