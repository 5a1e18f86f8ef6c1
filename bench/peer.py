"""The pipeline beside a plain Celery worker running the same FFmpeg command lines.

Modes (``all``: each in turn):

1. **batch**: ``--clips`` uploads of one generated ``--seconds`` 1920x1080 clip, converted into every rendition,
   by ``videoconverter up`` (real processes, embedded backends) and by a Celery worker of ``--celery-processes``
   prefork processes; ``--pairs`` runs of each, alternating which goes first. Per run: drain time (first upload
   to every job done), CPU seconds of the worker processes outside FFmpeg (their own utime + stime from /proc,
   FFmpeg children excluded; the parent, ``up`` or the Celery master, apart), their peak RSS (VmHWM), and the
   PSS of the whole tree at the end; then the ratios pipeline/Celery per pair and their median, and whether
   the FFmpeg lines read back from /proc were those the benchmark built.
2. **recovery**: one ``--recovery-seconds`` clip; ``--kill-after`` seconds into the FFmpeg run of the
   ``--kill-rendition`` encode, the worker process running it (FFmpeg's parent) gets SIGKILL. Measured: kill to
   that FFmpeg line running again, and kill to the job done, for the embedded pipeline (``up`` restarts the
   worker; the message waits for its lease to end), the pipeline on RabbitMQ (the dead worker's connection
   closes, RabbitMQ requeues), with ``--sqs`` the pipeline on SQS (moto's server; ``up`` hands the dead worker's
   leases back from its journal) and Celery (the master replaces the pool process and, with ``acks_late`` and
   ``task_reject_on_worker_lost``, requeues the task); median of ``--runs``.
3. **single**: one upload of the batch clip, upload to every rendition done; median of ``--runs``, both systems.

Both systems run the default renditions (720p, 1080p) with a fixed CRF: a VMAF search's lines depend on what
it measures, so they cannot be handed to the peer (see bench/ffmpeg_lines.py). ``--no-standby-too`` adds the
embedded pipeline without its standby worker to every mode. ``up`` runs with ``--no-web``
(the dashboard converts nothing, and its port may be taken); each keeps its default log level (the pipeline's
workers write INFO lines, Celery's WARNING). Celery runs on Redis
(``--redis-url``); see bench/celery_tasks.py for its settings and why. Install it for the benchmark only::

    .venv/bin/pip install -r bench/requirements-peer.txt

Usage: ``.venv/bin/python bench/peer.py [batch|recovery|single|all] [--json]``; a smoke run:
``bench/peer.py all --clips 2 --seconds 1 --pairs 1 --runs 1 --recovery-seconds 3 --kill-after 1``. Linux only
(/proc). Figures on a machine busy with other work are indicative only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ffmpeg_lines import normalised, rendition_lines, video_filter
from peer_report import print_batch, print_recovery, print_single
from peer_systems import CeleryPeer, Pipeline, System, bench_config, compile_package, moto_server, worker_processes
from proctree import MIB, Reader, Sampler, own_cpu_seconds, pids_named, python_cpu_seconds
from videoconverter.config import Config
from videoconverter.transcode.runner import ffmpeg_executable
from videoconverter.transcode.samples import make_clip

INSTALL_HINT = ".venv/bin/pip install -r bench/requirements-peer.txt"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
JOB_TIMEOUT_SECONDS = 900.0
FIND_FFMPEG_TIMEOUT_SECONDS = 120.0
NO_STANDBY = "no-standby"  # the embedded pipeline with `up --no-standby`


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Bench:
    """What every mode shares: the scratch directory, clips, configuration and how to open each system."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.config: Config = bench_config(work / "lines")
        self.warmup_clip = make_clip(work / "warmup.mp4", width=160, height=90, seconds=0.5)
        self._clips: dict[float, Path] = {}
        self.aws_endpoint = ""  # moto's server, with --sqs

    def clip(self, seconds: float) -> Path:
        """A 1920x1080 test clip of ``seconds`` (H.264/AAC, from the package's sample generator)."""
        if seconds not in self._clips:
            say(f"generating a 1920x1080 clip of {seconds:g} s ...")
            self._clips[seconds] = make_clip(self.work / f"clip-{seconds:g}s.mp4", seconds=seconds)
        return self._clips[seconds]

    def open(self, name: str) -> System:
        if name == "celery":
            args = self.args
            return CeleryPeer(
                self.work, self.warmup_clip, self.config, args.redis_url, args.celery_processes, args.celery_busy_ms
            )
        amqp = self.args.amqp_url if name == "rabbitmq" else ""
        options = ["--no-web", "--no-standby"] if name == NO_STANDBY else ["--no-web"]
        return Pipeline(name, self.work, self.warmup_clip, amqp, self.aws_endpoint if name == "sqs" else "", options)

    def expected_lines(self, clip: Path) -> set[tuple[str, ...]]:
        lines = rendition_lines(ffmpeg_executable(), clip, self.config, lambda _: Path("output.mp4"))
        return {tuple(normalised(a)) for a in lines.values()}


