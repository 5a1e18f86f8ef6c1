"""Prometheus metrics in the text exposition format (no client library needed)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from videoconverter.jobs.base import JobRecord, JobState
from videoconverter.web.explain import explain

DURATION_BUCKETS_SECONDS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 10800.0)


def render(records: list[JobRecord], queues: list[dict[str, Any]]) -> str:
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    family("videoconverter_queue_messages", "gauge", "Messages in a rendition's queue, by state.")
    for q in queues:
        for state in ("visible", "in_flight", "delayed"):
            lines.append(
                f'videoconverter_queue_messages{{rendition="{_esc(q["rendition"])}",state="{state}"}} {q[state]}'
            )
    family("videoconverter_dead_letter_messages", "gauge", "Messages in a rendition's dead-letter queue.")
    for q in queues:
        lines.append(f'videoconverter_dead_letter_messages{{rendition="{_esc(q["rendition"])}"}} {q["dead_letters"]}')

    family("videoconverter_jobs", "gauge", "Job records by rendition and state (running = in flight).")
    states = Counter((r.id.rendition, r.state.value) for r in records)
    for q in queues:
        for state in JobState:
            lines.append(
                f'videoconverter_jobs{{rendition="{_esc(q["rendition"])}",state="{state.value}"}} '
                f"{states.get((q['rendition'], state.value), 0)}"
            )

    family("videoconverter_job_duration_seconds", "histogram", "Run time of finished jobs, start to done.")
    by_rendition: dict[str, list[float]] = {}
    for r in records:
        if r.state is JobState.DONE and r.started_at is not None and r.finished_at is not None:
            by_rendition.setdefault(r.id.rendition, []).append(max(0.0, r.finished_at - r.started_at))
    for rendition, durations in sorted(by_rendition.items()):
        label = f'rendition="{_esc(rendition)}"'
        for bound in DURATION_BUCKETS_SECONDS:
            lines.append(
                f'videoconverter_job_duration_seconds_bucket{{{label},le="{bound:g}"}} '
                f"{sum(1 for d in durations if d <= bound)}"
            )
        lines.append(f'videoconverter_job_duration_seconds_bucket{{{label},le="+Inf"}} {len(durations)}')
        lines.append(f"videoconverter_job_duration_seconds_sum{{{label}}} {sum(durations):.3f}")
        lines.append(f"videoconverter_job_duration_seconds_count{{{label}}} {len(durations)}")

    family("videoconverter_job_failures", "gauge", "Failed jobs (dead-lettered) by rendition and cause.")
    causes: Counter[tuple[str, str]] = Counter()
    for r in records:
        if r.state is JobState.FAILED:
            explanation = explain(r)
            causes[(r.id.rendition, explanation.cause if explanation else "unexpected")] += 1
    for (rendition, cause), count in sorted(causes.items()):
        lines.append(f'videoconverter_job_failures{{rendition="{_esc(rendition)}",cause="{cause}"}} {count}')
    return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
