"""How much the pipeline adds on top of FFmpeg itself.

1. **Upload to done against the same FFmpeg runs by hand.** One generated 1920x1080 clip is converted into
   every default rendition (720p and 1080p) by the embedded pipeline as `videoconverter up` runs it: one
   `videoconverter worker RENDITION` process per rendition (bench/overhead_fleet.py), timed from just before the
   uploader's ``put_file`` until the last job's ``done`` (its timeline, read from the job records). *By hand*
   runs the exact FFmpeg argument lists the workers ran (recorded once, in an untimed warm-up run, by a stand-in
   FFmpeg that notes its arguments and execs the real one: a VMAF target's sample encodes and scoring
   included), each rendition's in order, all renditions at once, started as the runner starts FFmpeg
   (``transcode.runner.start_ffmpeg``, progress to /dev/null). Pairs alternate which goes first; each pair's
   ratio and the median are printed. Target: median <= 1.05, every pair <= 1.08. Beside it: the median
   timeline per stage, the skew between the renditions' FFmpeg starts, the CPU the worker processes themselves
   used while their FFmpeg ran (sampled from ``/proc``: FFmpeg's own CPU is not in it), and how long after the
   last ``done`` a `videoconverter jobs KEY --wait` started before the upload printed its answer.
2. **Upload -> FFmpeg start latency** over ``--uploads`` tiny sequential uploads, from just before ``put_file``
   to the job's ``ffmpeg_started`` stamp, with the median time of every stage. Target: median <= 50 ms.

Usage: ``.venv/bin/python bench/overhead.py [--seconds 20] [--repeats 3] [--uploads 50] [--fixed-crf] [--json]``
(small: ``--seconds 4 --repeats 3 --uploads 10``). All data lives in temporary directories removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from overhead_fleet import (
    CpuSampler,
    FFmpegRun,
    Fleet,
    JobsWait,
    recorded_runs,
    recording_ffmpeg,
    replayable,
    running,
    write_config,
)
from overhead_report import print_latency, print_ratio
from peer_systems import compile_package
from videoconverter.config import load_config
from videoconverter.jobs.base import JobId, JobRecord, JobState
from videoconverter.jobs.timeline import STAGES
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.transcode.runner import ffmpeg_executable, start_ffmpeg
from videoconverter.transcode.samples import make_clip

RATIO_TARGET, PAIR_TARGET = 1.05, 1.08
LATENCY_TARGET_MS = 50.0
JOB_TIMEOUT_SECONDS = 900.0
RENDITIONS = (("720p", 720), ("1080p", 1080))  # the defaults


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine_cpu_seconds() -> float | None:
    """CPU time every process on this machine has used since boot (Linux), steal time included."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


# --- the pipeline ---------------------------------------------------------------------------------------------


def wait_done(svc: Services, jobs: list[JobId], timeout_seconds: float) -> list[JobRecord]:
    """The jobs' records once every one is done (woken by the job store's doorbell); raises if one failed."""
    deadline = time.monotonic() + timeout_seconds
    svc.jobs.wait_for_change(0.0)
    while True:
        records = [svc.jobs.get(job) for job in jobs]
        if all(r is not None and r.state.terminal for r in records):
            failed = [r for r in records if r is not None and r.state is not JobState.DONE]
            if failed:
                raise RuntimeError(f"job failed: {failed[0].id}: {failed[0].error}\n{failed[0].stderr_tail}")
            return [r for r in records if r is not None]
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not done after {timeout_seconds:.0f} s: {records}")
        svc.jobs.wait_for_change(1.0)


