"""The scaler's decisions: pure functions of queue depth, worker counts, cores and time."""

from __future__ import annotations

import pytest

from videoconverter.brokers.base import QueueDepth
from videoconverter.fleet.scaling import (
    Scaler,
    ScalingPolicy,
    allocate,
    cpu_budget,
    next_count,
    threads_per_worker,
    wanted,
)


def depth(visible: int = 0, in_flight: int = 0, delayed: int = 0) -> QueueDepth:
    return QueueDepth(visible, in_flight, delayed)


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        (depth(), 0),  # idle: the minimum
        (depth(visible=1), 1),
        (depth(visible=2, in_flight=1), 3),  # one per message waiting or being worked on
        (depth(visible=50), 4),  # never above the maximum
        (depth(delayed=7), 0),  # retries waiting out their back-off need no worker yet
    ],
)
def test_a_rendition_wants_one_worker_per_message_within_its_bounds(queue: QueueDepth, expected: int) -> None:
    assert wanted(queue, ScalingPolicy(minimum=0, maximum=4)) == expected


def test_the_minimum_holds_on_an_empty_queue() -> None:
    assert wanted(depth(), ScalingPolicy(minimum=2, maximum=4)) == 2


@pytest.mark.parametrize(("cores", "threads", "budget"), [(16, 4, 4), (2, 1, 2), (2, 0, 2), (2, 8, 1), (1, 1, 1)])
def test_threads_times_workers_stay_within_the_cores(cores: int, threads: int, budget: int) -> None:
    assert cpu_budget(cores, threads) == budget


@pytest.mark.parametrize(("cores", "maximum", "threads"), [(16, 4, 4), (16, 16, 1), (2, 4, 1), (8, 3, 2)])
def test_each_worker_gets_a_share_of_the_cores_at_full_scale(cores: int, maximum: int, threads: int) -> None:
    assert threads_per_worker(cores, maximum) == threads
    assert threads * maximum <= max(cores, maximum)


def test_the_budget_is_shared_by_need_and_minimums_come_first() -> None:
    policy = ScalingPolicy(minimum=1, maximum=8, budget=6)
    assert allocate({"720p": 8, "1080p": 8}, policy) == {"720p": 3, "1080p": 3}
    assert allocate({"720p": 1, "1080p": 8}, policy) == {"720p": 1, "1080p": 5}
    assert allocate({"720p": 1, "1080p": 1}, policy) == {"720p": 1, "1080p": 1}
    assert allocate({"a": 4, "b": 2}, ScalingPolicy(minimum=0, maximum=8, budget=3)) == {"a": 2, "b": 1}


def test_scaling_out_is_at_once_and_scaling_in_waits_for_the_idle_period() -> None:
    policy = ScalingPolicy(scale_in_after_seconds=10)
    assert next_count(current=1, target=3, below_since=None, now=0, policy=policy) == 3
    assert next_count(current=3, target=0, below_since=None, now=0, policy=policy) == 3
    assert next_count(current=3, target=0, below_since=0, now=9.9, policy=policy) == 3
    assert next_count(current=3, target=0, below_since=0, now=10, policy=policy) == 0


def test_the_scaler_follows_a_burst_and_goes_back_to_the_minimum_when_idle() -> None:
    scaler = Scaler(ScalingPolicy(minimum=0, maximum=2, budget=2, scale_in_after_seconds=5))
    counts = {"720p": 0}
    timeline = [
        (0, depth(visible=6), 2),  # a burst: out to the maximum at once
        (1, depth(visible=4, in_flight=2), 2),
        (2, depth(in_flight=1), 2),  # one job left: fewer wanted, but not for long enough yet
        (4, depth(), 2),
        (6.9, depth(), 2),
        (7, depth(), 0),  # wanted fewer since t=2: 5 s later, back to the minimum
        (8, depth(visible=1), 1),
    ]
    for now, queue, expected in timeline:
        counts = scaler.decide({"720p": queue}, counts, now)
        assert counts == {"720p": expected}, now
