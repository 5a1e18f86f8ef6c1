"""The systems bench/peer.py compares, driven alike: start (and warm up), submit uploads, wait, stop.

* :class:`Pipeline`: ``videoconverter up --no-web`` in a fresh data directory, on the embedded broker or on
  RabbitMQ (topic and queues under a unique prefix, deleted afterwards; the job store stays SQLite). Uploads go
  through the Store API (``put_file``, as ``videoconverter cp`` does, without a CLI start per clip); the wait is
  ``videoconverter jobs [KEY] --wait --json``, and a job's end is its record's ``finished_at``.
  With ``--sqs``, on S3 + SNS/SQS + DynamoDB at a moto server the benchmark starts (HTTP, as AWS is reached).
* :class:`CeleryPeer`: a Celery worker (:mod:`celery_tasks`) of the prefork pool on Redis, consuming one queue
  per rendition; a submitted upload is one task per rendition with the FFmpeg line the pipeline's worker would
  build for it; a task's end is the ``time.time()`` it returns.

Both start with a warm-up upload of a tiny clip, waited for, so that the measurement begins with every worker
process started, connected and idle. Each context manager removes what it made (data directories, RabbitMQ
topology, Redis keys, processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ffmpeg_lines import rendition_lines
from proctree import Process, Reader
from videoconverter.config import Config, load_config
from videoconverter.jobs.timeline import parse_iso_time
from videoconverter.pipeline import Services, all_topologies, open_services, provision
from videoconverter.renditions import DEFAULT_RENDITIONS
from videoconverter.transcode.runner import ffmpeg_executable

BENCH = Path(__file__).resolve().parent
START_TIMEOUT_SECONDS = 180.0  # up's provisioning and worker start on a loaded machine
STOP_TIMEOUT_SECONDS = 60.0
WARMUP_KEY = "warmup/tiny.mp4"
AWS_REGION = "us-east-1"
#: moto's fake credentials: the benchmark's own process and its children reach moto's server with them.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": AWS_REGION}


@contextlib.contextmanager
def moto_server(work: Path) -> Iterator[str]:
    """moto's server (``moto[server]``, from the dev extras) on a free local port, for the SQS pipeline; its
    endpoint URL. The fake credentials are set in this process's environment while it runs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(work / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **FAKE_AWS})  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in FAKE_AWS}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not start: see {work / 'moto.log'}") from None
                time.sleep(0.1)
        os.environ.update(FAKE_AWS)
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        process.terminate()
        process.wait(timeout=10)
        log.close()


@dataclass(frozen=True)
class Finished:
    """When each (key, rendition) was done: ``time.time()`` as the worker recorded it."""

    at: dict[tuple[str, str], float]
    attempts: dict[tuple[str, str], int]  # deliveries the job took (0: not known, as for Celery)
    #: when each job's FFmpeg started and ended (the pipeline: its timeline; Celery: the task's run, a few ms more)
    ffmpeg_spans: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    #: CPU of the process that waited (the pipeline's `jobs --wait`; 0 for Celery's, the benchmark's own thread)
    waiter_cpu_seconds: float = 0.0


class System(Protocol):
    name: str
    #: the command names of the broker servers it uses, outside its tree (their CPU is the system's cost too)
    servers: tuple[str, ...]

    @property
    def root_pid(self) -> int: ...

    def submit(self, keys: Sequence[str], clip: Path) -> float: ...

    def wait(self, keys: Sequence[str], timeout_seconds: float) -> Finished: ...

    def __enter__(self) -> System: ...

    def __exit__(self, *exc: object) -> None: ...


