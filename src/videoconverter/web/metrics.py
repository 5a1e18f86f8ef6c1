"""``/metrics`` through prometheus_client: a collector that reads the queues' depths and the job store's
counters at each scrape (never the job records), and, where workers share a multi-process directory
(``PROMETHEUS_MULTIPROC_DIR``, which ``videoconverter up`` sets for its workers), the workers' own metrics.
The library renders the exposition format the scraper asks for (Prometheus text or OpenMetrics)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from videoconverter.jobs.base import JobState
from videoconverter.pipeline import Services
from videoconverter.telemetry import MULTIPROCESS_DIR_VARIABLE
from videoconverter.web.live import queue_depths


class PipelineCollector:
    """Queue depths, dead letters and jobs by state (gauges), run times of finished jobs (a histogram) and
    failures by cause (a counter), all from reads whose cost does not grow with the history."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the names are this module's own

    def collect(self) -> Iterator[Metric]:
        queues = queue_depths(self.svc)
        stats = self.svc.jobs.stats()
        messages = GaugeMetricFamily(
            "videoconverter_queue_messages", "Messages in a rendition's queue, by state.", labels=["rendition", "state"]
        )
        dead = GaugeMetricFamily(
            "videoconverter_dead_letter_messages", "Messages in a rendition's dead-letter queue.", labels=["rendition"]
        )
        for q in queues:
            for state in ("visible", "in_flight", "delayed"):
                messages.add_metric([q["rendition"], state], q[state])
            dead.add_metric([q["rendition"]], q["dead_letters"])
        yield messages
        yield dead
        jobs = GaugeMetricFamily(
            "videoconverter_jobs",
            "Job records by rendition and state (running = in flight).",
            labels=["rendition", "state"],
        )
        renditions = [r.name for r in self.svc.config.renditions]
        renditions += sorted({r for r, _ in stats.jobs} - set(renditions))
        for rendition in renditions:
            for state in JobState:
                jobs.add_metric([rendition, state.value], stats.jobs.get((rendition, state), 0))
        yield jobs
        durations = HistogramMetricFamily(
            "videoconverter_job_duration_seconds", "Run time of finished jobs, start to done.", labels=["rendition"]
        )
        for rendition, totals in sorted(stats.durations.items()):
            buckets = [("+Inf" if math.isinf(b) else repr(float(b)), float(n)) for b, n in totals.cumulative()]
            durations.add_metric([rendition], buckets, sum_value=totals.sum_seconds)
        yield durations
        failures = CounterMetricFamily(
            "videoconverter_job_failures",
            "Jobs failed (dead-lettered), by rendition and cause.",
            labels=["rendition", "cause"],
        )
        for (rendition, cause), count in sorted(stats.failures.items()):
            failures.add_metric([rendition, cause], count)
        yield failures


def registry_for(svc: Services) -> CollectorRegistry:
    """A registry of the pipeline's metrics, and of the workers' where a multi-process directory is set."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(svc))
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE, "")
    if directory and os.path.isdir(directory):
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The metrics in the format ``accept`` asks for, and its content type (prometheus_client negotiates)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
