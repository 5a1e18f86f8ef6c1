"""`videoconverter up`: worker processes for every rendition, restarted if they die, stopped gracefully.

By default (with :class:`Pool`) a fixed number of pool workers, each serving every rendition's queue (see
:mod:`videoconverter.pool`), so that no core idles at the end of a batch. Or dedicated workers: a fixed number per
rendition, or (with :class:`AutoScaling`) a number that follows each queue's depth (see
:mod:`videoconverter.fleet.scaling`): new workers start at once; surplus ones get SIGUSR1, which makes a worker
exit after its current job, so scaling in never interrupts a transcode. With webhooks configured, a webhook
deliverer runs beside the workers. When a worker dies, its leases are handed back at once and its state folder
removed (:mod:`videoconverter.recovery`) before its replacement starts, so the job does not wait out its lease. The
replacement is the standby kept ready (:mod:`videoconverter.fleet.standby`), so the job does not wait out a new
interpreter's start either; a new standby starts behind it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from videoconverter import brokers
from videoconverter.brokers.base import Broker
from videoconverter.config import Config
from videoconverter.fleet import standby
from videoconverter.fleet.scaling import Scaler, ScalingPolicy
from videoconverter.pipeline import open_broker
from videoconverter.processes import parent_death_signal
from videoconverter.recovery.identity import ProcessIdentity, identity_of
from videoconverter.recovery.journal import broker_fingerprint
from videoconverter.recovery.reaper import Reaper
from videoconverter.recovery.workspace import default_root

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0
POLL_SECONDS = 0.5
SCALE_EVERY_SECONDS = 1.0
STOP_GRACE_SECONDS = 30.0
DRAIN_SIGNAL = signal.SIGUSR1  # a worker that gets it exits after its current job
DELIVERER = "webhooks"
POOL = "pool (every rendition)"  # the role of a pool worker: no rendition can be named so
STANDBY = "standby (for any role)"  # a warmed-up worker waiting for the role of one that dies


@dataclass(frozen=True)
class AutoScaling:
    policy: ScalingPolicy
    ffmpeg_threads: int  # for every worker started, so that threads x workers stays within the cores


@dataclass(frozen=True)
class Pool:
    size: int  # worker processes, each serving every rendition's queue
    ffmpeg_threads: int = 0  # for every worker, so that threads x workers stays within the cores (0: unchanged)


@dataclass
class _Child:
    role: str  # a rendition's name, POOL or DELIVERER
    process: subprocess.Popen[bytes]
    restarts: int = 0
    draining: bool = False
    started_at: float = field(default_factory=time.monotonic)
    identity: ProcessIdentity | None = None  # read at once: once the process has died and been waited for, it is gone


def worker_command(rendition: str) -> list[str]:
    # The supervisor provisioned before starting anything: a worker it starts (often, when scaling) need not.
    return [sys.executable, "-m", "videoconverter", "worker", rendition, "--no-provision"]


def pool_command() -> list[str]:
    return [sys.executable, "-m", "videoconverter", "worker", "--all", "--no-provision"]


def standby_command() -> list[str]:
    return [sys.executable, "-m", "videoconverter", "worker", "--standby", "--no-provision"]


def deliverer_command() -> list[str]:
    return [sys.executable, "-m", "videoconverter", "webhooks"]


def supervise(
    config: Config,
    stop: threading.Event,
    concurrency: int = 1,
    autoscaling: AutoScaling | None = None,
    renditions: Sequence[str] | None = None,
    deliver_webhooks: bool = True,
    pool: Pool | None = None,
    keep_standby: bool = True,
) -> None:
    """Run workers for ``renditions`` (default: all) until ``stop`` is set; restart any that dies. With ``pool``,
    ``pool.size`` workers that each serve every rendition (``renditions`` must then be None). With
    ``keep_standby``, one more worker process waits, warmed up, to take the place of one that dies (or, when
    scaling, to be the first new one)."""
    if pool is not None and (renditions is not None or autoscaling is not None):
        raise ValueError("a pool serves every rendition, at a fixed size")
    names = list(renditions or [r.name for r in config.renditions])
    env = os.environ.copy()
    threads = autoscaling.ffmpeg_threads if autoscaling is not None else pool.ffmpeg_threads if pool else 0
    if threads:
        env["VIDEOCONVERTER_FFMPEG_THREADS"] = str(threads)
    # A broker to hand dead workers' leases back on, where the backend does not do it itself; scaling reads depths.
    hands_back = brokers.BACKENDS.backend_class(config.broker_url).capabilities.leases_outlive_holder
    broker = open_broker(config) if autoscaling or hands_back else None
    reaper = Reaper(default_root(), broker, broker_fingerprint(config.broker_url))
    _reap(reaper, None)  # the folders of workers that died before this `up` started
    start = 0 if autoscaling or pool else concurrency
    children = [_spawn(name, env) for name in names for _ in range(start)]
    children += [_spawn(POOL, env) for _ in range(pool.size if pool else 0)]
    if deliver_webhooks and config.notifications.webhook_urls:
        children.append(_spawn(DELIVERER, env))
    if keep_standby:
        children.append(_spawn(STANDBY, env))
    log.info("up: %d processes for %s", len(children), ", ".join(names))
    scaler = Scaler(autoscaling.policy) if autoscaling else None
    next_scale = time.monotonic()
    woken = threading.Event()
    restore = _wake_on_child_exit(woken)
    try:
        while not stop.is_set():
            woken.wait(POLL_SECONDS)
            woken.clear()
            if stop.is_set():
                break
            children = _replace_dead(children, env, reaper)
            if broker is not None and scaler is not None and time.monotonic() >= next_scale:
                next_scale = time.monotonic() + SCALE_EVERY_SECONDS
                _scale(config, names, children, broker, scaler, env)
    finally:
        restore()
        _stop_all(children)
        _reap(reaper, None)  # workers killed after the grace period
        if broker is not None:
            broker.close()


def _wake_on_child_exit(woken: threading.Event) -> Callable[[], None]:
    """Set ``woken`` whenever a child process exits (SIGCHLD), so that a dead worker's leases are handed back and
    its replacement started at once rather than at the next poll (half a second later, on average a quarter:
    bench/peer.py's recovery figure). Signals are only for the main thread; elsewhere the poll alone decides.
    Returns what puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGCHLD, lambda _signum, _frame: woken.set())

    def restore() -> None:
        signal.signal(signal.SIGCHLD, previous)

    return restore


