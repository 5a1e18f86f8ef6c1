"""The tables bench/peer.py prints, one per mode, from the results it also gives as JSON."""

from __future__ import annotations

from typing import Any

NOTE = "(indicative only on a machine busy with other work)"


def _f(value: float | None, digits: int = 2) -> str:
    return "?" if value is None else f"{value:.{digits}f}"


def print_batch(r: dict[str, Any]) -> None:
    print(
        f"batch: {r['clips']} uploads of a {r['clip_seconds']:g} s 1920x1080 clip -> every rendition, "
        f"{r['pairs']} pair(s) {NOTE}"
    )
    head = ("pair", "system", "drain s", "FFmpeg s", "worker CPU s", "parent CPU s", "waiter, broker server CPU s",
            "all CPU outside FFmpeg s",
            "lifetime CPU s (workers, parent)", "procs", "worker peak RSS MiB",
            "parent RSS MiB", "PSS all MiB", "worker private MiB", "same FFmpeg lines")  # fmt: skip
    print("  " + " | ".join(head))
    for run in r["runs"]:
        row = (
            str(run["pair"]), run["system"], _f(run["drain_seconds"]), _f(run["ffmpeg_seconds"]),
            _f(run["worker_cpu_seconds"]),
            _f(run["parent_cpu_seconds"]),
            f"{_f(run['waiter_cpu_seconds'])}, {_f(run['server_cpu_seconds'])}", _f(run["outside_ffmpeg_cpu_seconds"]),
            f"{_f(run['worker_lifetime_cpu_seconds'])}, {_f(run['parent_lifetime_cpu_seconds'])}",
            str(run["worker_processes"]), _f(run["worker_peak_rss_mib"], 1),
            _f(run["parent_peak_rss_mib"], 1), _f(run["pss_total_mib"], 1), _f(run["worker_private_mib"], 1),
            "yes" if run["same_ffmpeg_lines"] else f"NO ({run['ffmpeg_lines_not_built']} not built)",
        )  # fmt: skip
        print("  " + " | ".join(row))
    for name, figures in r["ratios"].items():
        for figure, ratio in figures.items():
            each = ", ".join(f"{x:.3f}" for x in ratio["each"])
            print(f"  {name}/celery {figure}: median {_f(ratio['median'], 3)} (per pair: {each})")
    print(
        "  FFmpeg: the FFmpeg runs' wall time summed over the jobs (the same lines on both systems); worker CPU: the "
        "worker processes' own user + system time from the first upload to the end of the wait, FFmpeg excluded; "
        "parent: `up` / the Celery master; waiter: `jobs --wait` (Celery's: a thread of this benchmark, not "
        "counted); broker server: RabbitMQ's or Redis's own CPU meanwhile (none for the embedded broker, which runs "
        "in the workers); all: the four added; lifetime: since each started (imports, connecting, the warm-up "
        "upload, the batch); RSS: VmHWM (shared pages in full); PSS: all of the tree's Python processes at the end "
        "(shared pages split); private: the largest worker's pages no other process maps, at the end (what one "
        "more worker costs; a forked child shares its parent's until it writes them)"
    )


def print_recovery(r: dict[str, Any]) -> None:
    print(
        f"recovery: SIGKILL to the worker process {r['kill_after_seconds']:g} s into the {r['rendition']} encode of "
        f"a {r['clip_seconds']:g} s 1920x1080 clip {NOTE}"
    )
    print("  system | runs | kill -> FFmpeg again s (median) | kill -> done s (median) | each kill -> done s")
    for name, median in r["median"].items():
        mine = [run for run in r["runs"] if run["system"] == name]
        each = ", ".join(_f(run["kill_to_done_seconds"]) for run in mine)
        print(
            f"  {name} | {len(mine)} | {_f(median['kill_to_ffmpeg_again_median_seconds'])} | "
            f"{_f(median['kill_to_done_median_seconds'])} | {each}"
        )
    for name, text in r["settings"].items():
        print(f"  {name}: {text}")


def print_single(r: dict[str, Any]) -> None:
    print(f"single: one upload of a {r['clip_seconds']:g} s 1920x1080 clip, upload -> every rendition done {NOTE}")
    print("  system | runs | median s | each s")
    for name, median in r["median_seconds"].items():
        each = [run["upload_to_done_seconds"] for run in r["runs"] if run["system"] == name]
        print(f"  {name} | {len(each)} | {median:.2f} | {', '.join(f'{x:.2f}' for x in each)}")
