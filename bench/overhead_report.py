"""What bench/overhead.py prints: its figures in words, with the targets."""

from __future__ import annotations

import statistics
from typing import Any

from videoconverter.jobs.timeline import STAGES


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value * 1000:.0f} ms"


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def print_ratio(r: dict[str, Any]) -> None:
    pairs = ", ".join(f"{x:.3f}" for x in r["ratios"])
    worst = max(r["ratios"])
    verdict = "ok" if r["ratio"] <= r["target"] and worst <= r["pair_target"] else "ABOVE target"
    print(
        f"ratio pipeline/by hand: median {r['ratio']:.3f} (pairs: {pairs}; targets: median <= {r['target']}, every "
        f"pair <= {r['pair_target']}) [{verdict}]"
    )
    runs = ", ".join(f"{name} {n}" for name, n in r["ffmpeg_runs"].items())
    print(
        f"  pipeline {r['pipeline_seconds']:.2f} s upload to done, by hand {r['by_hand_seconds']:.2f} s (medians; "
        f"{r['clip_seconds']:g} s 1920x1080 clip; FFmpeg runs per rendition: {runs})"
    )
    print(
        f"  the pipeline's own: {r['added_seconds']:.2f} s outside FFmpeg on the last job's path (upload -> its first "
        f"FFmpeg, its last FFmpeg -> done) and {r['worker_cpu_during_ffmpeg_total_seconds']:.2f} CPU-s of the workers "
        f"while FFmpeg ran: at most {r['structural_ratio']:.3f} x by hand"
    )
    names = list(r["timeline_seconds"])
    print("  timeline, median seconds after the upload call:  " + "".join(f"{n:>10}" for n in names))
    for stage in STAGES:
        cells = [r["timeline_seconds"][n][stage] for n in names]
        print(f"    {stage:46}" + "".join(f"{'-' if c is None else f'{c:.3f}':>10}" for c in cells))
    for name in names:
        span, by_hand = r["ffmpeg_span_seconds"][name], r["by_hand_rendition_seconds"][name]
        cpu = r["worker_cpu_during_ffmpeg_seconds"][name]
        job_cpu = r["worker_cpu_job_seconds"][name]
        share = f" ({100 * cpu / span:.1f} % of a core)" if cpu is not None and span else ""
        print(
            f"  {name}: FFmpeg first start to last end {span:.2f} s (the same runs by hand {by_hand:.2f} s); the "
            f"worker process itself used {'?' if cpu is None else f'{cpu:.2f}'} CPU-s meanwhile{share}, "
            f"{'?' if job_cpu is None else f'{job_cpu:.2f}'} CPU-s from received to done"
        )
    skews = r["ffmpeg_start_skew_seconds"]
    print(f"  FFmpeg start skew between the renditions: median {_ms(_median(skews))} ({', '.join(map(_ms, skews))})")
    printed, exited = r["jobs_wait_printed_after_done_seconds"], r["jobs_wait_exited_after_done_seconds"]
    print(
        f"  `jobs KEY --wait` printed {_ms(_median(printed))} after the last job was done (median; "
        f"{', '.join(map(_ms, printed))}), and exited {_ms(_median(exited))} after"
    )


def print_latency(lat: dict[str, Any]) -> None:
    verdict = "ok" if lat["median_ms"] <= lat["target_median_ms"] else f"ABOVE target {lat['target_median_ms']:g} ms"
    print(
        f"upload -> FFmpeg start latency: median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
        f"(n={lat['n']}, min {lat['min_ms']:.1f}, max {lat['max_ms']:.1f}; {', '.join(lat['renditions'])}) [{verdict}]"
    )
    if lat["ffmpeg_start_skew_median_ms"] is not None:
        print(f"  FFmpeg start skew between the renditions: median {lat['ffmpeg_start_skew_median_ms']:.1f} ms")
    print(
        "  median ms after the put_file call, per stage: "
        + ", ".join(f"{stage} {ms:.1f}" for stage, ms in lat["stages_median_ms"].items())
    )