# --- 1. batch -------------------------------------------------------------------------------------------------


def batch_run(bench: Bench, name: str, clip: Path, keys: list[str]) -> dict[str, Any]:
    with bench.open(name) as system, Sampler(system.root_pid) as sampler:
        servers = [pid for comm in system.servers for pid in pids_named(comm)]
        before, servers_before = sampler.sample(), own_cpu_seconds(servers)
        started = system.submit(keys, clip)
        finished = system.wait(keys, JOB_TIMEOUT_SECONDS)
        after, servers_after = sampler.sample(memory=True), own_cpu_seconds(servers)
    root = system.root_pid
    tree = list(after.last.values())
    workers = worker_processes(tree, root)
    parent = [p for p in tree if p.pid == root]
    lines = {tuple(normalised(p.args)) for p in after.processes("ffmpeg") if p.started_at >= started - 0.05}
    run: dict[str, Any] = {
        "system": name,
        "drain_seconds": max(finished.at.values()) - started,
        # the FFmpeg runs' wall time, summed over the jobs: the same lines, so a difference is FFmpeg running slower
        "ffmpeg_seconds": sum(end - start for start, end in finished.ffmpeg_spans.values()),
        "worker_processes": len(workers),
        "worker_cpu_seconds": python_cpu_seconds(before, after, {p.pid for p in workers}),
        "parent_cpu_seconds": python_cpu_seconds(before, after, {root}),
        "waiter_cpu_seconds": finished.waiter_cpu_seconds,
        "server_cpu_seconds": servers_after - servers_before,
        # since they started: imports, connecting, the warm-up upload, then the batch
        "worker_lifetime_cpu_seconds": sum(p.cpu_seconds for p in workers),
        "parent_lifetime_cpu_seconds": parent[0].cpu_seconds if parent else None,
        "worker_peak_rss_mib": max((p.peak_rss_bytes for p in workers), default=0) / MIB,
        "parent_peak_rss_mib": (parent[0].peak_rss_bytes / MIB) if parent else None,
        "pss_total_mib": sum(p.pss_bytes for p in workers + parent) / MIB,
        "worker_private_mib": max((p.private_bytes for p in workers), default=0) / MIB,
        "ffmpeg_lines_seen": sorted(lines),
        "retried_jobs": sum(a > 1 for a in finished.attempts.values()),
    }
    # Everything the system ran beside FFmpeg: its workers, its parent, its waiter, its broker's server.
    run["outside_ffmpeg_cpu_seconds"] = sum(
        run[f"{part}_cpu_seconds"] for part in ("worker", "parent", "waiter", "server")
    )
    return run


