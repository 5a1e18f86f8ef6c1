"""Chaos soak: uploads keep coming while a random worker is killed (SIGKILL) every few seconds.

    .venv/bin/python bench/chaos.py [--uploads 100] [--kill-every 3] [--pool 2 | --concurrency 2] [--split] [--json]

Runs `videoconverter up` (embedded backends, two small renditions) in a scratch data directory, uploads
clips while killing workers (``--split``: every job split into pieces, chunking/), waits until every job has
settled, then prints jobs lost, duplicated outputs and dead-lettered jobs (the targets are 0, 0, 0) and exits
non-zero if any is not 0. The workers are a pool (`up --pool N`, each serving both renditions: `up`'s default),
or with ``--concurrency N`` N dedicated workers per rendition.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import all_topologies, open_services, settled
from videoconverter.transcode.samples import make_clip

CONFIG = """
data_dir = "{data}"
log_level = "WARNING"
{broker}
[input]
topic = "{prefix}videoconverter-topic"

[notifications]
topic = "{prefix}videoconverter-notifications"
events_queue = "{prefix}videoconverter-events"

[queues]
visibility_timeout_seconds = 3
# Kills come every few seconds, so a job may be killed several times in a row: a quorum queue counts every return
# of a message a killed worker held, and a loaded 2-core CI machine once saw a job killed 10 times. Only one killed
# 25 times is dead-lettered by the broker, and counted as such (its job failed by a worker's sweep).
max_receive_count = 25
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
name = "144p"
queue = "{prefix}videoconverter_144p"
short_side = 144
x264_preset = "ultrafast"

[[renditions]]
name = "96p"
queue = "{prefix}videoconverter_96p"
short_side = 96
x264_preset = "ultrafast"
"""
#: ``--split``: every job split into pieces (each clip is one video piece and the audio), then joined.
SPLIT = "\n[chunking]\nmin_source_seconds = 0\nchunk_seconds = 2\n"


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def killer(up_pid: int, every_seconds: float, stop: threading.Event, kills: list[int]) -> None:
    rng = random.Random(7)
    while not stop.wait(every_seconds):
        workers = children(up_pid)
        if workers:
            victim = rng.choice(workers)
            try:
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)
            except ProcessLookupError:
                pass


def run(
    uploads: int,
    kill_every: float,
    concurrency: int,
    timeout: float,
    broker_url: str = "",
    split: bool = False,
    pool: int = 0,
) -> dict[str, object]:
    """The soak; ``pool`` > 0: that many pool workers, else ``concurrency`` dedicated workers per rendition."""
    with tempfile.TemporaryDirectory(prefix="vc-chaos-") as tmp:
        root = Path(tmp)
        config_path = root / "videoconverter.toml"
        prefix = f"chaos-{uuid.uuid4().hex[:8]}-" if broker_url else ""  # a shared server outlives the run
        broker_line = f'broker = "{broker_url}"' if broker_url else ""
        text = CONFIG.format(data=root / "data", broker=broker_line, prefix=prefix) + (SPLIT if split else "")
        config_path.write_text(text)
        env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config_path)}
        config = load_config(environ=env)
        clips = [
            make_clip(root / f"clip{i}.mp4", width=320, height=180, seconds=0.5, frame_rate=10 + i) for i in range(4)
        ]
        workers = ["--pool", str(pool)] if pool else ["--concurrency", str(concurrency)]
        up = subprocess.Popen(
            # No dashboard: the soak needs none, and another `up` on the machine may hold its port.
            [sys.executable, "-m", "videoconverter", "up", "--no-web", *workers],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        stop, kills = threading.Event(), []
        started = time.monotonic()
        svc = open_services(config)
        try:
            deadline = time.monotonic() + 30
            expected = pool or concurrency * len(config.renditions)
            while len(children(up.pid)) < expected and time.monotonic() < deadline:
                time.sleep(0.1)
            thread = threading.Thread(target=killer, args=(up.pid, kill_every, stop, kills))
            thread.start()
            for i in range(uploads):
                svc.store.put_file(config.input_bucket, f"upload-{i:04d}.mp4", clips[i % len(clips)])
                time.sleep(0.05)  # a steady stream of uploads, not one burst
            deadline = time.monotonic() + timeout
            while not settled(svc)[1] and time.monotonic() < deadline:
                time.sleep(0.5)
            stop.set()
            thread.join()
            shape = f"pool of {pool}" if pool else f"{concurrency} per rendition"
            return summarise(svc, uploads, kills, time.monotonic() - started, shape)
        finally:
            stop.set()
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
            delete = getattr(svc.broker, "delete", None)  # the RabbitMQ broker's clean-up
            if broker_url and delete is not None:
                for declared in all_topologies(config):
                    delete(declared)
            svc.close()


def summarise(svc, uploads: int, kills: list[int], wall_seconds: float, workers: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    lost = duplicated = dead = retried = 0
    failures: list[str] = []
    for i in range(uploads):
        key = f"upload-{i:04d}.mp4"
        writes: dict[str, int] = {}
        for line in svc.jobs.logs(key):
            if line.message.startswith("wrote "):
                writes[line.rendition] = writes.get(line.rendition, 0) + 1
        records = {r.id.rendition: r for r in svc.jobs.find(key)}
        for rendition in svc.config.renditions:
            record = records.get(rendition.name)
            retried += record is not None and record.attempts > 1
            if record is not None and record.state is JobState.FAILED:
                dead += 1
                failures.append(f"{key} {rendition.name}: {record.error}")
            elif svc.store.head(rendition.output_bucket, key) is None:
                lost += 1
            duplicated += max(0, writes.get(rendition.name, 0) - 1)
    return {
        "broker": svc.config.broker_url.split("://")[0],
        "split": svc.config.chunking.min_source_seconds == 0,
        "workers": workers,
        "uploads": uploads,
        "renditions": len(svc.config.renditions),
        "workers_killed": len(kills),
        "jobs_lost": lost,
        "duplicated_outputs": duplicated,
        "dead_lettered": dead,
        "jobs_retried": retried,
        "failures": failures,
        "wall_seconds": round(wall_seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between two kills")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--pool", type=int, default=2, help="pool worker processes, each serving both renditions")
    shape.add_argument("--concurrency", type=int, default=0, help="instead: dedicated worker processes per rendition")
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting after this many seconds")
    parser.add_argument(
        "--broker-url", default="", help="e.g. amqp://guest:guest@127.0.0.1:5672/%%2F (default: SQLite)"
    )
    parser.add_argument("--split", action="store_true", help="split every job into pieces (chunking)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pool = 0 if args.concurrency else args.pool
    result = run(args.uploads, args.kill_every, args.concurrency, args.timeout, args.broker_url, args.split, pool)
    if args.json:
        print(json.dumps(result))
    else:
        r = result
        print(
            f"{r['broker']}: {r['uploads']} uploads x {r['renditions']} renditions, workers {r['workers']}, "
            f"{r['workers_killed']} workers killed, {r['wall_seconds']} s"
        )
        print(
            f"jobs lost {r['jobs_lost']}, duplicated outputs {r['duplicated_outputs']}, dead-lettered "
            f"{r['dead_lettered']} (target 0, 0, 0); {r['jobs_retried']} jobs ran more than once"
        )
    return 0 if result["jobs_lost"] == result["duplicated_outputs"] == result["dead_lettered"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
