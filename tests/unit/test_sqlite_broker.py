"""What only the SQLite broker promises beyond the contract: retention, many processes, wake-ups."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from videoconverter.brokers import sqlite as sqlite_broker
from videoconverter.brokers.base import QueueSpec, Topology
from videoconverter.brokers.sqlite import SQLiteBroker

TOPOLOGY = Topology("t", (QueueSpec("q", "q-dlq", 1, 5),))


def test_messages_older_than_the_retention_period_expire(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_broker, "EXPIRY_INTERVAL_SECONDS", 0.0)
    broker = SQLiteBroker(tmp_path / "b.db")
    broker.declare(TOPOLOGY)  # retention 1 s
    broker.send("q", "old")
    deadline = time.monotonic() + 10
    while broker.depth("q").total and time.monotonic() < deadline:
        broker.receive("q", wait_seconds=0.2, visibility_timeout_seconds=0)  # expiry runs on receive
    assert broker.depth("q").total == 0
    broker.close()


def _consume(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    broker = SQLiteBroker(Path(path))
    bodies = []
    while True:
        got = broker.receive("q", max_messages=3, wait_seconds=0.5, visibility_timeout_seconds=120)
        if not got:
            break
        for delivery in got:
            broker.ack(delivery)
            bodies.append(delivery.body)
    broker.close()
    out.put(bodies)


def test_many_processes_share_one_database_without_double_delivery(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    broker = SQLiteBroker(path)
    broker.declare(Topology("t", (QueueSpec("q", "q-dlq", 3600, 5),)))
    for i in range(150):
        broker.publish("t", f"m{i}")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_consume, args=(str(path), out)) for _ in range(3)]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    received = [body for bodies in results for body in bodies]
    assert sorted(received) == sorted(f"m{i}" for i in range(150))
    assert broker.depth("q").total == 0
    broker.close()


def test_waiting_without_unix_sockets_falls_back_to_short_sleeps(tmp_path: Path, monkeypatch) -> None:
    broker = SQLiteBroker(tmp_path / "b.db")
    broker.declare(Topology("t", (QueueSpec("q", "q-dlq", 3600, 5),)))
    monkeypatch.setattr(broker._doorbell, "_enabled", False)
    broker.send("q", "x")
    assert [d.body for d in broker.receive("q", wait_seconds=1)] == ["x"]
    started = time.monotonic()
    assert broker.receive("q", wait_seconds=0.3) == []
    assert time.monotonic() - started >= 0.25
    broker.close()


def test_threads_sharing_one_broker_each_hear_their_wake_ups(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    shared = SQLiteBroker(path)
    shared.declare(Topology("t", (QueueSpec("q1", "q1-dlq", 3600, 5), QueueSpec("q2", "q2-dlq", 3600, 5))))
    sender = SQLiteBroker(path)
    rounds = 40
    latencies: dict[str, list[float]] = {"q1": [], "q2": []}
    sent_at: dict[str, float] = {}

    def consume(queue: str) -> None:
        for _ in range(rounds):
            got = shared.receive(queue, wait_seconds=10)
            latencies[queue].append(time.monotonic() - sent_at[got[0].body])
            shared.ack(got[0])

    threads = [threading.Thread(target=consume, args=(q,)) for q in ("q1", "q2")]
    for t in threads:
        t.start()
    for i in range(rounds):
        sent_at[f"m{i}"] = time.monotonic()
        sender.publish("t", f"m{i}")
        deadline = time.monotonic() + 15
        while min(len(v) for v in latencies.values()) <= i and time.monotonic() < deadline:
            time.sleep(0.002)
    for t in threads:
        t.join(timeout=30)
    assert all(len(v) == rounds for v in latencies.values())
    worst = max(max(v) for v in latencies.values())
    assert worst < 1.0, f"a waiting thread slept through a ring: {worst:.2f} s"
    shared.close()
    sender.close()
