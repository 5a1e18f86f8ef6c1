"""How much the pipeline adds on top of FFmpeg itself.

Two figures:

1. **Wall-time ratio** pipeline/bare for one generated 1920x1080 clip converted into every configured
   rendition (720p and 1080p). *Bare* runs the very argument lists a worker would build (``probe``,
   ``output_size``, ``build_command``, same Config, renditions and thread count) as concurrent subprocesses, one
   per rendition, as the pipeline's workers do. *Pipeline* is a fresh embedded data dir with one
   :class:`~videoconverter.worker.Worker` thread per rendition, timed from just before ``store.put_file`` until
   every job record is done. The pair runs ``--repeats`` times in alternating order; medians are reported, with
   the CPU time used and how much CPU other processes took meanwhile (a busy machine makes wall times noisy).
   Target: ratio <= 1.05.
2. **Upload -> FFmpeg start latency** over ``--uploads`` tiny sequential uploads to a single worker of a single
   rendition: from just before ``store.put_file`` to the moment the worker's ``subprocess.Popen`` of FFmpeg
   returns (the process exists and has exec'd). It is observed by swapping the ``subprocess`` module seen by
   :mod:`videoconverter.transcode.runner` for a proxy whose ``Popen`` records timestamps, and by shadowing a
   few methods on the opened backends (publish, receive, jobs.start, get_file) and ``probe`` in the worker
   module, to show where the time goes; nothing in the package is modified. Target: median <= 50 ms.

Each worker thread opens its own Services (SQLite connections, broker wake-up socket), as a ``videoconverter
worker`` process under ``videoconverter up`` has; ``--shared-services`` makes them share the uploader's, as
``videoconverter demo`` does. ``--latency-renditions 2`` times both workers' FFmpeg starts per upload.

Usage: ``.venv/bin/python bench/overhead.py [--seconds 20] [--repeats 2] [--uploads 50] [--json]``. All data
(clips, data dirs, outputs) lives in temporary directories that are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ffmpeg_lines import normalised, rendition_lines
from videoconverter import worker as worker_module
from videoconverter.config import Config, load_config
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.transcode import runner
from videoconverter.transcode.runner import ffmpeg_executable
from videoconverter.transcode.samples import make_clip
from videoconverter.worker import Worker

RATIO_TARGET = 1.05
LATENCY_TARGET_MS = 50.0
JOB_TIMEOUT_SECONDS = 900.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cpu_seconds(children: bool = True) -> float:
    """CPU time of this process (all threads) plus, by default, its reaped children (FFmpeg), user + system."""
    t = os.times()
    return t.user + t.system + (t.children_user + t.children_system if children else 0.0)


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(CPU time all processes have used, CPU time the hypervisor stole from this VM) since boot, on Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


class CpuMeter:
    """CPU seconds used over a span by this process and its FFmpeg children, by everything else, and stolen."""

    def __init__(self) -> None:
        self._ours, self._all, self._python = cpu_seconds(), machine_cpu_seconds(), cpu_seconds(children=False)

    def read(self) -> tuple[float, float | None]:
        """(ours, others'): what this process and its children used, and what other processes used."""
        ours = cpu_seconds() - self._ours
        now = machine_cpu_seconds()
        others = None if now is None or self._all is None else max(0.0, now[0] - self._all[0] - ours)
        return ours, others

    def stolen(self) -> float | None:
        """CPU seconds the hypervisor ran something else on this VM's CPUs (steal time)."""
        now = machine_cpu_seconds()
        return None if now is None or self._all is None else now[1] - self._all[1]

    def python(self) -> float:
        """CPU seconds of this process alone (the pipeline's Python: copies, hashes, probes, SQLite)."""
        return cpu_seconds(children=False) - self._python


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- observing the worker without changing it ---------------------------------------------------------------


class Timeline:
    """Named perf_counter() marks of the current measurement, written from any thread."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.args: dict[str, list[str]] = {}  # FFmpeg's argument list, per thread name
        self.spawned = threading.Event()
        self._lock = threading.Lock()

    def mark(self, name: str, at: float | None = None) -> None:
        """Keep the first ``name`` and the first ``name:<thread name>`` (e.g. ``probe-start:worker-720p``)."""
        at = time.perf_counter() if at is None else at
        with self._lock:
            self.marks.setdefault(name, at)
            self.marks.setdefault(f"{name}:{threading.current_thread().name}", at)

    def reset(self) -> None:
        with self._lock:
            self.marks = {}
            self.args = {}
            self.spawned = threading.Event()


TIMELINE = Timeline()


class TimedPopen(subprocess.Popen):  # type: ignore[type-arg]
    """subprocess.Popen that marks when it was called, when the child exists, and when it was reaped."""

    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        TIMELINE.mark("popen-call")
        TIMELINE.args.setdefault(threading.current_thread().name, [str(a) for a in args])
        super().__init__(args, *rest, **kwargs)
        TIMELINE.mark("spawned")
        TIMELINE.spawned.set()

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        TIMELINE.mark("exited")
        return code


class _SubprocessProxy:
    """Stands in for the ``subprocess`` module inside videoconverter.transcode.runner only."""

    Popen = TimedPopen

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


def _wrap(obj: Any, name: str, before: str | None, after: str | None) -> None:
    """Shadow a bound method on one instance with one that marks the timeline around the call (the mark after
    only when the call returned something truthy: a receive that got a message, a download, a publish)."""
    original = getattr(obj, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            TIMELINE.mark(before)
        result = original(*args, **kwargs)
        if after and result:
            TIMELINE.mark(after)
        return result

    setattr(obj, name, wrapped)


_WRAPPED = (
    ("broker", "publish", "publish-start", "publish-end"),
    ("broker", "receive", None, "received"),  # marked only when it returned a message
    ("jobs", "start", "job-start", None),
    ("store", "get_file", "download-start", "download-end"),
)


@contextlib.contextmanager
def observed(services: Sequence[Services] = ()) -> Iterator[None]:
    """Install the Popen proxy (and, on the given services, stage marks); undo everything on exit."""
    real_subprocess = runner.subprocess
    real_probe = worker_module.probe

    def timed_probe(*args: Any, **kwargs: Any) -> Any:
        TIMELINE.mark("probe-start")
        try:
            return real_probe(*args, **kwargs)
        finally:
            TIMELINE.mark("probe-end")

    runner.subprocess = _SubprocessProxy()  # type: ignore[assignment]
    worker_module.probe = timed_probe  # type: ignore[assignment]
    for svc in services:
        for part, name, before, after in _WRAPPED:
            _wrap(getattr(svc, part), name, before, after)
    try:
        yield
    finally:
        runner.subprocess = real_subprocess
        worker_module.probe = real_probe
        for svc in services:
            for part, name, _before, _after in _WRAPPED:
                vars(getattr(svc, part)).pop(name, None)


# --- the embedded pipeline ------------------------------------------------------------------------------------


def bench_config(data_dir: Path, renditions: int | None = None) -> Config:
    """Defaults (no ./videoconverter.toml leaks in: an empty config file is named) in a fresh data dir."""
    empty = data_dir / "bench-empty.toml"
    data_dir.mkdir(parents=True, exist_ok=True)
    empty.write_text("", encoding="utf-8")
    config = load_config(environ={"VIDEOCONVERTER_DATA_DIR": str(data_dir), "VIDEOCONVERTER_CONFIG": str(empty)})
    if renditions is not None:
        config = dataclasses.replace(config, renditions=config.renditions[:renditions])
    return config


@dataclasses.dataclass
class Pipeline:
    uploader: Services  # what the uploading side uses (its store's notifications publish the events)
    services: list[Services]  # every opened Services, the uploader's first


@contextlib.contextmanager
def running_pipeline(config: Config, shared: bool = False) -> Iterator[Pipeline]:
    """Provisioned services with one Worker thread per rendition, listening; stopped and closed on exit.

    By default every worker opens its own Services (its own SQLite connections and broker wake-up socket), as a
    ``videoconverter worker`` process does under ``videoconverter up``. ``shared`` makes the workers share the
    uploader's Services, as ``videoconverter demo`` does.
    """
    uploader = open_services(config)
    opened = [uploader]
    stop = threading.Event()
    threads: list[threading.Thread] = []
    doorbell_folder = getattr(getattr(uploader.broker, "_doorbell", None), "_folder", None)
    try:
        provision(uploader)
        for rendition in config.renditions:
            svc = uploader if shared else open_services(config)
            if svc is not uploader:
                opened.append(svc)
            thread = threading.Thread(
                target=Worker(svc, rendition, stop).run, name=f"worker-{rendition.name}", daemon=True
            )
            thread.start()
            threads.append(thread)
        time.sleep(0.5)  # let every worker reach its long-poll receive
        yield Pipeline(uploader, opened)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for svc in opened:
            svc.close()
        if isinstance(doorbell_folder, Path):  # the broker's wake-up folder in /tmp: ours, and empty by now
            with contextlib.suppress(OSError):
                doorbell_folder.rmdir()


def wait_for_jobs(svc: Services, jobs: list[JobId], timeout: float, poll: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        records = [svc.jobs.get(job) for job in jobs]
        if all(r is not None and r.state.terminal for r in records):
            failed = [r for r in records if r is not None and r.state is not JobState.DONE]
            if failed:
                raise RuntimeError(f"job failed: {failed[0].id}: {failed[0].error}\n{failed[0].stderr_tail}")
            return records
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not done after {timeout:.0f} s: {records}")
        time.sleep(poll)


# --- 1. wall-time ratio ---------------------------------------------------------------------------------------


def bare_run(clip: Path, config: Config, work: Path) -> dict[str, Any]:
    """FFmpeg alone: the worker's argument lists, one process per rendition, all at once."""
    workdirs = {r.name: work / f"bare-{r.name}" for r in config.renditions}
    lines = rendition_lines(ffmpeg_executable(), clip, config, lambda name: workdirs[name] / "output.mp4")
    commands = {}
    for name, args in lines.items():
        workdirs[name].mkdir(parents=True, exist_ok=True)
        commands[name] = (args, workdirs[name])

    def one(name: str) -> tuple[str, float, float]:
        args, workdir = commands[name]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LC_ALL": "C"}  # as runner
        begun = time.perf_counter()
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,
            check=False,
        )
        ended = time.perf_counter()
        if done.returncode != 0:
            raise RuntimeError(f"bare FFmpeg for {name} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        return name, begun, ended

    meter, started = CpuMeter(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(one, commands))
    total = max(end for _, _, end in results) - started
    cpu, others = meter.read()
    stolen = meter.stolen()
    for _args, workdir in commands.values():
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "seconds": total,
        "cpu_seconds": cpu,
        "other_processes_cpu_seconds": others,
        "stolen_cpu_seconds": stolen,
        "ffmpeg_seconds": {name: end - begun for name, begun, end in results},
        "args": {name: normalised(args) for name, (args, _) in commands.items()},
    }


