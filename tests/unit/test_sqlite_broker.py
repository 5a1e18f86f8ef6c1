"""What only the SQLite broker promises beyond the contract: retention, many processes, wake-ups."""

from __future__ import annotations

import multiprocessing
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
