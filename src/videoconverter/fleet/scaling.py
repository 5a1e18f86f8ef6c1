"""Automatic worker scaling: how many worker processes each rendition should have, as pure functions.

The number follows the queue: one worker per message waiting or being worked on, between a minimum (may be 0) and
a maximum, within a CPU budget shared by all renditions (FFmpeg threads x workers <= cores). Scaling out is
immediate; scaling in waits until a rendition has wanted fewer workers for ``scale_in_after_seconds``, and then
only asks workers to stop between jobs (never killing a transcode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from videoconverter.brokers.base import QueueDepth


@dataclass(frozen=True)
class ScalingPolicy:
    minimum: int = 0  # workers per rendition when its queue is empty
    maximum: int = 4  # workers per rendition at most
    budget: int = 4  # worker processes across all renditions at most (the CPU budget)
    scale_in_after_seconds: float = 10.0


def cpu_budget(cores: int, ffmpeg_threads: int) -> int:
    """How many FFmpeg processes fit on ``cores`` when each runs ``ffmpeg_threads`` threads."""
    return max(1, cores // max(1, ffmpeg_threads))


def threads_per_worker(cores: int, maximum_workers: int) -> int:
    """FFmpeg threads for each worker so that ``maximum_workers`` of them, all busy, fill the cores exactly."""
    return max(1, cores // max(1, maximum_workers))


def wanted(depth: QueueDepth, policy: ScalingPolicy) -> int:
    """Workers one rendition wants now: one per message waiting or in flight, within its minimum and maximum.

    Delayed messages (retries waiting out their back-off) want no worker yet.
    """
    return max(policy.minimum, min(policy.maximum, depth.visible + depth.in_flight))


def allocate(wants: Mapping[str, int], policy: ScalingPolicy) -> dict[str, int]:
    """Share the budget: every rendition gets its minimum first, then one slot at a time goes to the rendition
    whose want is least met (ties: the first listed), until wants or the budget run out."""
    given = {name: min(want, policy.minimum) for name, want in wants.items()}
    left = policy.budget - sum(given.values())
    while left > 0:
        unmet = [(given[n] / max(1, wants[n]), i, n) for i, n in enumerate(wants) if given[n] < wants[n]]
        if not unmet:
            break
        _, _, name = min(unmet)
        given[name] += 1
        left -= 1
    return given


def next_count(current: int, target: int, below_since: float | None, now: float, policy: ScalingPolicy) -> int:
    """The worker count to have now, given the ``target`` and since when the target has been below ``current``
    (None: it is not below). Out at once; in only after ``scale_in_after_seconds`` below."""
    if target >= current:
        return target
    if below_since is not None and now - below_since >= policy.scale_in_after_seconds:
        return target
    return current


@dataclass
class Scaler:
    """Remembers, per rendition, since when fewer workers were wanted (the only state scaling needs)."""

    policy: ScalingPolicy

    def __post_init__(self) -> None:
        self._below_since: dict[str, float] = {}

    def decide(self, depths: Mapping[str, QueueDepth], current: Mapping[str, int], now: float) -> dict[str, int]:
        """The worker count each rendition should have now."""
        targets = allocate({name: wanted(depth, self.policy) for name, depth in depths.items()}, self.policy)
        decided = {}
        for name, target in targets.items():
            if target < current.get(name, 0):
                self._below_since.setdefault(name, now)
            else:
                self._below_since.pop(name, None)
            decided[name] = next_count(current.get(name, 0), target, self._below_since.get(name), now, self.policy)
        return decided