def pipeline_run(clip: Path, work: Path, shared: bool) -> dict[str, Any]:
    """The embedded pipeline, from just before the upload until every job record is done."""
    data_dir = Path(tempfile.mkdtemp(prefix="pipeline-", dir=work))
    config = bench_config(data_dir)
    key = "bench-clip.mp4"
    try:
        with running_pipeline(config, shared) as pipeline, observed(pipeline.services):
            svc = pipeline.uploader
            TIMELINE.reset()
            meter, started_wall, started = CpuMeter(), time.time(), time.perf_counter()
            info = svc.store.put_file(config.input_bucket, key, clip)
            uploaded = time.perf_counter()
            jobs = [JobId(key, info.etag, r.name) for r in config.renditions]
            records = wait_for_jobs(svc, jobs, JOB_TIMEOUT_SECONDS, poll=0.1)
            cpu, others = meter.read()
            python_cpu, stolen = meter.python(), meter.stolen()
            marks, worker_args = dict(TIMELINE.marks), dict(TIMELINE.args)
        # finished_at is the worker's time.time() at jobs.finish: exact, whatever the polling interval.
        finished = {r.id.rendition: r.finished_at - started_wall for r in records}
        per_rendition = {}
        for r in config.renditions:
            tag = f"worker-{r.name}"
            spawned, exited = marks.get(f"spawned:{tag}"), marks.get(f"exited:{tag}")

            def span(first: str, last: str, tag: str = tag) -> float | None:
                a, b = marks.get(f"{first}:{tag}"), marks.get(f"{last}:{tag}")
                return b - a if a is not None and b is not None else None

            per_rendition[r.name] = {
                "upload_to_spawn": spawned - started if spawned else None,
                "download": span("download-start", "download-end"),
                "probe": span("probe-start", "probe-end"),
                "ffmpeg": exited - spawned if spawned and exited else None,
                "exit_to_done": finished[r.name] - (exited - started) if exited else None,
                "done": finished[r.name],
            }
        last = max(per_rendition.values(), key=lambda d: d["done"])
        return {
            "seconds": max(finished.values()),
            # the wall time around the last FFmpeg to finish: upload -> its spawn, plus its exit -> job done
            "added_seconds": last["done"] - last["ffmpeg"] if last["ffmpeg"] is not None else None,
            "cpu_seconds": cpu,
            "other_processes_cpu_seconds": others,
            "python_cpu_seconds": python_cpu,
            "stolen_cpu_seconds": stolen,
            "upload_seconds": uploaded - started,
            "renditions": per_rendition,
            "args": {r.name: normalised(worker_args.get(f"worker-{r.name}", [])) for r in config.renditions},
        }
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def measure_ratio(seconds: float, repeats: int, work: Path, shared: bool) -> dict[str, Any]:
    clip = work / "ratio-clip.mp4"
    say(f"[ratio] generating a 1920x1080 clip of {seconds:g} s ...")
    make_clip(clip, width=1920, height=1080, seconds=seconds)
    config = bench_config(work / "bare-config")  # only for Config/renditions/limits/threads: nothing is stored
    say(
        f"[ratio] clip {clip.stat().st_size / 1e6:.1f} MB; renditions "
        f"{', '.join(r.name for r in config.renditions)}; ffmpeg threads {config.ffmpeg_threads or 'auto'}; "
        f"{os.cpu_count()} CPUs"
    )
    bare_times: list[float] = []
    pipe_times: list[float] = []
    bare_cpu: list[float] = []
    pipe_cpu: list[float] = []
    runs: list[dict[str, Any]] = []
    argument_lists: dict[str, dict[str, list[str]]] = {}
    for i in range(repeats):
        order = ("bare", "pipeline") if i % 2 == 0 else ("pipeline", "bare")
        for which in order:
            if which == "bare":
                result = bare_run(clip, config, work)
                bare_times.append(result["seconds"])
                bare_cpu.append(result["cpu_seconds"])
                ff = ", ".join(f"{n} {s:.2f} s" for n, s in result["ffmpeg_seconds"].items())
                say(
                    f"[ratio] run {i + 1}: bare     {result['seconds']:7.2f} s, CPU {result['cpu_seconds']:6.1f} s  "
                    f"(ffmpeg: {ff}; {_others(result)})"
                )
            else:
                result = pipeline_run(clip, work, shared)
                pipe_times.append(result["seconds"])
                pipe_cpu.append(result["cpu_seconds"])
                detail = "; ".join(
                    f"{n}: spawn +{_ms(d['upload_to_spawn'])} (download {_ms(d['download'])}, probe "
                    f"{_ms(d['probe'])}), ffmpeg {_s(d['ffmpeg'])}, "
                    f"exit->done {_ms(d['exit_to_done'])}"
                    for n, d in result["renditions"].items()
                )
                say(
                    f"[ratio] run {i + 1}: pipeline {result['seconds']:7.2f} s, CPU {result['cpu_seconds']:6.1f} s  "
                    f"(its Python {result['python_cpu_seconds']:.2f} CPU-s; put_file "
                    f"{result['upload_seconds'] * 1000:.0f} ms; {detail}; {_others(result)})"
                )
            argument_lists[which] = result.pop("args")
            runs.append({"run": i + 1, "kind": which, **result})
    same_args = argument_lists["bare"] == argument_lists["pipeline"]
    if not same_args:
        say(f"[ratio] WARNING: the bare argument lists differ from the worker's: {argument_lists}")
    bare, pipe = statistics.median(bare_times), statistics.median(pipe_times)
    pipeline_runs = [r for r in runs if r["kind"] == "pipeline"]
    added = [r["added_seconds"] for r in pipeline_runs if r["added_seconds"] is not None]
    python_cpu = statistics.median(r["python_cpu_seconds"] for r in pipeline_runs)
    others = [
        r["other_processes_cpu_seconds"] + r["stolen_cpu_seconds"]
        for r in runs
        if r["other_processes_cpu_seconds"] is not None and r["stolen_cpu_seconds"] is not None
    ]
    if others and max(others) > 0.05 * min(bare_times):
        say(
            f"[ratio] note: other processes or the hypervisor took up to {max(others):.1f} CPU-s during a run: "
            "wall times are disturbed; rerun on a quiet machine or with more --repeats"
        )
    return {
        "clip_seconds": seconds,
        "clip_bytes": clip.stat().st_size,
        "repeats": repeats,
        "bare_seconds": bare,
        "pipeline_seconds": pipe,
        "ratio": pipe / bare,
        "per_run_ratios": [p / b for p, b in zip(pipe_times, bare_times, strict=True)],
        "bare_cpu_seconds": statistics.median(bare_cpu),
        "pipeline_cpu_seconds": statistics.median(pipe_cpu),
        "cpu_ratio": statistics.median(pipe_cpu) / statistics.median(bare_cpu),
        "added_seconds": statistics.median(added) if added else None,
        "python_cpu_seconds": python_cpu,
        # Upper bound from what the pipeline does around and beside FFmpeg, free of the run-to-run noise of
        # FFmpeg itself: every second of Python CPU counted as a second taken from FFmpeg.
        "structural_ratio": 1 + ((statistics.median(added) if added else 0.0) + python_cpu) / bare,
        "bare_spread": (max(bare_times) - min(bare_times)) / min(bare_times),
        "same_ffmpeg_arguments": same_args,
        "max_other_and_stolen_cpu_seconds": max(others) if others else None,
        "ffmpeg_arguments": argument_lists["bare"],
        "target": RATIO_TARGET,
        "runs": runs,
    }


