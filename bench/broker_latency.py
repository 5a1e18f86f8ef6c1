"""A waiting receiver's cost: its CPU while the queues are empty, and how soon a receive returns a message.

    .venv/bin/python bench/broker_latency.py [--broker rabbitmq,sqlite] [--queues 1] [--idle-seconds 20]
                                             [--rounds 30] [--amqp-url URL] [--json]

For each broker, a receiver process (as a worker's receive loop: ``receive_any`` over ``--queues`` queues with
``wait_seconds=1``, acking what it gets) is started on a fresh topology (RabbitMQ: random names, deleted at the
end; SQLite: a temporary database).

1. **Idle CPU.** After a second to settle, the receiver's user + system CPU (all its threads, from
   ``/proc/PID/stat``) over ``--idle-seconds`` of empty queues, as a percentage of one core.
2. **Latency.** ``--rounds`` times: the parent sends one message (to each queue in turn) carrying the time just
   before the send; the receiver reports the time from then until its receive returned it. Sends are spaced by a
   random 0.1-0.4 s, so they fall anywhere in the receiver's waiting. Median, 90th percentile and worst.

Both figures depend on the machine's load: on a shared machine they are indicative only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from videoconverter.brokers import open_broker
from videoconverter.brokers.base import QueueSpec, Topology

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RECEIVE_WAIT_SECONDS = 1.0  # as consumer.STOP_CHECK_SECONDS: a worker's receive loop waits this long a call
SETTLE_SECONDS = 1.0
ANSWER_TIMEOUT_SECONDS = 15.0


def topology(prefix: str, queue_count: int) -> Topology:
    queues = tuple(QueueSpec(f"{prefix}-q{i}", f"{prefix}-q{i}-dlq", 3600, 5) for i in range(queue_count))
    return Topology(f"{prefix}-topic", queues)


def receive_loop(url: str, queues: list[str], ready: Any, answers: Any, stop: Any) -> None:
    """The receiver process: a worker's receive loop that reports each message's latency."""
    broker = open_broker(url)
    ready.set()
    try:
        while not stop.is_set():
            for delivery in broker.receive_any(queues, wait_seconds=RECEIVE_WAIT_SECONDS):
                answers.put(time.time() - float(delivery.body))
                broker.ack(delivery)
    finally:
        broker.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, queue_count: int, idle_seconds: float, rounds: int) -> dict[str, float]:
    names = topology(f"bench{uuid.uuid4().hex[:8]}", queue_count)
    queues = [spec.name for spec in names.queues]
    sender = open_broker(url)
    sender.declare(names)
    context = multiprocessing.get_context("spawn")
    ready, stop, answers = context.Event(), context.Event(), context.Queue()
    receiver = context.Process(target=receive_loop, args=(url, queues, ready, answers, stop))
    receiver.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the receiver did not start")
        time.sleep(SETTLE_SECONDS)  # its first receives open channels and consumers: not idle cost
        before = cpu_seconds(receiver.pid or 0)
        time.sleep(idle_seconds)
        idle_cpu_percent = 100 * (cpu_seconds(receiver.pid or 0) - before) / idle_seconds
        latencies = []
        for i in range(rounds):
            time.sleep(random.uniform(0.1, 0.4))
            sender.send(queues[i % len(queues)], repr(time.time()))
            latencies.append(answers.get(timeout=ANSWER_TIMEOUT_SECONDS))
    finally:
        stop.set()
        receiver.join(timeout=30)
        if receiver.is_alive():
            receiver.kill()
        if hasattr(sender, "delete"):
            sender.delete(names)
        sender.close()
    latencies.sort()
    return {
        "idle_cpu_percent": round(idle_cpu_percent, 2),
        "latency_median_ms": round(1000 * statistics.median(latencies), 1),
        "latency_p90_ms": round(1000 * latencies[int(0.9 * (len(latencies) - 1))], 1),
        "latency_max_ms": round(1000 * latencies[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="rabbitmq,sqlite", help="comma-separated: rabbitmq, sqlite")
    parser.add_argument("--queues", type=int, default=1, help="queues one receive_any waits on")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        urls = {"rabbitmq": args.amqp_url, "sqlite": f"sqlite://{Path(folder) / 'broker.sqlite3'}"}
        for name in args.broker.split(","):
            results[name] = measure(urls[name], args.queues, args.idle_seconds, args.rounds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"a receiver waiting on {args.queues} queue(s); idle {args.idle_seconds:.0f} s, {args.rounds} messages")
    print(f"{'broker':<10} {'idle CPU %':>10} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}")
    for name, figures in results.items():
        print(
            f"{name:<10} {figures['idle_cpu_percent']:>10.2f} {figures['latency_median_ms']:>10.1f} "
            f"{figures['latency_p90_ms']:>8.1f} {figures['latency_max_ms']:>8.1f}"
        )


if __name__ == "__main__":
    main()