def _replace_dead(children: list[_Child], env: dict[str, str], reaper: Reaper) -> list[_Child]:
    exited = [(child, child.process.poll()) for child in children]
    alive = [child for child, code in exited if code is None]
    for child, code in exited:
        if code is None:
            continue
        _reap(reaper, child.identity)  # before a replacement starts, so that it can take the job at once
        if child.draining:
            log.info("a %s worker finished its job and stopped (scaled in)", child.role)
            continue
        log.warning("%s process exited with code %s; restarting", child.role, code)
        if time.monotonic() - child.started_at < RESTART_DELAY_SECONDS:
            time.sleep(RESTART_DELAY_SECONDS)  # a process that dies at once must not spin
        replacement = _start(child.role, alive, env)
        replacement.restarts = child.restarts + 1
        alive.append(replacement)
    return alive


def _start(role: str, children: list[_Child], env: dict[str, str]) -> _Child:
    """A worker for ``role``: the standby among ``children``, given the role (a new standby is appended to
    ``children`` in its place), or else a new process."""
    waiting = next((c for c in children if c.role == STANDBY and c.process.poll() is None), None)
    if role in (DELIVERER, STANDBY) or waiting is None:
        return _spawn(role, env)
    if not standby.assign(waiting.process, None if role == POOL else [role]):
        return _spawn(role, env)
    log.info("the standby worker (pid %d) takes the place of a %s worker", waiting.process.pid, role)
    children.remove(waiting)
    children.append(_spawn(STANDBY, env))
    return _Child(role, waiting.process, identity=waiting.identity)


def _scale(
    config: Config, names: list[str], children: list[_Child], broker: Broker, scaler: Scaler, env: dict[str, str]
) -> None:
    try:
        depths = {name: broker.depth(config.rendition(name).queue) for name in names}
    except Exception as exc:  # a broker hiccup: keep the workers there are, try again in a second
        log.warning("cannot read queue depths to scale: %s", exc)
        return
    active = {name: [c for c in children if c.role == name and not c.draining] for name in names}
    decided = scaler.decide(depths, {name: len(group) for name, group in active.items()}, time.monotonic())
    for name, count in decided.items():
        group = active[name]
        if count == len(group):
            continue
        log.info("scaling %s: %d -> %d workers (queue: %s)", name, len(group), count, depths[name])
        for _ in range(count - len(group)):
            children.append(_start(name, children, env))
        for child in reversed(group[count:]):  # the newest first
            child.draining = True
            child.process.send_signal(DRAIN_SIGNAL)


def _spawn(role: str, env: dict[str, str]) -> _Child:
    # Own session: a terminal's Ctrl-C reaches only `up`, which stops each child once, gracefully; the
    # parent-death signal stops them gracefully too if `up` itself is killed.
    commands = {DELIVERER: deliverer_command, POOL: pool_command, STANDBY: standby_command}
    process = subprocess.Popen(
        commands[role]() if role in commands else worker_command(role),
        env=env,
        stdin=subprocess.PIPE if role == STANDBY else None,  # where its role will come from
        start_new_session=True,
        preexec_fn=parent_death_signal(signal.SIGTERM),  # system calls only in the child: safe after fork
    )
    return _Child(role, process, identity=identity_of(process.pid))


def _reap(reaper: Reaper, dead: ProcessIdentity | None) -> None:
    """Hand back the leases of ``dead`` (a child that just died) and remove its state folder, then those of any
    other dead worker; a failure is logged, never fatal to the fleet (the leases then end with their timeout)."""
    try:
        if dead is not None:
            reaper.reap(dead)
        reaper.reap_dead()
    except Exception:
        log.warning("cannot reap dead workers' state folders", exc_info=True)


def _stop_all(children: list[_Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)  # workers hand their current job back, then exit
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
