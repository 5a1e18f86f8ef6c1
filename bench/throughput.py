"""Throughput: the brokers alone (SQLite vs RabbitMQ), then the whole pipeline on RabbitMQ with 1, 2, 4 workers.

    .venv/bin/python bench/throughput.py [--messages 2000] [--clips 20] [--workers 1,2,4] [--repeats 3] [--json]

1. **Broker alone.** Tiny no-op messages through a topology of ONE queue (so one publish is one message):
   ``--messages`` publishes, then receive (``max_messages=1``, as a worker asks) + ack of all of them by one
   consumer, then the same again with two consumer threads, each with its own broker instance (as two worker
   processes have). Messages per second for each, SQLite and RabbitMQ side by side, and RabbitMQ/SQLite.
   SQLite lives in a temporary directory; the RabbitMQ exchange and queues get a random prefix and are deleted
   at the end.
2. **End to end on RabbitMQ.** ``--clips`` uploads of one generated 320x180 1 s clip under distinct keys, with
   one tiny rendition (x264 ultrafast), embedded file storage and job store in a temporary data dir, the broker
   at ``--amqp-url``; for each count in ``--workers``, that many ``python -m videoconverter worker`` processes
   (started and listening before the clock starts). Wall time from the first upload until every job is done
   (``videoconverter.pipeline.settled``), and the speed-up over the first count. Queues are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from videoconverter.brokers.base import Broker, QueueSpec, Topology
from videoconverter.brokers.rabbitmq import RabbitMQBroker
from videoconverter.brokers.sqlite import SQLiteBroker
from videoconverter.config import load_config
from videoconverter.jobs.base import JobState
from videoconverter.pipeline import all_topologies, open_services, settled
from videoconverter.transcode.samples import make_clip

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
RETENTION_SECONDS = 1_209_600
STARTUP_TIMEOUT_SECONDS = 60.0
BODY = '{"noop": true}'

CONFIG = """
data_dir = "{data}"
log_level = "INFO"

[input]
topic = "{prefix}-topic"

[notifications]
topic = "{prefix}-notifications"
events_queue = "{prefix}-events"

[queues]
visibility_timeout_seconds = 30
max_receive_count = 3
retry_base_delay_seconds = 0
receive_wait_seconds = 1

[[renditions]]
name = "small"
short_side = 120
x264_preset = "ultrafast"
queue = "{prefix}-small"
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prefix() -> str:
    return f"vcbench-{uuid.uuid4().hex[:12]}"


# --- 1. the brokers alone --------------------------------------------------------------------------------------


def one_queue(name: str) -> Topology:
    return Topology(f"{name}-topic", (QueueSpec(f"{name}-q", f"{name}-q-dlq", RETENTION_SECONDS, 5),))


def publish_all(broker: Broker, topic: str, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        broker.publish(topic, BODY)
    return time.perf_counter() - started


def consume_all(brokers: list[Broker], queue: str, n: int) -> tuple[float, int]:
    """Receive + ack ``n`` messages with one thread per broker; return (seconds, messages acked).

    Receives do not wait (``wait_seconds=0``, 1 ms pause when empty): a waiting receive at the very end, for a
    message another thread already has, would add its whole wait to the measured time.
    """
    lock = threading.Lock()
    received, acked = [0], [0]
    errors: list[BaseException] = []
    start = threading.Barrier(len(brokers) + 1)

    def consume(broker: Broker) -> None:
        start.wait()
        try:
            while True:
                with lock:
                    if received[0] >= n:
                        return
                deliveries = broker.receive(queue, max_messages=1, wait_seconds=0.0)
                if not deliveries:
                    time.sleep(0.001)
                with lock:
                    received[0] += len(deliveries)
                for delivery in deliveries:
                    broker.ack(delivery)
                    with lock:
                        acked[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(b,)) for b in brokers]
    for t in threads:
        t.start()
    start.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return seconds, acked[0]


def bench_broker(name: str, open_broker: Any, n: int, two_consumers: bool) -> dict[str, Any]:
    topo = one_queue(prefix())
    queue = topo.queues[0].name
    brokers: list[Broker] = [open_broker()]
    result: dict[str, Any] = {"broker": name, "messages": n}
    try:
        brokers[0].declare(topo)
        brokers[0].publish(topo.topic, BODY)  # warm-up: connection, channel, prepared statements
        consume_all(brokers[:1], queue, 1)
        seconds = publish_all(brokers[0], topo.topic, n)
        result["publish_per_second"] = n / seconds
        seconds, acked = consume_all(brokers[:1], queue, n)
        result["receive_ack_per_second"] = acked / seconds
        say(
            f"  {name}: publish {result['publish_per_second']:.0f}/s, "
            f"receive+ack {result['receive_ack_per_second']:.0f}/s"
        )
        if two_consumers:
            brokers.append(open_broker())
            publish_all(brokers[0], topo.topic, n)
            seconds, acked = consume_all(brokers, queue, n)
            result["receive_ack_2_consumers_per_second"] = acked / seconds
            say(f"  {name}: receive+ack with 2 consumers {result['receive_ack_2_consumers_per_second']:.0f}/s")
        left = brokers[0].depth(queue).total
        if left:
            raise RuntimeError(f"{name}: {left} messages left in the queue after the run")
    finally:
        if isinstance(brokers[0], RabbitMQBroker):
            brokers[0].delete(topo)
        for b in brokers:
            b.close()
    return result


