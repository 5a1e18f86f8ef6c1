"""The CLI's notification and scaling commands: `events`, `webhooks`, and the `--workers auto` options."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from videoconverter.brokers.base import Delivery
from videoconverter.config import Config
from videoconverter.consumer import ACKED, Consumer, Settlement, settle
from videoconverter.errors import ConfigError
from videoconverter.fleet.scaling import ScalingPolicy, cpu_budget, threads_per_worker
from videoconverter.fleet.supervisor import AutoScaling, Pool
from videoconverter.pipeline import open_broker, services

Command = Callable[[str, Any, str], argparse.ArgumentParser]


def add_commands(command: Command, cmd_events: Any, cmd_webhooks: Any) -> None:
    p = command("events", cmd_events, "print job events from the events queue (what webhooks receive)")
    p.add_argument("--follow", action="store_true", help="keep printing new events until Ctrl-C")
    p.add_argument("--undelivered", action="store_true", help="list webhook deliveries that were given up")
    p.add_argument("--redeliver", action="store_true", help="try the undelivered webhook deliveries again")
    p.add_argument("--json", action="store_true", help="one JSON event per line (the documented schema)")
    command("webhooks", cmd_webhooks, "deliver job events to the configured webhooks until Ctrl-C (`up` runs it)")


def add_scaling_arguments(p: argparse.ArgumentParser, *, workers_option: bool) -> None:
    if workers_option:
        p.add_argument(
            "--pool",
            type=int,
            default=None,
            metavar="N",
            help="worker processes that each serve every rendition's queue (the default: one per core)",
        )
        p.add_argument(
            "--workers",
            default=None,
            metavar="N|auto",
            help="instead of the pool: dedicated worker processes per rendition, or `auto` to follow the queues",
        )
    p.add_argument("--min", type=int, default=None, help="auto: workers per rendition when idle (default 0)")
    p.add_argument("--max", type=int, default=None, help="auto: workers per rendition at most (default: the cores)")
    p.add_argument(
        "--scale-in-after", type=float, default=10.0, metavar="SECONDS", help="auto: idle time before scaling in"
    )


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or `taskset`'s share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pool(args: argparse.Namespace, config: Config) -> Pool:
    """`up`'s pool: ``--pool N`` worker processes (default: one per core), each serving every rendition."""
    cores = machine_cores()
    size = args.pool if args.pool is not None else cores
    if size < 1:
        raise ConfigError(f"--pool: expected at least 1 worker process, got {size}")
    if args.min is not None or args.max is not None:
        raise ConfigError("--min and --max go with --workers auto (dedicated workers per rendition), not the pool")
    threads = config.ffmpeg_threads
    print(
        f"pool: {size} worker process(es) on {cores} cores, each serving "
        f"{', '.join(r.name for r in config.renditions)}; FFmpeg threads {threads or 'FFmpeg decides'}",
        file=sys.stderr,
    )
    return Pool(size, threads)


def autoscaling(args: argparse.Namespace, config: Config, renditions: int) -> AutoScaling:
    """The scaling policy of `up --workers auto` or `worker R --max N`, checked against the machine's cores."""
    cores = machine_cores()
    maximum = args.max if args.max is not None else cores
    minimum = args.min if args.min is not None else 0
    if not 0 <= minimum <= maximum or maximum < 1:
        raise ConfigError(f"--min {minimum} --max {maximum}: expected 0 <= min <= max and max >= 1")
    threads = config.ffmpeg_threads or threads_per_worker(cores, maximum)
    budget = max(cpu_budget(cores, threads), minimum * renditions)
    policy = ScalingPolicy(minimum, maximum, budget, args.scale_in_after)
    print(
        f"autoscaling: {minimum}-{maximum} workers per rendition, at most {budget} in all on {cores} cores, "
        f"{threads} FFmpeg thread(s) each",
        file=sys.stderr,
    )
    return AutoScaling(policy, threads)


def print_events(args: argparse.Namespace, config: Config, stop: threading.Event) -> int:
    settings = config.notifications
    with services(config) as svc:
        broker = svc.broker
        if args.undelivered or args.redeliver:
            if not settings.webhook_urls:
                print("no webhooks are configured (notifications.webhook_urls)", file=sys.stderr)
                return 0
            if args.redeliver:
                moved = broker.redrive(settings.webhooks_queue)
                print(json.dumps({"redelivered": moved}) if args.json else f"{moved} delivery(ies) queued again")
                return 0
            letters = broker.dead_letters(settings.webhooks_queue)
            for letter in letters:
                event = _event_of(letter.body)
                item = {"event": event, "reason": letter.reason, "dead_lettered_at": letter.dead_lettered_at}
                print(json.dumps(item) if args.json else f"{_describe(event)}: {letter.reason}")
            return 0

        def show(delivery: Delivery) -> Settlement:
            event = json.loads(delivery.body)
            print(json.dumps(event) if args.json else _describe(event), flush=True)
            return settle(broker, delivery, ACKED)

        # Without --follow: until a receive finds nothing.
        events = Consumer(broker, settings.events_queue, show, batch_size=10, idle_by_depth=False, stop=stop)
        events.run(exit_when_idle=not args.follow)
    return 0


def deliver_webhooks(config: Config, stop: threading.Event) -> int:
    from videoconverter.notifications.webhooks import WebhookDeliverer

    if not config.notifications.webhook_urls:
        raise ConfigError("no webhooks are configured: set VIDEOCONVERTER_WEBHOOK_URLS or notifications.webhook_urls")
    broker = open_broker(config)
    try:
        WebhookDeliverer(broker, config.notifications, stop).run()
    finally:
        broker.close()
    return 0


def _event_of(body: str) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(body)
    return message.get("event", message) if isinstance(message.get("event"), dict) else message


def _describe(event: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(event.get("time", 0))))
    what = f"{event.get('type')} {event.get('key')}" + (f" {event['rendition']}" if event.get("rendition") else "")
    detail = event.get("error") or event.get("output") or ""
    return f"{stamp} {what}" + (f"  {detail}" if detail else "")