def pipeline_run(clip: Path, work: Path, fixed_crf: bool, ffmpeg: str = "") -> dict[str, Any]:
    """One upload through worker processes (``ffmpeg``: the workers' FFmpeg, for the recording run)."""
    data_dir = Path(tempfile.mkdtemp(prefix="pipeline-", dir=work))
    config_path = write_config(data_dir, RENDITIONS, fixed_crf)
    config = load_config(environ={}, path=config_path)
    names = [r.name for r in config.renditions]
    uploader = open_services(config)
    try:
        provision(uploader)
        with running(Fleet(config_path, names, ffmpeg)) as fleet:
            pids = fleet.pids()
            waiter = JobsWait(config_path, config.data_dir / "jobs.sqlite3", clip.name)
            waiter.wait_until_listening()
            with CpuSampler(fleet.pids()) as sampler:
                machine, own, started = machine_cpu_seconds(), own_cpu_seconds(), time.time()
                info = uploader.store.put_file(config.input_bucket, clip.name, clip)
                records = wait_done(uploader, [JobId(clip.name, info.etag, n) for n in names], JOB_TIMEOUT_SECONDS)
                ended = max(r.timeline.done or 0.0 for r in records)
                waiter.join()
                machine_after, own_after = machine_cpu_seconds(), own_cpu_seconds()
        summary = summarise_run(records, sampler, started, ended, waiter, machine, machine_after, own_after - own)
        return {**summary, "worker_pids": pids}
    finally:
        uploader.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def summarise_run(
    records: list[JobRecord],
    sampler: CpuSampler,
    started: float,
    ended: float,
    waiter: JobsWait,
    machine: float | None,
    machine_after: float | None,
    bench_cpu: float,
) -> dict[str, Any]:
    renditions: dict[str, Any] = {}
    workers_cpu = 0.0
    for r in records:
        t, name = r.timeline, r.id.rendition
        during = sampler.used(name, t.ffmpeg_started, t.ffmpeg_finished)
        job_cpu = sampler.used(name, t.received, t.done)
        workers_cpu += (sampler.used(name, started, ended) or 0.0) + (sampler.used(name, started, ended, True) or 0.0)
        renditions[name] = {
            "timeline_seconds": {stage: at - started for stage, at in t.stamps().items()},
            "ffmpeg_span_seconds": (t.ffmpeg_finished or 0.0) - (t.ffmpeg_started or 0.0),
            "worker_cpu_during_ffmpeg_seconds": during,
            "worker_cpu_job_seconds": job_cpu,
            "ffmpeg_cpu_seconds": sampler.used(name, started, ended + 1.0, children=True),
        }
    last = max(records, key=lambda r: r.timeline.done or 0.0).timeline  # the job that ends the upload-to-done
    added = None
    if last.ffmpeg_started is not None and last.ffmpeg_finished is not None and last.done is not None:
        added = (last.ffmpeg_started - started) + (last.done - last.ffmpeg_finished)
    starts = [r.timeline.ffmpeg_started for r in records if r.timeline.ffmpeg_started is not None]
    others = None if machine is None or machine_after is None else machine_after - machine - workers_cpu - bench_cpu
    return {
        "seconds": ended - started,
        "added_seconds": added,  # outside FFmpeg, on the last job's path: upload -> first FFmpeg, last FFmpeg -> done
        "ffmpeg_start_skew_seconds": max(starts) - min(starts) if len(starts) > 1 else None,
        "jobs_wait_printed_after_done_seconds": waiter.printed_at - ended if waiter.printed_at else None,
        "jobs_wait_exited_after_done_seconds": waiter.exited_at - ended if waiter.exited_at else None,
        "cpu_seconds": workers_cpu,
        "other_processes_cpu_seconds": others,
        "renditions": renditions,
    }


def record_runs(clip: Path, work: Path, fixed_crf: bool) -> dict[str, list[FFmpegRun]]:
    """The FFmpeg runs of one (untimed) pipeline run, per rendition, in the order each worker ran them."""
    folder = work / "recorded"
    stand_in = recording_ffmpeg(folder, ffmpeg_executable())
    result = pipeline_run(clip, work, fixed_crf, ffmpeg=str(stand_in))
    rendition_of = {pid: name for name, pid in result["worker_pids"].items()}
    runs: dict[str, list[FFmpegRun]] = {name: [] for name in result["worker_pids"]}
    for run in recorded_runs(folder):
        runs[rendition_of[run.worker_pid]].append(run)
    shutil.rmtree(folder, ignore_errors=True)
    return runs


# --- by hand --------------------------------------------------------------------------------------------------


def by_hand_run(clip: Path, runs: dict[str, list[FFmpegRun]], work: Path) -> dict[str, Any]:
    """Every rendition's recorded runs, in order, renditions side by side; each in a directory of its own that
    holds the source as the job's did."""
    ffmpeg = ffmpeg_executable()
    folders = {}
    for name in runs:
        folders[name] = work / f"by-hand-{name}"
        folders[name].mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, folders[name] / "source")  # what the worker downloads: not FFmpeg's work
    commands = {name: [replayable(run, ffmpeg, folders[name]) for run in runs[name]] for name in runs}

    def one(name: str) -> tuple[str, float]:
        begun = time.time()
        for args in commands[name]:
            process = start_ffmpeg(args, folders[name], stdout=subprocess.DEVNULL)
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"{name}: FFmpeg failed ({process.returncode}): {stderr.decode()[-2000:]}")
        return name, time.time() - begun

    machine, own, started = machine_cpu_seconds(), own_cpu_seconds(), time.time()
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        seconds = dict(pool.map(one, runs))
    total = time.time() - started
    machine_after, cpu = machine_cpu_seconds(), own_cpu_seconds() - own
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    others = None if machine is None or machine_after is None else machine_after - machine - cpu
    return {"seconds": total, "rendition_seconds": seconds, "cpu_seconds": cpu, "other_processes_cpu_seconds": others}