def _others(result: dict[str, Any]) -> str:
    others, stolen = result["other_processes_cpu_seconds"], result["stolen_cpu_seconds"]
    if others is None or stolen is None:
        return "other processes: ?"
    return f"meanwhile other processes used {others:.1f} CPU-s, the hypervisor stole {stolen:.1f} CPU-s"


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value * 1000:.0f} ms"


def _s(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} s"


# --- 2. upload -> FFmpeg start latency ------------------------------------------------------------------------

STAGES = (
    # (mark, what happened by then)
    ("publish-start", "object written (temp file, fsync, sidecar, rename)"),
    ("publish-end", "event published to the topic (broker transaction)"),
    ("received", "worker's receive returned the message"),
    ("job-start", "worker begins the job (jobs.start)"),
    ("download-start", "download starts (after job record, log line, 2 heads)"),
    ("download-end", "download done (copy + MD5)"),
    ("probe-start", "probe starts"),
    ("probe-end", "probe done (PyAV open + first frame)"),
    ("popen-call", "Popen called (after log line, build_command, heartbeat thread)"),
    ("spawned", "Popen returned: FFmpeg exists"),
    ("put_file-return", "uploader's put_file returned (ingest: enqueue + job log line)"),
)


def measure_latency(uploads: int, warmup: int, work: Path, shared: bool, renditions: int) -> dict[str, Any]:
    clip = work / "tiny.mp4"
    make_clip(clip, width=160, height=90, seconds=0.2)
    data_dir = Path(tempfile.mkdtemp(prefix="latency-", dir=work))
    config = bench_config(data_dir, renditions=renditions)
    names = [r.name for r in config.renditions]
    say(
        f"[latency] {warmup} warm-up + {uploads} sequential uploads of a 160x90 0.2 s clip "
        f"({clip.stat().st_size} bytes), one worker for {', '.join(names)}"
        f"{' (sharing one Services)' if shared else ''} ..."
    )
    latencies: list[float] = []  # one per upload and rendition
    stage_offsets: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    slowest: tuple[float, dict[str, float]] = (0.0, {})  # the slowest upload's stage offsets
    try:
        with running_pipeline(config, shared) as pipeline, observed(pipeline.services):
            svc = pipeline.uploader
            meter = CpuMeter()
            for i in range(warmup + uploads):
                key = f"latency/{i:04d}.mp4"
                TIMELINE.reset()
                spawned_event = TIMELINE.spawned
                started = time.perf_counter()
                info = svc.store.put_file(config.input_bucket, key, clip)
                TIMELINE.mark("put_file-return")
                if not spawned_event.wait(30):
                    raise TimeoutError(f"FFmpeg did not start within 30 s for upload {i}")
                # Let the jobs finish and the messages be acknowledged, so the next upload finds idle workers.
                wait_for_jobs(svc, [JobId(key, info.etag, name) for name in names], 60, poll=0.005)
                deadline = time.monotonic() + 10
                while any(svc.broker.depth(r.queue).total for r in config.renditions) and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(0.02)  # back in their long-polls
                if i < warmup:
                    continue
                marks = dict(TIMELINE.marks)
                latencies.extend(marks[f"spawned:worker-{name}"] - started for name in names)
                if len(names) == 1:  # with several workers the stage marks would interleave
                    offsets = {}
                    for name, _ in STAGES:
                        mark = marks.get(f"{name}:worker-{names[0]}", marks.get(name))
                        if mark is not None:
                            stage_offsets[name].append(mark - started)
                            offsets[name] = (mark - started) * 1000
                    if latencies[-1] > slowest[0]:
                        slowest = (latencies[-1], offsets)
            others, stolen = meter.read()[1], meter.stolen()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    ms = [x * 1000 for x in latencies]
    return {
        "n": len(ms),
        "warmup": warmup,
        "renditions": names,
        "shared_services": shared,
        "median_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "over_200_ms": sum(x > 200 for x in ms),
        "other_processes_cpu_seconds": others,
        "stolen_cpu_seconds": stolen,
        "target_median_ms": LATENCY_TARGET_MS,
        "stages_median_ms": {
            name: statistics.median(values) * 1000 for name, values in stage_offsets.items() if values
        },
        "stages_slowest_ms": slowest[1],
        "samples_ms": ms,
    }