def bench_toml(data_dir: Path, broker_url: str = "", prefix: str = "", aws_endpoint: str = "") -> str:
    """The configuration both systems run: the default renditions (names, sizes, codec settings) with a fixed
    CRF (``target_vmaf = 0``), since a VMAF search's FFmpeg lines cannot be built ahead for the peer. With
    ``aws_endpoint`` (moto's server): S3, SNS/SQS and DynamoDB there."""
    text = [f"data_dir = {json.dumps(str(data_dir))}"]
    if broker_url:
        text.append(f"broker = {json.dumps(broker_url)}")
    if aws_endpoint:
        query = f"?endpoint_url={aws_endpoint}&region={AWS_REGION}"
        text += [
            f'storage = "s3://{query}"',
            f'broker = "aws://{query}"',
            f'jobs = "dynamodb://videoconverter-jobs{query}"',
        ]
    if prefix:  # the shared RabbitMQ server outlives the run: names of our own, deleted afterwards
        text += ["", "[input]", f'topic = "{prefix}-topic"']
        text += ["", "[notifications]", f'topic = "{prefix}-notifications"', f'events_queue = "{prefix}-events"']
    for r in DEFAULT_RENDITIONS:
        text += ["", "[[renditions]]", f'name = "{r.name}"', f"short_side = {r.short_side}", "target_vmaf = 0"]
        if prefix:
            text.append(f'queue = "{prefix}-{r.name}"')
    return "\n".join(text) + "\n"


