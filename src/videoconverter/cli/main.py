"""The `videoconverter` command line. Errors end in one clear line on stderr and a non-zero exit status.

Exit status: 0 success, 1 error, 2 bad usage, 3 some jobs failed (``jobs --wait``), 4 ``--wait`` timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoconverter import __version__, dead_letters
from videoconverter.cli import events as cli_events
from videoconverter.cli import jobs as cli_jobs
from videoconverter.cli import media as cli_media
from videoconverter.cli import objects as cli_objects
from videoconverter.cli.serve import cmd_up, cmd_web, cmd_worker, stop_on_signals
from videoconverter.config import ENVIRONMENT, Config, load_config
from videoconverter.errors import ConfigError, VideoConverterError
from videoconverter.logs import Redactor, configure_logging
from videoconverter.pipeline import provision, provision_plan, services
from videoconverter.validation import PORT

EXIT_ERROR, EXIT_USAGE = 1, 2  # 3 and 4: `jobs --wait` (cli/jobs.py)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    redactor = Redactor()  # by place only, until the configuration names its secrets
    try:
        _check_numbers(args)
        config = load_config()
        redactor = Redactor(config.secrets)
        configure_logging(config.log_level, redactor)
        result: int = args.handler(args, config)
        return result
    except VideoConverterError as exc:
        _print_error(redactor, exc.message)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR
    except KeyboardInterrupt:
        print("videoconverter: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except OSError as exc:  # a local file or folder: unreadable, full disk, name too long, ...
        where = f": {exc.filename}" if exc.filename else ""
        _print_error(redactor, f"{exc.strerror or exc}{where}")
        return EXIT_ERROR


def _print_error(redactor: Redactor, message: str) -> None:
    """The one line of an error: a message of several lines (a driver's hint after its error) is joined."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"videoconverter: error: {redactor.redact(line)}", file=sys.stderr)


def _check_numbers(args: argparse.Namespace) -> None:
    """The options whose range argparse does not know (``--port 70000`` would listen on 4464)."""
    if getattr(args, "port", None) is not None:
        args.port = PORT.parse(args.port, "--port")
    if getattr(args, "wait", None) is not None:
        args.wait = cli_jobs.WAIT_SECONDS.check(args.wait, "--wait")


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

    p = command("up", cmd_up, "run a pool of workers for every rendition (and re-queue missed uploads) until Ctrl-C")
    p.add_argument("--concurrency", type=int, default=None, help="same as --workers N")
    cli_events.add_scaling_arguments(p, workers_option=True)
    p.add_argument("--no-reconcile", action="store_true", help="do not queue input objects that have no job")
    p.add_argument("--no-web", action="store_true", help="do not serve the web dashboard and HTTP API")
    p.add_argument("--no-standby", action="store_true", help="keep no warmed-up worker ready to replace one that dies")
    _web_arguments(p)
    p = command("web", cmd_web, "serve the web dashboard and HTTP API (default http://127.0.0.1:8080) until Ctrl-C")
    _web_arguments(p)
    p = command("worker", cmd_worker, "run a worker for one rendition, or one serving several queues, until Ctrl-C")
    p.add_argument(
        "rendition", nargs="*", help="rendition name, e.g. 720p; several: one worker takes from all their queues"
    )
    p.add_argument("--all", action="store_true", help="serve every rendition's queue (what `up`'s pool runs)")
    p.add_argument("--max-jobs", type=int, help="exit after handling this many messages")
    p.add_argument("--exit-when-idle", action="store_true", help="exit once the queue is empty")
    p.add_argument(
        "--no-provision", action="store_true", help="do not create or change queues and buckets (e.g. on ECS)"
    )
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve this worker's Prometheus metrics on PORT")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of --metrics-port (default 127.0.0.1)")
    p.add_argument("--standby", action="store_true", help=argparse.SUPPRESS)  # `up`'s: renditions come on stdin
    cli_events.add_scaling_arguments(p, workers_option=False)
    cli_events.add_commands(command, cmd_events, cmd_webhooks)
    cli_media.add_commands(command)
    cli_objects.add_commands(command)
    cli_jobs.add_commands(command)
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


def _web_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to serve the dashboard on (default 127.0.0.1, or [web] host)")
    p.add_argument("--port", help="port (default 8080, or VIDEOCONVERTER_PORT, or [web] port)")


def cmd_events(args: argparse.Namespace, config: Config) -> int:
    return cli_events.print_events(args, config, stop_on_signals())


def cmd_webhooks(args: argparse.Namespace, config: Config) -> int:
    return cli_events.deliver_webhooks(config, stop_on_signals())


# --- jobs --------------------------------------------------------------------------------------------------


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