def measure_brokers(n: int, two_consumers: bool, amqp_url: str, work: Path) -> dict[str, Any]:
    sqlite_path = work / "broker.sqlite3"
    say(f"broker alone: {n} messages, one queue")
    sqlite = bench_broker("sqlite", lambda: SQLiteBroker(sqlite_path), n, two_consumers)
    rabbit = bench_broker("rabbitmq", lambda: RabbitMQBroker(amqp_url), n, two_consumers)
    ratios = {k: rabbit[k] / sqlite[k] for k in sqlite if k.endswith("_per_second")}
    return {"sqlite": sqlite, "rabbitmq": rabbit, "ratio_rabbitmq_over_sqlite": ratios}


# --- 2. end to end ---------------------------------------------------------------------------------------------


def wait_listening(process: subprocess.Popen[str], ready: threading.Event) -> None:
    """Drain a worker's stderr (JSON log lines); set ``ready`` once it logs that it listens."""
    assert process.stderr is not None
    for line in process.stderr:
        if '"worker for ' in line and " listening on " in line:
            ready.set()


def stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.terminate()  # SIGTERM: a worker hands its current job back and exits
    deadline = time.monotonic() + 30
    for w in workers:
        try:
            w.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def pipeline_run(workers: int, clips: int, clip: Path, amqp_url: str, work: Path) -> dict[str, Any]:
    root = work / f"e2e-{workers}"
    root.mkdir(parents=True)
    config_path = root / "videoconverter.toml"
    config_path.write_text(CONFIG.format(data=root / "data", prefix=prefix()))
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(config_path), "VIDEOCONVERTER_BROKER": amqp_url}
    config = load_config(environ=env)
    rendition = config.renditions[0]
    procs: list[subprocess.Popen[str]] = []
    svc = open_services(config)
    try:
        readies = []
        for _ in range(workers):
            p = subprocess.Popen(
                [sys.executable, "-m", "videoconverter", "worker", rendition.name],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs.append(p)
            ready = threading.Event()
            threading.Thread(target=wait_listening, args=(p, ready), daemon=True).start()
            readies.append(ready)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        for p, ready in zip(procs, readies, strict=True):
            while not ready.wait(0.1):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start (exit code {p.poll()})")
        started = time.perf_counter()
        for i in range(clips):
            svc.store.put_file(config.input_bucket, f"clip-{i:03d}.mp4", clip)
        uploaded = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while True:
            # The job records first (one SQLite read); settled() also asks RabbitMQ for the queue's depth.
            records = svc.jobs.find()
            if len(records) == clips and all(r.state.terminal for r in records):
                _, done = settled(svc)  # nothing pending, and the queue empty
                if done:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs not settled after 600 s: {len(records)} records")
            time.sleep(0.05)
        wall = time.perf_counter() - started
        failed = sum(r.state is JobState.FAILED for r in records)
        outputs = sum(svc.store.head(rendition.output_bucket, f"clip-{i:03d}.mp4") is not None for i in range(clips))
        attempts = sum(r.attempts for r in records)
        return {
            "workers": workers,
            "clips": clips,
            "wall_seconds": wall,
            "upload_seconds": uploaded,
            "jobs_failed": failed,
            "outputs": outputs,
            "attempts": attempts,
        }
    finally:
        stop_workers(procs)
        try:
            if isinstance(svc.broker, RabbitMQBroker):
                for declared in all_topologies(config):  # exchanges, queues, delay queues and DLQs
                    svc.broker.delete(declared)
        finally:
            svc.close()


def measure_pipeline(worker_counts: list[int], clips: int, repeats: int, amqp_url: str, work: Path) -> dict[str, Any]:
    clip = make_clip(work / "clip.mp4", width=320, height=180, seconds=1)
    by_count: dict[int, list[dict[str, Any]]] = {n: [] for n in worker_counts}
    for repeat in range(repeats):  # interleaved, so that a busy spell on the machine hits every count alike
        for n in worker_counts:
            say(f"end to end {repeat + 1}/{repeats}: {clips} clips, {n} worker process(es) on RabbitMQ")
            run = pipeline_run(n, clips, clip, amqp_url, work / f"r{repeat}")
            say(f"  {run['wall_seconds']:.2f} s")
            by_count[n].append(run)
    runs = []
    for n, tries in by_count.items():
        runs.append(
            {
                "workers": n,
                "clips": clips,
                "wall_seconds": statistics.median(t["wall_seconds"] for t in tries),
                "wall_seconds_each": [t["wall_seconds"] for t in tries],
                "upload_seconds": statistics.median(t["upload_seconds"] for t in tries),
                "jobs_failed": sum(t["jobs_failed"] for t in tries),
                "outputs": min(t["outputs"] for t in tries),
                "attempts": max(t["attempts"] for t in tries),
            }
        )
    base = runs[0]["wall_seconds"]
    for run in runs:
        run["speedup"] = base / run["wall_seconds"]
    return {"clip": "320x180 1 s H.264/AAC -> 120p x264 ultrafast", "repeats": repeats, "runs": runs}


# --- main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages per broker figure (default 2000)")
    parser.add_argument("--clips", type=int, default=20, help="uploads in the end-to-end part (default 20)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated (default 1,2,4)")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs per worker count (median; default 3)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL, help=f"RabbitMQ (default {DEFAULT_AMQP_URL})")
    parser.add_argument("--one-consumer-only", action="store_true", help="skip the two-consumer figure")
    parser.add_argument("--skip-brokers", action="store_true", help="skip part 1 (the brokers alone)")
    parser.add_argument("--skip-pipeline", action="store_true", help="skip part 2 (end to end)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    try:
        worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    except ValueError:
        parser.error("--workers: expected numbers separated by commas, e.g. 1,2,4")
    if min(args.messages, args.clips, args.repeats) < 1 or not worker_counts or min(worker_counts) < 1:
        parser.error("--messages, --clips, --repeats and every --workers count must be >= 1")

    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        say(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: figures will be noisy")
    probe = RabbitMQBroker(args.amqp_url)
    try:
        results["rabbitmq_version"] = probe.server_version()
    finally:
        probe.close()
    with tempfile.TemporaryDirectory(prefix="vc-throughput-") as tmp:
        work = Path(tmp)
        if not args.skip_brokers:
            results["brokers"] = measure_brokers(args.messages, not args.one_consumer_only, args.amqp_url, work)
        if not args.skip_pipeline:
            results["pipeline"] = measure_pipeline(worker_counts, args.clips, args.repeats, args.amqp_url, work)

    results["load_avg_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print()
    cpus = results["cpus"]
    print(
        f"machine: {cpus} CPU cores, load average {results['load_avg'][0]:.2f} at start, "
        f"{results['load_avg_end'][0]:.2f} at end; "
        f"RabbitMQ {results['rabbitmq_version']} at {args.amqp_url.rsplit('@', 1)[-1]}"
    )
    if "brokers" in results:
        b = results["brokers"]
        print(f"broker alone, {args.messages} tiny messages, one queue (messages/second):")
        print(f"  {'':32} {'SQLite':>10} {'RabbitMQ':>10} {'RabbitMQ/SQLite':>16}")
        rows = [
            ("publish", "publish_per_second"),
            ("receive+ack, 1 consumer", "receive_ack_per_second"),
            ("receive+ack, 2 consumers", "receive_ack_2_consumers_per_second"),
        ]
        for label, key in rows:
            if key in b["sqlite"]:
                print(
                    f"  {label:32} {b['sqlite'][key]:>10.0f} {b['rabbitmq'][key]:>10.0f} "
                    f"{b['ratio_rabbitmq_over_sqlite'][key]:>15.2f}x"
                )
        print(
            "  SQLite: WAL, synchronous=FULL, a committed (fsynced) transaction per publish, receive and ack;\n"
            "  RabbitMQ: durable quorum queue, a publisher confirm per publish, a passive queue.declare + basic.get "
            "per receive;\n"
            "  2 consumers: 2 threads of this process (one GIL), each with its own broker instance"
        )
    if "pipeline" in results:
        p = results["pipeline"]
        print(
            f"end to end on RabbitMQ, {args.clips} uploads ({p['clip']}), first upload -> every job done "
            f"(median of {p['repeats']}):"
        )
        for run in p["runs"]:
            each = ", ".join(f"{x:.2f}" for x in run["wall_seconds_each"])
            problems = ""
            if run["attempts"] > run["clips"]:
                problems += f"  [{run['attempts']} attempts for {run['clips']} jobs]"
            if run["jobs_failed"] or run["outputs"] != run["clips"]:
                problems += f"  [{run['jobs_failed']} FAILED, {run['outputs']}/{run['clips']} outputs]"
            print(
                f"  {run['workers']} worker process(es): {run['wall_seconds']:6.2f} s  "
                f"speed-up {run['speedup']:.2f}x vs {p['runs'][0]['workers']}  "
                f"({run['clips'] / run['wall_seconds']:.2f} clips/s; runs {each} s; uploads took "
                f"{run['upload_seconds']:.2f} s){problems}"
            )
        print(
            f"  note: this machine has {cpus} CPU cores; each FFmpeg is CPU-bound, so more than {cpus} workers "
            "cannot add speed here, they only share the same cores (and one FFmpeg may already use both: "
            "ffmpeg.threads is left to FFmpeg)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