# --- 1. the ratio -----------------------------------------------------------------------------------------------


def measure_ratio(seconds: float, repeats: int, work: Path, fixed_crf: bool) -> dict[str, Any]:
    clip = work / "ratio-clip.mp4"
    say(f"[ratio] generating a 1920x1080 clip of {seconds:g} s ...")
    make_clip(clip, width=1920, height=1080, seconds=seconds)
    say(f"[ratio] recording the FFmpeg runs of one pipeline run (untimed warm-up; {os.cpu_count()} CPUs) ...")
    runs = record_runs(clip, work, fixed_crf)
    say("[ratio] " + "; ".join(f"{name}: {len(r)} FFmpeg run(s)" for name, r in runs.items()))
    pairs: list[dict[str, Any]] = []
    for i in range(repeats):
        pair: dict[str, Any] = {}
        for which in ("by_hand", "pipeline") if i % 2 == 0 else ("pipeline", "by_hand"):
            pair[which] = by_hand_run(clip, runs, work) if which == "by_hand" else pipeline_run(clip, work, fixed_crf)
            say(f"[ratio] pair {i + 1}: {which:8} {describe_run(pair[which])}")
        pair["ratio"] = pair["pipeline"]["seconds"] / pair["by_hand"]["seconds"]
        pairs.append(pair)
    return summarise_ratio(seconds, clip, runs, pairs)


def describe_run(run: dict[str, Any]) -> str:
    others = run["other_processes_cpu_seconds"]
    text = f"{run['seconds']:7.2f} s, CPU {run['cpu_seconds']:6.1f} s"
    if "renditions" in run:
        text += "; " + ", ".join(
            f"{n}: FFmpeg {d['ffmpeg_span_seconds']:.2f} s, done +{d['timeline_seconds'].get('done', 0):.2f} s"
            for n, d in run["renditions"].items()
        )
    else:
        text += "; " + ", ".join(f"{n}: {s:.2f} s" for n, s in run["rendition_seconds"].items())
    return text + ("" if others is None else f"; other processes {others:.1f} CPU-s")


def summarise_ratio(
    seconds: float, clip: Path, runs: dict[str, list[FFmpegRun]], pairs: list[dict[str, Any]]
) -> dict[str, Any]:
    pipelines = [p["pipeline"] for p in pairs]
    names = list(runs)
    timeline = {
        name: {
            stage: median_or_none([r["renditions"][name]["timeline_seconds"].get(stage) for r in pipelines])
            for stage in STAGES
        }
        for name in names
    }

    def median_of(name: str, field: str) -> float | None:
        return median_or_none([r["renditions"][name][field] for r in pipelines])

    ratios = [p["ratio"] for p in pairs]
    by_hand = statistics.median(p["by_hand"]["seconds"] for p in pairs)
    added = median_or_none([r["added_seconds"] for r in pipelines])
    cpu = [sum(d["worker_cpu_during_ffmpeg_seconds"] or 0.0 for d in r["renditions"].values()) for r in pipelines]
    return {
        "clip_seconds": seconds,
        "clip_bytes": clip.stat().st_size,
        "ffmpeg_runs": {name: len(r) for name, r in runs.items()},
        "ratios": ratios,
        "ratio": statistics.median(ratios),
        "pipeline_seconds": statistics.median(r["seconds"] for r in pipelines),
        "by_hand_seconds": by_hand,
        "added_seconds": added,
        "worker_cpu_during_ffmpeg_total_seconds": statistics.median(cpu),
        # What the pipeline itself spends, free of FFmpeg's run-to-run noise: the seconds outside FFmpeg on the
        # last job's path, plus every CPU-second the workers used while FFmpeg ran counted as taken from it.
        "structural_ratio": 1 + ((added or 0.0) + statistics.median(cpu)) / by_hand,
        "by_hand_rendition_seconds": {
            name: statistics.median(p["by_hand"]["rendition_seconds"][name] for p in pairs) for name in names
        },
        "timeline_seconds": timeline,  # median seconds after the put_file call, per rendition and stage
        **{
            field: {name: median_of(name, field) for name in names}
            for field in ("ffmpeg_span_seconds", "worker_cpu_during_ffmpeg_seconds", "worker_cpu_job_seconds")
        },
        "ffmpeg_start_skew_seconds": [r["ffmpeg_start_skew_seconds"] for r in pipelines],
        "jobs_wait_printed_after_done_seconds": [r["jobs_wait_printed_after_done_seconds"] for r in pipelines],
        "jobs_wait_exited_after_done_seconds": [r["jobs_wait_exited_after_done_seconds"] for r in pipelines],
        "target": RATIO_TARGET,
        "pair_target": PAIR_TARGET,
        "pairs": pairs,
    }