def measure_batch(bench: Bench) -> dict[str, Any]:
    args = bench.args
    clip = bench.clip(args.seconds)
    keys = [f"batch/clip-{i:03d}.mp4" for i in range(args.clips)]
    systems = [*args.pipelines, "celery"]
    say(
        f"[batch] {args.clips} clips of {args.seconds:g} s x {len(bench.config.renditions)} renditions, "
        f"{args.pairs} pair(s)"
    )
    runs: list[dict[str, Any]] = []
    for i in range(args.pairs):
        for name in systems if i % 2 == 0 else systems[::-1]:
            run = {"pair": i + 1, **batch_run(bench, name, clip, keys)}
            say(
                f"[batch] pair {i + 1} {name:9s} drain {run['drain_seconds']:6.2f} s, worker CPU "
                f"{run['worker_cpu_seconds']:5.2f} s, peak RSS {run['worker_peak_rss_mib']:5.1f} MiB"
            )
            runs.append(run)
    expected = bench.expected_lines(clip)
    for run in runs:
        seen = {tuple(x) for x in run.pop("ffmpeg_lines_seen")}
        run["same_ffmpeg_lines"] = seen == expected
        run["ffmpeg_lines_not_built"] = len(seen - expected)
    ratios = {}
    for name in args.pipelines:
        ratios[name] = {
            figure: pair_ratios(runs, name, figure)
            for figure in (
                "drain_seconds",
                "ffmpeg_seconds",
                "worker_cpu_seconds",
                "outside_ffmpeg_cpu_seconds",
                "worker_lifetime_cpu_seconds",
                "worker_peak_rss_mib",
                "pss_total_mib",
                "worker_private_mib",
            )
        }
    return {"clips": args.clips, "clip_seconds": args.seconds, "pairs": args.pairs, "runs": runs, "ratios": ratios}


def pair_ratios(runs: list[dict[str, Any]], name: str, figure: str) -> dict[str, Any]:
    """``name``/celery of ``figure`` in every pair, and their median."""
    each = []
    for pair in sorted({r["pair"] for r in runs}):
        mine = [r[figure] for r in runs if r["pair"] == pair and r["system"] == name]
        peer = [r[figure] for r in runs if r["pair"] == pair and r["system"] == "celery"]
        if mine and peer and peer[0]:
            each.append(mine[0] / peer[0])
    return {"median": statistics.median(each) if each else None, "each": each}


# --- 2. recovery ----------------------------------------------------------------------------------------------


def recovery_run(bench: Bench, name: str, clip: Path, key: str, target: str) -> dict[str, Any]:
    """Kill the worker process of ``target``'s encode ``--kill-after`` s into it; time until done again."""
    kill_after = bench.args.kill_after
    with bench.open(name) as system, Sampler(system.root_pid) as sampler:
        submitted = system.submit([key], clip)
        encode = find_ffmpeg(sampler.reader, system.root_pid, target, submitted)
        time.sleep(max(0.0, encode.started_at + kill_after - time.time()))
        worker = sampler.reader.read(encode.ppid)
        if sampler.reader.read(encode.pid) is None or worker is None or worker.kind != "python":
            raise RuntimeError(
                f"{name}: the {bench.args.kill_rendition} encode ended before {kill_after:g} s; use a longer "
                "--recovery-seconds or a shorter --kill-after"
            )
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.time()
        finished = system.wait([key], JOB_TIMEOUT_SECONDS)
        seen = sampler.sample()
    done_at = finished.at[(key, bench.args.kill_rendition)]
    again = [p.started_at for p in seen.processes("ffmpeg") if video_filter(p.args) == target and p.pid != encode.pid]
    restarted = min((t for t in again if t >= encode.started_at), default=None)
    return {
        "system": name,
        "ffmpeg_seconds_before_kill": killed_at - encode.started_at,
        "kill_to_ffmpeg_again_seconds": None if restarted is None else restarted - killed_at,
        "kill_to_done_seconds": done_at - killed_at,
        "attempts": finished.attempts.get((key, bench.args.kill_rendition)) or None,
    }


def find_ffmpeg(reader: Reader, root: int, target: str, since: float) -> Any:
    """The running FFmpeg below ``root`` whose ``-vf`` is ``target``, started at or after ``since``."""
    deadline = time.monotonic() + FIND_FFMPEG_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for p in reader.tree(root):
            if p.kind == "ffmpeg" and video_filter(p.args) == target and p.started_at >= since - 0.05:
                return p
        time.sleep(0.1)
    raise TimeoutError(f"no FFmpeg with -vf {target} started within {FIND_FFMPEG_TIMEOUT_SECONDS:g} s")