# --- main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the 1080p clip (default 20)")
    parser.add_argument("--repeats", type=int, default=2, help="bare/pipeline pairs, alternating (default 2)")
    parser.add_argument("--uploads", type=int, default=50, help="tiny uploads for the latency (default 50)")
    parser.add_argument("--warmup", type=int, default=2, help="latency uploads not counted (default 2)")
    parser.add_argument("--skip-ratio", action="store_true", help="skip the wall-time ratio")
    parser.add_argument("--skip-latency", action="store_true", help="skip the upload->FFmpeg latency")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument(
        "--latency-renditions",
        type=int,
        default=1,
        help="workers (first N renditions) in the latency part; every FFmpeg start is a sample (default 1)",
    )
    parser.add_argument(
        "--shared-services",
        action="store_true",
        help="worker threads share the uploader's Services, as `videoconverter demo` does (default: one each, "
        "as `videoconverter up` worker processes have)",
    )
    args = parser.parse_args(argv)
    if min(args.repeats, args.uploads, args.latency_renditions) < 1 or args.warmup < 0 or args.seconds <= 0:
        parser.error("--repeats, --uploads and --latency-renditions must be >= 1, --warmup >= 0, --seconds > 0")
    if args.seconds < 20 and not args.skip_ratio:
        say(f"note: --seconds {args.seconds:g} is shorter than the 20 s the ratio target is defined for")

    results: dict[str, Any] = {"cpus": os.cpu_count(), "ffmpeg": ffmpeg_executable(), "load_avg": os.getloadavg()}
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        say(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall times will be noisy")
    with tempfile.TemporaryDirectory(prefix="vc-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_ratio:
            results["ratio"] = measure_ratio(args.seconds, args.repeats, work, args.shared_services)
        if not args.skip_latency:
            results["latency"] = measure_latency(
                args.uploads, args.warmup, work, args.shared_services, args.latency_renditions
            )

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print()
    if "ratio" in results:
        r = results["ratio"]
        verdict = "ok" if r["ratio"] <= RATIO_TARGET else f"ABOVE target {RATIO_TARGET}"
        runs = ", ".join(f"{x:.3f}" for x in r["per_run_ratios"])
        print(
            f"ratio pipeline/bare: {r['ratio']:.3f} (pipeline {r['pipeline_seconds']:.2f} s, bare "
            f"{r['bare_seconds']:.2f} s; median of {r['repeats']}, per-run {runs}; "
            f"{r['clip_seconds']:g} s 1920x1080 clip -> 720p + 1080p) [{verdict}]"
        )
        print(
            f"  CPU time pipeline/bare: {r['cpu_ratio']:.3f} (pipeline {r['pipeline_cpu_seconds']:.1f} s, bare "
            f"{r['bare_cpu_seconds']:.1f} s: FFmpeg + this process); "
            f"FFmpeg arguments identical to the worker's: {'yes' if r['same_ffmpeg_arguments'] else 'NO'}"
        )
        if r["added_seconds"] is not None:
            print(
                f"  around FFmpeg the pipeline adds {r['added_seconds']:.2f} s (upload -> spawn, exit -> job done) and "
                f"uses {r['python_cpu_seconds']:.2f} CPU-s of Python: at most {r['structural_ratio']:.3f} x bare; "
                f"identical bare runs differed by {100 * r['bare_spread']:.1f}% (run-to-run noise)"
            )
    if "latency" in results:
        lat = results["latency"]
        verdict = "ok" if lat["median_ms"] <= LATENCY_TARGET_MS else f"ABOVE target {LATENCY_TARGET_MS:g} ms"
        print(
            f"upload->ffmpeg start latency: median {lat['median_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
            f"(n={lat['n']}, min {lat['min_ms']:.1f}, max {lat['max_ms']:.1f}, over 200 ms: {lat['over_200_ms']}; "
            f"{', '.join(lat['renditions'])}{', shared Services' if lat['shared_services'] else ''}) [{verdict}]"
        )
        if lat["other_processes_cpu_seconds"] is not None and lat["stolen_cpu_seconds"] is not None:
            print(
                f"  during the uploads other processes used {lat['other_processes_cpu_seconds']:.1f} CPU-s, the "
                f"hypervisor stole {lat['stolen_cpu_seconds']:.1f} CPU-s"
            )
        if lat["stages_median_ms"]:
            print("  where the time goes (ms after the put_file call: median upload, slowest upload):")
            for name, text in STAGES:
                if name in lat["stages_median_ms"]:
                    slow = lat["stages_slowest_ms"].get(name)
                    print(f"    {lat['stages_median_ms'][name]:8.1f} {'' if slow is None else f'{slow:8.1f}'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
