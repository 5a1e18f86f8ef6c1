"""The long-running commands: `up` (the supervised fleet, the pruner, the dashboard), `web` and `worker`, and the
signals that stop them (SIGTERM or Ctrl-C: stop after the current job; a second one: stop now)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from videoconverter import telemetry
from videoconverter.cli import events as cli_events
from videoconverter.config import Config
from videoconverter.errors import ConfigError
from videoconverter.fleet.supervisor import AutoScaling, Pool
from videoconverter.jobs.base import JobStore
from videoconverter.jobs.retention import Pruner
from videoconverter.pipeline import Services, open_services, provision, services
from videoconverter.renditions import Rendition


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_up(args: argparse.Namespace, config: Config) -> int:
    from videoconverter.fleet.supervisor import supervise

    fleet = _fleet(args, config)
    stop = stop_on_signals()
    svc = open_services(config)
    try:
        provision(svc)
        if not args.no_reconcile:
            count = svc.ingest.reconcile(svc.store)
            if count:
                print(f"queued {count} upload(s) that had no job yet", file=sys.stderr)
    finally:
        svc.close()
    print(
        f"videoconverter up: workers for {', '.join(r.name for r in config.renditions)}; Ctrl-C stops", file=sys.stderr
    )
    pruner = _start_pruner(config, stop)
    # Before the workers start; only for a reader: the dashboard, or whoever set PROMETHEUS_MULTIPROC_DIR.
    shared = telemetry.available() and (not args.no_web or telemetry.MULTIPROCESS_DIR_VARIABLE in os.environ)
    metrics_dir = telemetry.share_with_workers() if shared else None
    web = None if args.no_web else _start_web(config, args, required=False)
    try:
        if isinstance(fleet, Pool):
            supervise(config, stop, pool=fleet, keep_standby=not args.no_standby)
        elif isinstance(fleet, AutoScaling):
            supervise(config, stop, autoscaling=fleet, keep_standby=not args.no_standby)
        else:
            supervise(config, stop, concurrency=fleet, keep_standby=not args.no_standby)
    finally:
        if web is not None:
            web.stop()
        if pruner is not None:
            pruner.join(5.0)
        if metrics_dir is not None:
            telemetry.unshare(*metrics_dir)
    return 0


def _fleet(args: argparse.Namespace, config: Config) -> Pool | AutoScaling | int:
    """How `up` runs its workers: a pool serving every rendition (the default), or dedicated workers per rendition
    (``--workers auto``: autoscaling; ``--workers N`` or ``--concurrency N``: N for each)."""
    workers = args.workers or (str(args.concurrency) if args.concurrency is not None else None)
    if workers is not None and args.pool is not None:
        raise ConfigError("--pool runs workers for every rendition, --workers dedicated ones: choose one")
    if workers is None:
        return cli_events.pool(args, config)
    if workers == "auto":
        return cli_events.autoscaling(args, config, len(config.renditions))
    if workers.isdigit() and int(workers) >= 1:
        return int(workers)
    raise ConfigError(f"--workers: expected a number of workers or auto, got {workers!r}")


def _start_pruner(config: Config, stop: threading.Event) -> Pruner | None:
    """With ``[jobs] retention_days``, a thread that prunes old finished jobs at start and then hourly."""
    if not config.job_retention_days:
        return None

    @contextlib.contextmanager
    def open_jobs() -> Iterator[JobStore]:
        with services(config) as svc:
            yield svc.jobs

    return Pruner(open_jobs, config.job_retention_days, stop).start()


def cmd_web(args: argparse.Namespace, config: Config) -> int:
    stop = stop_on_signals()
    web = _start_web(config, args, required=True)
    try:
        stop.wait()
    finally:
        if web is not None:
            web.stop()
    return 0


def _start_web(config: Config, args: argparse.Namespace, *, required: bool) -> Any:
    try:
        from videoconverter.web.server import WebServer
    except ImportError as exc:
        if required:
            raise ConfigError(f"the dashboard needs the web extra: pip install 'videoconverter[web]' ({exc})") from exc
        print("videoconverter up: no web dashboard (pip install 'videoconverter[web]' for it)", file=sys.stderr)
        return None
    web = WebServer(config, args.host, args.port)
    web.start()
    print(f"videoconverter: dashboard and HTTP API on {web.url}", file=sys.stderr)
    return web


def cmd_worker(args: argparse.Namespace, config: Config) -> int:
    stop = stop_on_signals()
    if args.standby:
        if args.rendition or args.all:
            raise ConfigError("a standby is told its renditions on stdin: name none")
        return _standby(args, config, stop)
    renditions = _worker_renditions(args, config)
    if args.max is not None and len(renditions) > 1:
        raise ConfigError("--max scales the workers of one rendition: name one rendition")
    if args.metrics_port is not None:
        telemetry.serve(args.metrics_port, args.metrics_host)
    if args.max is not None:  # a pool of this rendition's workers that follows its queue
        from videoconverter.fleet.supervisor import supervise

        if not args.no_provision:
            with services(config) as svc:
                provision(svc)
        scaling = cli_events.autoscaling(args, config, 1)
        supervise(config, stop, autoscaling=scaling, renditions=[renditions[0].name], deliver_webhooks=False)
        return 0
    with services(config) as svc:
        _serve(args, svc, renditions, stop)
    return 0


def _standby(args: argparse.Namespace, config: Config, stop: threading.Event) -> int:
    """As `up`'s standby (see :mod:`videoconverter.fleet.standby`): get ready, wait for the renditions to
    serve, then serve them as any worker; exit when told to stop first."""
    # Ready means what a new worker spends most of its start on: imports, finding FFmpeg (cached), the
    # backends' clients (boto3's service models) and connections.
    import videoconverter.pool
    import videoconverter.worker  # noqa: F401
    from videoconverter.fleet import standby
    from videoconverter.transcode.runner import ffmpeg_executable

    ffmpeg_executable()
    with services(config) as svc:
        line = standby.await_assignment(sys.stdin.buffer, stop)
        if line is not None:
            _serve(args, svc, standby.parse_assignment(line, config), stop)
    return 0


def _serve(args: argparse.Namespace, svc: Services, renditions: list[Rendition], stop: threading.Event) -> None:
    """Serve ``renditions`` with ``svc`` until ``stop``, or as ``--max-jobs`` and ``--exit-when-idle`` say."""
    from videoconverter.recovery.journal import broker_fingerprint
    from videoconverter.recovery.reaper import Reaper
    from videoconverter.recovery.workspace import default_root

    drain = threading.Event()  # SIGUSR1 (from `up --workers auto` scaling in): exit after the current job
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: drain.set())
    if not args.no_provision:
        provision(svc)
    # Dead workers' state folders: their jobs' temp files, and leases they never settled (given back now).
    Reaper(default_root(), svc.broker, broker_fingerprint(svc.config.broker_url)).reap_dead()
    until = {"max_messages": args.max_jobs, "exit_when_idle": args.exit_when_idle}
    if len(renditions) > 1:
        from videoconverter.pool import PoolWorker

        PoolWorker(svc, renditions, stop, drain).run(**until)
    else:
        from videoconverter.worker import Worker

        Worker(svc, renditions[0], stop, drain=drain).run(**until)


def _worker_renditions(args: argparse.Namespace, config: Config) -> list[Rendition]:
    """The renditions a `worker` serves: those named (each once, in order), or with --all every one."""
    if args.all and args.rendition:
        raise ConfigError("name renditions or give --all, not both")
    if args.all:
        return list(config.renditions)
    if not args.rendition:
        raise ConfigError("name the rendition to serve (e.g. `worker 720p`), several, or give --all")
    return [config.rendition(name) for name in dict.fromkeys(args.rendition)]