def measure_recovery(bench: Bench) -> dict[str, Any]:
    args = bench.args
    clip = bench.clip(args.recovery_seconds)
    lines = rendition_lines(ffmpeg_executable(), clip, bench.config, lambda _: Path("output.mp4"))
    if args.kill_rendition not in lines:
        raise SystemExit(f"peer.py: --kill-rendition: no rendition {args.kill_rendition!r} (have {', '.join(lines)})")
    target = video_filter(lines[args.kill_rendition])
    systems = [*args.recovery_pipelines, "celery"]
    say(
        f"[recovery] SIGKILL {args.kill_after:g} s into the {args.kill_rendition} encode of a "
        f"{args.recovery_seconds:g} s clip"
    )
    runs = []
    for i in range(args.runs):
        for name in systems if i % 2 == 0 else systems[::-1]:
            run = {"run": i + 1, **recovery_run(bench, name, clip, f"recovery/clip-{i:03d}.mp4", target)}
            again = run["kill_to_ffmpeg_again_seconds"]
            say(
                f"[recovery] run {i + 1} {name:9s} kill -> FFmpeg again "
                f"{'?' if again is None else f'{again:.2f}'} s, kill -> done {run['kill_to_done_seconds']:.2f} s"
            )
            runs.append(run)
    summary = {}
    for name in systems:
        mine = [r for r in runs if r["system"] == name]
        again = [r["kill_to_ffmpeg_again_seconds"] for r in mine if r["kill_to_ffmpeg_again_seconds"] is not None]
        summary[name] = {
            "kill_to_done_median_seconds": statistics.median(r["kill_to_done_seconds"] for r in mine),
            "kill_to_ffmpeg_again_median_seconds": statistics.median(again) if again else None,
        }
    return {
        "clip_seconds": args.recovery_seconds,
        "kill_after_seconds": args.kill_after,
        "rendition": args.kill_rendition,
        "runs": runs,
        "median": summary,
        "settings": settings(bench),
    }


def settings(bench: Bench) -> dict[str, str]:
    """How each system gets a killed worker's job back, with the settings that decide how soon."""
    from celery_tasks import VISIBILITY_TIMEOUT_SECONDS

    lease = bench.config.visibility_timeout_seconds
    return {
        "embedded": "`up` hands the dead worker's leases back from its journal at once (rather than after "
        f"visibility_timeout_seconds = {lease}) and its standby worker takes the dead one's place",
        NO_STANDBY: "as embedded, but `up --no-standby`: a new worker process starts in the dead one's place",
        "rabbitmq": "RabbitMQ requeues the unacknowledged message when the dead worker's connection closes; `up`'s "
        "standby worker takes the dead one's place",
        "sqs": "`up` hands the leases its journal names back to SQS (ChangeMessageVisibility 0) at once, rather "
        f"than after the visibility timeout ({lease} s), and its standby worker takes the dead one's place",
        "celery": "the master replaces the pool process; task_acks_late + task_reject_on_worker_lost requeue the "
        f"task at once (Redis visibility_timeout = {VISIBILITY_TIMEOUT_SECONDS} s only restores messages of a "
        "worker that vanished whole)",
    }


# --- 3. single ------------------------------------------------------------------------------------------------


def measure_single(bench: Bench) -> dict[str, Any]:
    args = bench.args
    clip = bench.clip(args.seconds)
    systems = [*args.pipelines, "celery"]
    runs = []
    for i in range(args.runs):
        for name in systems if i % 2 == 0 else systems[::-1]:
            key = f"single/clip-{i:03d}.mp4"
            with bench.open(name) as system:
                started = system.submit([key], clip)
                finished = system.wait([key], JOB_TIMEOUT_SECONDS)
            latency = max(finished.at.values()) - started
            say(f"[single] run {i + 1} {name:9s} upload -> done {latency:.2f} s")
            runs.append({"run": i + 1, "system": name, "upload_to_done_seconds": latency})
    median = {
        name: statistics.median(r["upload_to_done_seconds"] for r in runs if r["system"] == name) for name in systems
    }
    return {"clip_seconds": args.seconds, "runs": runs, "median_seconds": median}


