"""`videoconverter jobs`: the newest jobs a page at a time, one key's jobs, or a wait until none is pending.

Exit status (beside the CLI's own): 3 some jobs it waited on failed, 4 ``--wait`` timed out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

from videoconverter.config import Config
from videoconverter.errors import ConfigError
from videoconverter.jobs.base import ALL_JOBS, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, JobFilter, JobId, JobRecord, JobState
from videoconverter.jobs.paging import check_limit
from videoconverter.logs import redact
from videoconverter.pipeline import Services, services, settled
from videoconverter.progress import ProgressBar
from videoconverter.validation import Real

EXIT_JOBS_FAILED, EXIT_TIMEOUT = 3, 4
#: ``--wait`` looks again when the job store says a job changed; at the latest after this (progress, and stores
#: that cannot tell, which return from the wait sooner) ...
CHANGE_POLL_SECONDS = 1.0
#: ... or, while only queues hold something, this at first, doubling up to the above.
QUEUE_POLL_SECONDS = 0.02
WAIT_SECONDS = Real(0, 366 * 24 * 3600.0)  # `jobs --wait nan` would wait for ever
Command = Callable[[str, Any, str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    p = command("jobs", cmd_jobs, "show jobs, newest first: state, attempts, progress, output, error")
    p.add_argument("key", nargs="?", help="every job of this uploaded key")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="block until no job is queued or running")
    _listing_arguments(p)
    p.add_argument("--json", action="store_true")


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
    """Look again whenever a job changes (the job store wakes this process; a store that cannot polls) until
    nothing is pending (or the timeout): the records shown, whether all finished, and the jobs waited on (a key's
    jobs; without a key, those pending at some look, as they ended)."""
    deadline = time.monotonic() + timeout_seconds
    bar = ProgressBar("jobs")
    tracked: dict[JobId, JobRecord] = {}
    svc.jobs.wait_for_change(0.0)  # listen from now on: a change after the first look wakes the first wait
    quiet_looks = 0  # looks in a row that found no job pending
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
            remaining = deadline - time.monotonic()
            if done_all or remaining <= 0:
                return records, done_all, records
            # Every job finished but a message is still leased or queued (acknowledged just after its job was
            # recorded done, or delivered before its job's record exists): no job store hears of queues, so look
            # again soon, then less and less often.
            quiet_looks = 0 if pending_now else quiet_looks + 1
            between = (
                min(QUEUE_POLL_SECONDS * 2 ** (quiet_looks - 1), CHANGE_POLL_SECONDS)
                if quiet_looks
                else CHANGE_POLL_SECONDS
            )
            svc.jobs.wait_for_change(min(remaining, between))
    finally:
        bar.close()


def _print_jobs(records: list[JobRecord]) -> None:
    if not records:
        print("no jobs")
        return
    print(f"{'KEY':30} {'RENDITION':9} {'STATE':8} {'TRIES':>5} {'PROGRESS':>8} {'PIECES':>7}  OUTPUT / ERROR")
    for r in records:
        detail = r.output_url or r.error or ""
        if r.note:
            detail = f"{detail} ({r.note})" if detail else r.note
        pieces = f"{r.pieces_done}/{r.pieces_planned}" if r.pieces_planned else "-"  # done of planned; -: whole
        print(
            f"{r.id.key:30} {r.id.rendition:9} {r.state.value:8} {r.attempts:>5} "
            f"{r.progress_percent:>7.0f}% {pieces:>7}  {redact(detail)}"
        )