# --- 2. upload -> FFmpeg start latency ------------------------------------------------------------------------


def measure_latency(uploads: int, warmup: int, work: Path, renditions: int, fixed_crf: bool) -> dict[str, Any]:
    clip = work / "tiny.mp4"
    make_clip(clip, width=160, height=90, seconds=0.2)
    data_dir = Path(tempfile.mkdtemp(prefix="latency-", dir=work))
    config_path = write_config(data_dir, RENDITIONS[:renditions], fixed_crf)
    config = load_config(environ={}, path=config_path)
    names = [r.name for r in config.renditions]
    say(
        f"[latency] {warmup} warm-up + {uploads} sequential uploads of a 160x90 0.2 s clip "
        f"({clip.stat().st_size} bytes), one worker process for each of {', '.join(names)} ..."
    )
    latencies: list[float] = []  # one per upload and rendition
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}  # seconds after the put_file call
    skews: list[float] = []
    uploader = open_services(config)
    try:
        provision(uploader)
        with running(Fleet(config_path, names)):
            for i in range(warmup + uploads):
                key = f"latency/{i:04d}.mp4"
                started = time.time()
                info = uploader.store.put_file(config.input_bucket, key, clip)
                records = wait_done(uploader, [JobId(key, info.etag, n) for n in names], 60)
                wait_settled(uploader, names)  # acknowledged: the next upload finds idle workers
                if i < warmup:
                    continue
                starts = [r.timeline.ffmpeg_started for r in records if r.timeline.ffmpeg_started is not None]
                latencies += [at - started for at in starts]
                skews += [max(starts) - min(starts)] if len(starts) > 1 else []
                for r in records:
                    for stage, at in r.timeline.stamps().items():
                        stages[stage].append(at - started)
    finally:
        uploader.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "n": len(ms),
        "warmup": warmup,
        "renditions": names,
        "median_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "ffmpeg_start_skew_median_ms": statistics.median(skews) * 1000 if skews else None,
        "stages_median_ms": {stage: statistics.median(v) * 1000 for stage, v in stages.items() if v},
        "target_median_ms": LATENCY_TARGET_MS,
    }


def wait_settled(svc: Services, names: list[str], timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    queues = [svc.config.rendition(name).queue for name in names]
    while any(svc.broker.depth(q).total for q in queues) and time.monotonic() < deadline:
        time.sleep(0.002)


# --- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 1080p clip (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="pipeline/by-hand pairs, alternating (default 3)")
    parser.add_argument("--uploads", type=int, default=50, help="tiny uploads for the latency (default 50)")
    parser.add_argument("--warmup", type=int, default=2, help="latency uploads not counted (default 2)")
    parser.add_argument("--latency-renditions", type=int, default=1, choices=(1, 2), help="workers (default 1)")
    parser.add_argument("--fixed-crf", action="store_true", help="renditions without a VMAF target (one encode)")
    parser.add_argument("--skip-ratio", action="store_true", help="skip the upload-to-done ratio")
    parser.add_argument("--skip-latency", action="store_true", help="skip the upload->FFmpeg latency")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    if min(args.repeats, args.uploads) < 1 or args.warmup < 0 or args.seconds <= 0:
        parser.error("--repeats and --uploads must be >= 1, --warmup >= 0, --seconds > 0")
    compile_package()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "ffmpeg": ffmpeg_executable(), "load_avg": os.getloadavg()}
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        say(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall times will be noisy")
    with tempfile.TemporaryDirectory(prefix="vc-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_ratio:
            results["ratio"] = measure_ratio(args.seconds, args.repeats, work, args.fixed_crf)
        if not args.skip_latency:
            results["latency"] = measure_latency(
                args.uploads, args.warmup, work, args.latency_renditions, args.fixed_crf
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print()
    if "ratio" in results:
        print_ratio(results["ratio"])
    if "latency" in results:
        print_latency(results["latency"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