# --- main -----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="all", choices=["batch", "recovery", "single", "all"])
    p.add_argument("--clips", type=int, default=8, help="uploads per batch run (default 8)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of the batch and single clip (default 2)")
    p.add_argument("--pairs", type=int, default=3, help="batch runs of each system, alternating (default 3)")
    p.add_argument("--runs", type=int, default=3, help="recovery and single runs of each system (default 3)")
    p.add_argument("--recovery-seconds", type=float, default=10.0, help="length of the recovery clip (default 10)")
    p.add_argument("--kill-after", type=float, default=5.0, help="seconds into the encode to kill (default 5)")
    p.add_argument("--kill-rendition", default="1080p", help="the encode whose worker is killed (default 1080p)")
    p.add_argument("--celery-processes", type=int, default=2, help="Celery's prefork pool size (default 2)")
    p.add_argument(
        "--celery-busy-ms",
        type=float,
        default=0.0,
        help="CPU each Celery task spends before its FFmpeg, to weigh the pipeline's per-job CPU (default 0)",
    )
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help=f"Celery's broker (default {DEFAULT_REDIS_URL})")
    p.add_argument(
        "--amqp-url",
        default=DEFAULT_AMQP_URL,
        help=f"the pipeline's RabbitMQ (default {DEFAULT_AMQP_URL.replace('%', '%%')})",
    )
    p.add_argument(
        "--rabbitmq", action="store_true", help="batch and single also run the pipeline on RabbitMQ (recovery always)"
    )
    p.add_argument("--no-rabbitmq", action="store_true", help="recovery without the pipeline on RabbitMQ")
    p.add_argument(
        "--sqs", action="store_true", help="recovery also on S3 + SNS/SQS + DynamoDB (a moto server, over HTTP)"
    )
    p.add_argument(
        "--no-standby-too",
        action="store_true",
        help="every mode also runs the embedded pipeline with `up --no-standby` (its standby's cost and gain)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = p.parse_args(argv)
    if min(args.clips, args.pairs, args.runs, args.celery_processes) < 1 or min(args.seconds, args.kill_after) <= 0:
        p.error("--clips, --pairs, --runs and --celery-processes must be >= 1; --seconds and --kill-after > 0")
    if args.celery_busy_ms < 0:
        p.error("--celery-busy-ms must be >= 0")
    if args.recovery_seconds <= args.kill_after:
        p.error("--recovery-seconds must be longer than --kill-after")
    args.pipelines = ["embedded", "rabbitmq"] if args.rabbitmq else ["embedded"]
    args.recovery_pipelines = ["embedded"] if args.no_rabbitmq else ["embedded", "rabbitmq"]
    if args.sqs:
        args.recovery_pipelines.append("sqs")
    if args.no_standby_too:
        args.pipelines.append(NO_STANDBY)
        args.recovery_pipelines.append(NO_STANDBY)
    return args


def missing_service(args: argparse.Namespace) -> str:
    """Why the benchmark cannot run ("" when it can): Celery not installed, Redis or RabbitMQ not reachable."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"the Celery peer needs Celery and its Redis client ({exc.name} is missing): {INSTALL_HINT}"
    needed = [args.redis_url]
    if "rabbitmq" in args.pipelines or (args.mode in ("recovery", "all") and "rabbitmq" in args.recovery_pipelines):
        needed.append(args.amqp_url)
    for url in needed:
        parts = urlsplit(url)
        port = parts.port or (6379 if parts.scheme.startswith("redis") else 5672)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2).close()
        except OSError:
            return f"nothing listens at {parts.hostname}:{port} ({parts.scheme}); start it or pass another URL"
    return ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = missing_service(args)
    if problem:
        print(f"peer.py: {problem}", file=sys.stderr)
        return 2
    compile_package()
    load = os.getloadavg()[0]
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "ffmpeg": ffmpeg_executable()}
    if load > 0.5 * (os.cpu_count() or 1):
        say(f"note: load average {load:.1f} on {os.cpu_count()} CPUs: the figures are indicative only")
    modes = ["batch", "recovery", "single"] if args.mode == "all" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="vc-peer-") as tmp, contextlib.ExitStack() as stack:
        bench = Bench(args, Path(tmp))
        if args.sqs and "recovery" in modes:
            bench.aws_endpoint = stack.enter_context(moto_server(Path(tmp)))
        for mode in modes:
            results[mode] = {"batch": measure_batch, "recovery": measure_recovery, "single": measure_single}[mode](
                bench
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    printers = {"batch": print_batch, "recovery": print_recovery, "single": print_single}
    for mode in modes:
        print()
        printers[mode](results[mode])
    return 0


if __name__ == "__main__":
    sys.exit(main())
