"""The `videoconverter` command line. Errors end in one clear line on stderr and a non-zero exit status.

Exit status: 0 success, 1 error, 2 bad usage, 3 some jobs failed (``jobs --wait``), 4 ``--wait`` timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from videoconverter import __version__, dead_letters, telemetry
from videoconverter.cli import events as cli_events
from videoconverter.cli import media as cli_media
from videoconverter.cli import objects as cli_objects
from videoconverter.config import ENVIRONMENT, Config, load_config
from videoconverter.errors import ConfigError, VideoConverterError
from videoconverter.jobs.base import (
    ALL_JOBS,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    JobFilter,
    JobId,
    JobRecord,
    JobState,
    JobStore,
)
from videoconverter.jobs.paging import check_limit
from videoconverter.jobs.retention import Pruner
from videoconverter.logs import configure_logging, redact
from videoconverter.pipeline import Services, open_services, provision, provision_plan, services, settled
from videoconverter.progress import ProgressBar

EXIT_ERROR, EXIT_USAGE, EXIT_JOBS_FAILED, EXIT_TIMEOUT = 1, 2, 3, 4


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config()
        configure_logging(config.log_level)
        result: int = args.handler(args, config)
        return result
    except VideoConverterError as exc:
        print(f"videoconverter: error: {redact(exc.message)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR
    except KeyboardInterrupt:
        print("videoconverter: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {name:26} {text}" for name, text in ENVIRONMENT.items())
    parser = argparse.ArgumentParser(
        prog="videoconverter",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn uploaded videos into web-ready renditions: upload into the input bucket, workers "
        "convert, outputs appear in one bucket per rendition.",
        epilog=f"environment:\n{env_help}",
    )
    parser.add_argument("--version", action="version", version=f"videoconverter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = command("up", cmd_up, "run a worker per rendition (and re-queue missed uploads) until Ctrl-C")
    p.add_argument("--concurrency", type=int, default=None, help="same as --workers N")
    cli_events.add_scaling_arguments(p, workers_option=True)
    p.add_argument("--no-reconcile", action="store_true", help="do not queue input objects that have no job")
    p.add_argument("--no-web", action="store_true", help="do not serve the web dashboard and HTTP API")
    _web_arguments(p)
    p = command("web", cmd_web, "serve the web dashboard and HTTP API (default http://127.0.0.1:8080) until Ctrl-C")
    _web_arguments(p)
    p = command("worker", cmd_worker, "run one worker for one rendition until Ctrl-C")
    p.add_argument("rendition", help="rendition name, e.g. 720p")
    p.add_argument("--max-jobs", type=int, help="exit after handling this many messages")
    p.add_argument("--exit-when-idle", action="store_true", help="exit once the queue is empty")
    p.add_argument(
        "--no-provision", action="store_true", help="do not create or change queues and buckets (e.g. on ECS)"
    )
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve this worker's Prometheus metrics on PORT")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port (default 127.0.0.1)")
    cli_events.add_scaling_arguments(p, workers_option=False)
    cli_events.add_commands(command, cmd_events, cmd_webhooks)
    cli_media.add_commands(command)
    cli_objects.add_commands(command)
    p = command("jobs", cmd_jobs, "show jobs, newest first: state, attempts, progress, output, error")
    p.add_argument("key", nargs="?", help="every job of this uploaded key")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="block until no job is queued or running")
    _listing_arguments(p)
    p.add_argument("--json", action="store_true")
    p = command("logs", cmd_logs, "show the log lines of the jobs of one uploaded key")
    p.add_argument("key")
    p.add_argument("--json", action="store_true")
    p = command("dlq", cmd_dlq, "inspect or redrive the dead-letter queues")
    p.add_argument("action", choices=["list", "redrive"])
    p.add_argument("rendition", nargs="?", help="only this rendition (default: all)")
    p.add_argument("--message-id", metavar="ID", help="redrive only this dead letter (its id as `dlq list` shows it)")
    p.add_argument("--json", action="store_true")
    p = command("provision", cmd_provision, "create, or bring into line, the buckets, topic and queues (idempotent)")
    p.add_argument("--dry-run", action="store_true", help="print what would be ensured, touching nothing")
    p.add_argument("--json", action="store_true")
    p = command("demo", cmd_demo, "convert generated sample clips with the embedded backends and show the results")
    p.add_argument("--data-dir", type=Path, help="where to keep the demo's buckets and queues (default vc-demo)")
    p = command("package-lambda", cmd_package_lambda, "build an AWS Lambda function's zip or container-image context")
    p.add_argument("--function", required=True, choices=["publish", "transcode"], help="which function")
    p.add_argument("--format", choices=["zip", "image"], help="default: zip for publish, image for transcode")
    p.add_argument("--output", type=Path, help="default dist/lambda-FUNCTION.zip or dist/lambda-FUNCTION-image/")
    p.add_argument("--config", type=Path, help="config file to bundle (default: the active one, if any)")
    p.add_argument(
        "--skip-glibc-check", action="store_true", help="build even where a wheel needs a newer glibc than Lambda's"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _listing_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"list the newest N jobs (default {DEFAULT_PAGE_SIZE}, 1-{MAX_PAGE_SIZE})",
    )
    p.add_argument("--cursor", help="the next page: the cursor the previous listing printed")
    p.add_argument("--state", action="append", choices=[s.value for s in JobState], help="only this state (repeatable)")
    p.add_argument("--rendition", help="only this rendition's jobs")
    p.add_argument("--prefix", default="", metavar="PREFIX", help="only keys that start with PREFIX")


def _web_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to serve the dashboard on (default 127.0.0.1, or [web] host)")
    p.add_argument("--port", type=int, help="port (default 8080, or VIDEOCONVERTER_PORT, or [web] port)")


# --- long-running ------------------------------------------------------------------------------------------


def _stop_on_signals() -> threading.Event:
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

    stop = _stop_on_signals()
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
    metrics_dir = telemetry.share_with_workers() if telemetry.available() else None  # before they start
    web = None if args.no_web else _start_web(config, args, required=False)
    try:
        workers = args.workers or (str(args.concurrency) if args.concurrency is not None else "1")
        if workers == "auto":
            supervise(config, stop, autoscaling=cli_events.autoscaling(args, config, len(config.renditions)))
        elif workers.isdigit() and int(workers) >= 1:
            supervise(config, stop, concurrency=int(workers))
        else:
            raise ConfigError(f"--workers: expected a number of workers or auto, got {workers!r}")
    finally:
        if web is not None:
            web.stop()
        if pruner is not None:
            pruner.join(5.0)
        if metrics_dir is not None:
            telemetry.unshare(*metrics_dir)
    return 0


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
    stop = _stop_on_signals()
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
    from videoconverter.worker import Worker

    rendition = config.rendition(args.rendition)
    stop = _stop_on_signals()
    if args.metrics_port is not None:
        telemetry.serve(args.metrics_port, args.metrics_host)
    if args.max is not None:  # a pool of this rendition's workers that follows its queue
        from videoconverter.fleet.supervisor import supervise

        if not args.no_provision:
            with services(config) as svc:
                provision(svc)
        scaling = cli_events.autoscaling(args, config, 1)
        supervise(config, stop, autoscaling=scaling, renditions=[rendition.name], deliver_webhooks=False)
        return 0
    drain = threading.Event()  # SIGUSR1 (from `up --workers auto` scaling in): exit after the current job
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: drain.set())
    svc = open_services(config)
    try:
        if not args.no_provision:
            provision(svc)
        worker = Worker(svc, rendition, stop, drain=drain)
        worker.run(max_messages=args.max_jobs, exit_when_idle=args.exit_when_idle)
    finally:
        svc.close()
    return 0


def cmd_events(args: argparse.Namespace, config: Config) -> int:
    return cli_events.print_events(args, config, _stop_on_signals())


def cmd_webhooks(args: argparse.Namespace, config: Config) -> int:
    return cli_events.deliver_webhooks(config, _stop_on_signals())


# --- storage -----------------------------------------------------------------------------------------------


# --- jobs --------------------------------------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace, config: Config) -> int:
    listing = args.limit is not None or args.cursor or args.state or args.rendition or args.prefix
    if listing and (args.key is not None or args.wait is not None):
        options = "--limit, --cursor, --state, --rendition and --prefix"
        raise ConfigError(f"jobs: KEY and --wait show every job they concern: leave out {options}")
    more: str | None = None
    with services(config) as svc:
        if args.wait is not None:
            records, finished, waited = _wait_for_jobs(svc, args.key, args.wait)
            if args.key is None:
                records = _newest_with(svc.jobs.page(ALL_JOBS, DEFAULT_PAGE_SIZE).records, records)
        elif args.key is not None:
            records, finished = svc.jobs.find(args.key), True
            waited = records
        else:
            rendition = config.rendition(args.rendition).name if args.rendition else None
            where = JobFilter(tuple(JobState(s) for s in args.state or ()), rendition, args.prefix)
            limit = DEFAULT_PAGE_SIZE if args.limit is None else check_limit(args.limit)
            page = svc.jobs.page(where, limit, args.cursor)
            records, finished, waited, more = page.records, True, [], page.next_cursor
    if args.json:
        print(json.dumps({"jobs": [r.as_json() for r in records], "next_cursor": more}))
    else:
        _print_jobs(records)
        if more:
            print(f"more: videoconverter jobs{_listing_flags(args)} --cursor {more}", file=sys.stderr)
    if not finished:
        print(f"videoconverter: error: jobs still pending after {args.wait:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    failed = [r for r in waited if r.state is JobState.FAILED]
    if args.wait is not None and failed:
        print(f"videoconverter: error: {len(failed)} job(s) failed: see `videoconverter dlq list`", file=sys.stderr)
        return EXIT_JOBS_FAILED
    return 0


def _listing_flags(args: argparse.Namespace) -> str:
    flags = [f" --limit {args.limit}"] if args.limit is not None else []
    flags += [f" --state {state}" for state in args.state or ()]
    flags += [f" --rendition {args.rendition}"] if args.rendition else []
    flags += [f" --prefix {shlex.quote(args.prefix)}"] if args.prefix else []
    return "".join(flags)


def _newest_with(newest: list[JobRecord], waited: list[JobRecord]) -> list[JobRecord]:
    """The newest jobs and those waited on, once each, newest first."""
    merged = {r.id: r for r in newest} | {r.id: r for r in waited}
    return sorted(merged.values(), key=lambda r: r.created_at, reverse=True)


def _wait_for_jobs(
    svc: Services, key: str | None, timeout_seconds: float
) -> tuple[list[JobRecord], bool, list[JobRecord]]:
    """Poll until nothing is pending (or the timeout): the records shown, whether all finished, and the jobs
    waited on (a key's jobs; without a key, those pending at some poll, as they ended)."""
    deadline = time.monotonic() + timeout_seconds
    bar = ProgressBar("jobs")
    tracked: dict[JobId, JobRecord] = {}
    try:
        while True:
            records, done_all = settled(svc, key)
            if key is None:  # the pending jobs: those that left the query since the last poll are read once
                pending = {r.id for r in records}
                for job_id, seen in list(tracked.items()):
                    if job_id not in pending and not seen.state.terminal:
                        tracked[job_id] = svc.jobs.get(job_id) or seen
                tracked.update((r.id, r) for r in records)
                records = sorted(tracked.values(), key=lambda r: r.created_at, reverse=True)
            pending_now = [r for r in records if not r.state.terminal]
            done = len(records) - len(pending_now)
            running = [r.progress_percent for r in pending_now if r.state is JobState.RUNNING]
            bar.update(
                done + sum(running) / 100,
                len(records) or None,
                f"{done}/{len(records)} finished, {len(running)} running",
            )
            if done_all or time.monotonic() >= deadline:
                return records, done_all, records
            time.sleep(0.25)
    finally:
        bar.close()


def _print_jobs(records: list[JobRecord]) -> None:
    if not records:
        print("no jobs")
        return
    print(f"{'KEY':30} {'RENDITION':9} {'STATE':8} {'TRIES':>5} {'PROGRESS':>8}  OUTPUT / ERROR")
    for r in records:
        detail = r.output_url or r.error or ""
        if r.note:
            detail = f"{detail} ({r.note})" if detail else r.note
        print(
            f"{r.id.key:30} {r.id.rendition:9} {r.state.value:8} {r.attempts:>5} "
            f"{r.progress_percent:>7.0f}%  {redact(detail)}"
        )


def cmd_logs(args: argparse.Namespace, config: Config) -> int:
    with services(config) as svc:
        lines = svc.jobs.logs(args.key)
    if not lines:
        raise VideoConverterError(f"no log lines for key {args.key!r}: check the key with `videoconverter jobs`")
    for line in lines:
        if args.json:
            print(
                json.dumps(
                    {
                        "key": line.key,
                        "rendition": line.rendition,
                        "time": line.at,
                        "level": line.level,
                        "message": line.message,
                    }
                )
            )
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line.at))
            print(f"{stamp} {line.rendition:6} {line.level:7} {line.message}")
    return 0