def bench_config(directory: Path) -> Config:
    """The configuration of :func:`bench_toml` on the embedded backends, to build FFmpeg lines from."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "videoconverter.toml"
    path.write_text(bench_toml(directory / "data"), encoding="utf-8")
    return load_config(environ={}, path=path)


def compile_package() -> None:
    """Compile videoconverter's modules to bytecode first, as a wheel's install does (Celery's come compiled
    from site-packages). An editable install leaves them as source, and with PYTHONDONTWRITEBYTECODE set every
    process the pipeline starts during a run (`jobs --wait`, a standby) would compile them again, 0.1 s of CPU
    each, beside the FFmpeg runs being timed."""
    import compileall

    import videoconverter

    compileall.compile_dir(Path(videoconverter.__file__).parent, quiet=1)


def child_env(**extra: str) -> dict[str, str]:
    """Our environment without VIDEOCONVERTER_* settings (the benchmark's own file decides), with an absolute
    PYTHONPATH (children run elsewhere), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOCONVERTER_")}
    paths = [str(Path(p).resolve()) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def stop_tree(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> None:
    """Stop ``process`` with ``signum`` (SIGKILL after :data:`STOP_TIMEOUT_SECONDS`), then SIGKILL whatever of
    its tree outlived it (only processes it started: each checked by its start time, as pids are reused)."""
    reader = Reader()
    tree = reader.tree(process.pid)[1:]
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for p in tree:
        now = reader.read(p.pid)
        if now is not None and now.started_at == p.started_at:
            os.kill(p.pid, signal.SIGKILL)


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-3000:]
    except OSError:
        return "(no log)"


class Pipeline:
    """``videoconverter up`` (real processes) on the embedded broker, on RabbitMQ with ``amqp_url``, or on
    S3 + SNS/SQS + DynamoDB at moto's server ``aws_endpoint`` (reset first: every run starts empty)."""

    def __init__(
        self,
        name: str,
        work: Path,
        warmup_clip: Path,
        amqp_url: str = "",
        aws_endpoint: str = "",
        up_options: Sequence[str] = ("--no-web",),
    ) -> None:
        self.name, self._up_options = name, list(up_options)
        self.servers = ("beam.smp",) if amqp_url else ()  # RabbitMQ's Erlang VM; the embedded broker is in-process
        self._work, self._warmup_clip, self._amqp_url = work, warmup_clip, amqp_url
        self._aws_endpoint = aws_endpoint
        self._process: subprocess.Popen[bytes] | None = None
        self._svc: Services | None = None

    @property
    def root_pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Pipeline:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self._work))
        prefix = f"vcpeer-{uuid.uuid4().hex[:10]}" if self._amqp_url else ""
        config_path = self.dir / "videoconverter.toml"
        toml = bench_toml(self.dir / "data", self._amqp_url, prefix, self._aws_endpoint)
        config_path.write_text(toml, encoding="utf-8")
        self.env = child_env(VIDEOCONVERTER_CONFIG=str(config_path))
        if self._aws_endpoint:
            self.env.update(FAKE_AWS)
            reset = urllib.request.Request(f"{self._aws_endpoint}/moto-api/reset", method="POST")
            urllib.request.urlopen(reset, timeout=10).close()
        self.config = load_config(environ=self.env)
        try:
            self._svc = open_services(self.config)
            provision(self._svc)  # before `up` does: the warm-up upload must not race it
            self.log = self.dir / "up.log"
            with open(self.log, "wb") as log:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "videoconverter", "up", *self._up_options],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C of the benchmark reaches it once, from __exit__
                )
            self.submit([WARMUP_KEY], self._warmup_clip)
            self.wait([WARMUP_KEY], START_TIMEOUT_SECONDS)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process is not None:
                stop_tree(self._process)  # SIGTERM: workers hand back what they hold, then exit
        finally:
            try:
                if self._svc is not None and self._amqp_url:
                    for declared in all_topologies(self.config):  # exchanges, queues, delay queues and DLQs
                        self._svc.broker.delete(declared)  # type: ignore[attr-defined]
            finally:
                if self._svc is not None:
                    self._svc.close()
                shutil.rmtree(self.dir, ignore_errors=True)

    def submit(self, keys: Sequence[str], clip: Path) -> float:
        """Upload ``clip`` under each key; return the ``time.time()`` just before the first upload."""
        assert self._svc is not None
        if self._aws_endpoint:
            return self._put_objects(keys, clip)
        started = time.time()
        for key in keys:
            self._svc.store.put_file(self.config.input_bucket, key, clip)
        return started

    def _put_objects(self, keys: Sequence[str], clip: Path) -> float:
        """One PutObject a key, as an uploader's single PUT. Not the store's managed transfer: above 8 MiB that
        is a multipart upload, for which moto's S3 sends two events (``ObjectCreated:Put`` and
        ``ObjectCreated:CompleteMultipartUpload``; S3 sends the second only), and both copies would be converted
        at once, measuring a duplicate's encode rather than the recovery."""
        import boto3

        s3 = boto3.client("s3", endpoint_url=self._aws_endpoint, region_name=AWS_REGION)
        body = clip.read_bytes()
        started = time.time()
        for key in keys:
            s3.put_object(Bucket=self.config.input_bucket, Key=key, Body=body)
        return started

    def wait(self, keys: Sequence[str], timeout_seconds: float) -> Finished:
        """``videoconverter jobs [KEY] --wait``; every job of ``keys`` must be done."""
        key = [keys[0]] if len(keys) == 1 else []
        command = [sys.executable, "-m", "videoconverter", "jobs", *key, "--wait", f"{timeout_seconds:g}", "--json"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        waiter = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if done.returncode not in (0, 3):  # 3: some failed (reported below, with the job's error)
            raise RuntimeError(f"{self.name}: jobs --wait exited {done.returncode}: {done.stderr[-2000:]}")
        records = [r for r in json.loads(done.stdout)["jobs"] if r["key"] in keys]
        wrong = [r for r in records if r["state"] != "done"]
        expected = len(keys) * len(self.config.renditions)
        if wrong or len(records) != expected:
            detail = "; ".join(f"{r['key']} {r['rendition']} {r['state']}: {r['error']}" for r in wrong)
            raise RuntimeError(
                f"{self.name}: {len(records)} job records of {expected}, not done: {detail}\n"
                f"up's log ends:\n{_log_tail(self.log)}"
            )
        return Finished(
            {(r["key"], r["rendition"]): float(r["finished_at"]) for r in records},
            {(r["key"], r["rendition"]): int(r["attempts"]) for r in records},
            {(r["key"], r["rendition"]): span for r in records if (span := _ffmpeg_span(r))},
            waiter,
        )


def _ffmpeg_span(record: dict[str, Any]) -> tuple[float, float] | None:
    """When the job's (last) FFmpeg started and ended, from ``jobs --json``'s timeline."""
    timeline = record.get("timeline") or {}
    start, end = (parse_iso_time(timeline.get(stage) or "") for stage in ("ffmpeg_started", "ffmpeg_finished"))
    return (start, end) if start is not None and end is not None else None


class CeleryPeer:
    """A Celery worker, prefork pool of ``processes``, on Redis at ``url``, running the pipeline's lines."""

    name = "celery"
    servers = ("redis-server",)  # the broker and the result backend

    def __init__(
        self, work: Path, warmup_clip: Path, config: Config, url: str, processes: int = 2, busy_ms: float = 0.0
    ) -> None:
        self._work, self._warmup_clip, self._config, self._url = work, warmup_clip, config, url
        self._busy_ms = busy_ms  # CPU the task spends before its FFmpeg (celery_tasks.BUSY_VARIABLE)
        self._processes = processes
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: dict[Path, dict[str, list[str]]] = {}
        self._pending: dict[tuple[str, str], Any] = {}  # AsyncResult of each submitted (key, rendition)
        self._keys_before: set[bytes] = set()

    @property
    def root_pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> CeleryPeer:
        import redis

        os.environ["PEER_CELERY_URL"] = self._url  # read by celery_tasks when first imported, here
        import celery_tasks

        self._task = celery_tasks.ffmpeg
        self._redis = redis.Redis.from_url(self._url)
        self._keys_before = set(self._redis.keys("*"))
        self.dir = Path(tempfile.mkdtemp(prefix="celery-", dir=self._work))
        (self.dir / "out").mkdir()
        tag = uuid.uuid4().hex[:10]
        self.queues = {r.name: f"vcpeer-{tag}-{r.name}" for r in self._config.renditions}
        pythonpath = os.pathsep.join([str(BENCH), *filter(None, [child_env().get("PYTHONPATH")])])
        # Celery's defaults but for what at-least-once work needs (celery_tasks) and the pool asked for.
        command = [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "prefork",
                   "--concurrency", str(self._processes), "--prefetch-multiplier", "1",
                   "-Q", ",".join(self.queues.values()), "-n", f"vcpeer-{tag}@%h", "--loglevel", "WARNING"]  # fmt: skip
        try:
            self.log = self.dir / "celery.log"
            with open(self.log, "wb") as log:
                self._process = subprocess.Popen(
                    command,
                    env=child_env(PEER_CELERY_URL=self._url, PYTHONPATH=pythonpath, PEER_BUSY_MS=f"{self._busy_ms:g}"),
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.submit([WARMUP_KEY], self._warmup_clip)
            self.wait([WARMUP_KEY], START_TIMEOUT_SECONDS)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process is not None:
                stop_tree(self._process)  # SIGTERM: Celery's warm shutdown (running tasks finish first)
        finally:
            try:
                for result in self._pending.values():
                    result.forget()
                new = set(self._redis.keys("*")) - self._keys_before  # queues, bindings, unacked, results
                if new:
                    self._redis.delete(*new)
                self._redis.close()
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)

    def lines(self, clip: Path) -> dict[str, list[str]]:
        """The worker's FFmpeg lines for ``clip``, writing ``output.mp4`` in the task's working directory."""
        if clip not in self._lines:
            self._lines[clip] = rendition_lines(ffmpeg_executable(), clip, self._config, lambda _: Path("output.mp4"))
        return self._lines[clip]

    def submit(self, keys: Sequence[str], clip: Path) -> float:
        """One task per key and rendition, in the order the pipeline's fan-out makes them; return the
        ``time.time()`` just before the first is sent."""
        lines = self.lines(clip)
        started = time.time()
        for key in keys:
            for name, args in lines.items():
                output = self.dir / "out" / f"{key.replace('/', '_')}-{name}.mp4"
                self._pending[(key, name)] = self._task.apply_async((args, str(output)), queue=self.queues[name])
        return started

    def wait(self, keys: Sequence[str], timeout_seconds: float) -> Finished:
        deadline = time.monotonic() + timeout_seconds
        at, spans = {}, {}
        for (key, name), result in self._pending.items():
            if key in keys:
                try:
                    ran = result.get(timeout=max(1.0, deadline - time.monotonic()))
                    at[(key, name)] = float(ran["finished"])
                    spans[(key, name)] = (float(ran["started"]), float(ran["finished"]))
                except Exception as exc:
                    raise RuntimeError(
                        f"celery: {key} {name}: {exc}\nthe worker's log ends:\n{_log_tail(self.log)}"
                    ) from exc
        return Finished(at, {k: 0 for k in at}, spans)


def worker_processes(tree: list[Process], root: int) -> list[Process]:
    """The Python processes of a system's tree but its root (``up``, the Celery master)."""
    return [p for p in tree if p.kind == "python" and p.pid != root]