def cmd_dlq(args: argparse.Namespace, config: Config) -> int:
    renditions = [config.rendition(args.rendition)] if args.rendition else list(config.renditions)
    if args.message_id is not None and args.action != "redrive":
        raise ConfigError("--message-id goes with `dlq redrive` only")
    output: list[dict[str, Any]] = []
    with services(config) as svc:
        if args.action == "redrive":
            output = dead_letters.redrive(svc, renditions, args.message_id)
        else:
            for rendition in renditions:
                for letter in svc.broker.dead_letters(rendition.queue):
                    output.append(
                        {
                            "rendition": rendition.name,
                            "message_id": letter.message_id,
                            "reason": letter.reason,
                            "dead_lettered_at": letter.dead_lettered_at,
                            "body": letter.body,
                        }
                    )
    if args.json:
        print(json.dumps(output))
    elif args.action == "redrive":
        for item in output:
            print(f"{item['rendition']}: {item['redriven']} message(s) moved back to the queue")
    elif not output:
        print("the dead-letter queues are empty")
    else:
        for item in output:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["dead_lettered_at"]))
            print(f"{stamp} {item['rendition']:6} {item['message_id']}  {item['reason']}")
    if args.action == "redrive" and args.message_id is not None and not any(item["redriven"] for item in output):
        print(f"videoconverter: error: no dead letter with id {args.message_id!r}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_provision(args: argparse.Namespace, config: Config) -> int:
    if args.dry_run:
        steps, field, prefix = provision_plan(config), "planned", "would ensure"
    else:
        with services(config) as svc:
            steps, field, prefix = provision(svc), "ensured", "ok"
    if args.json:
        print(json.dumps({field: steps}))
    else:
        for step in steps:
            print(f"{prefix}  {step}")
    return 0


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from videoconverter.cli.demo import run_demo

    return run_demo(args.data_dir)


def cmd_package_lambda(args: argparse.Namespace, config: Config) -> int:
    from videoconverter.serverless.package import package_lambda

    artifact = package_lambda(
        args.function,
        args.format,
        output=args.output,
        config_path=args.config,
        check_glibc=not args.skip_glibc_check,
    )
    print(json.dumps(artifact.to_json()) if args.json else artifact.summary())
    return 0
