"""A worker's own metrics: counted through prometheus_client, served on a port, or shared with `up`'s dashboard
through a multi-process directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from videoconverter import telemetry  # noqa: E402

SAMPLE = "videoconverter_worker_ffmpeg_seconds_total"
SOURCE = str(Path(__file__).resolve().parents[2] / "src")


def value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_worker_metrics_count_ffmpeg_bytes_and_leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(telemetry.MULTIPROCESS_DIR_VARIABLE, str(tmp_path))  # something reads them (see below)
    before = value(SAMPLE, rendition="t1")
    telemetry.ffmpeg_ran("t1", 2.0, 50)
    telemetry.bytes_in("t1", 1000)
    telemetry.bytes_out("t1", 400)
    telemetry.lease_extension("q-t1", "extended")
    telemetry.lease_extension("q-t1", "lost")
    assert value(SAMPLE, rendition="t1") == before + 2.0
    assert value("videoconverter_worker_frames_per_second", rendition="t1") == 25.0
    assert value("videoconverter_worker_ffmpeg_frames_total", rendition="t1") >= 50
    assert value("videoconverter_worker_input_bytes_total", rendition="t1") >= 1000
    assert value("videoconverter_worker_output_bytes_total", rendition="t1") >= 400
    assert value("videoconverter_worker_lease_extensions_total", queue="q-t1", outcome="lost") >= 1


def test_a_worker_serves_its_metrics_on_a_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = telemetry.serve(port)
    try:
        telemetry.ffmpeg_ran("t2", 1.0, 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body = reply.read().decode()
        assert f'{SAMPLE}{{rendition="t2"}}' in body
    finally:
        server.shutdown()
    with pytest.raises(Exception, match="metrics-port"):
        telemetry.serve(port, "256.0.0.1")  # an address that cannot be listened on


def test_workers_share_their_metrics_through_a_multiprocess_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(telemetry.MULTIPROCESS_DIR_VARIABLE, raising=False)
    directory, made = telemetry.share_with_workers()
    try:
        assert made and os.environ[telemetry.MULTIPROCESS_DIR_VARIABLE] == directory
        script = (
            "from videoconverter import telemetry; telemetry.ffmpeg_ran('720p', 2.0, 60); telemetry.bytes_in('720p', 5)"
        )
        for _ in range(2):  # two worker processes, one after the other
            subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": SOURCE})
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = prometheus_client.CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        assert registry.get_sample_value(SAMPLE, {"rendition": "720p"}) == 4.0
        assert registry.get_sample_value("videoconverter_worker_frames_per_second", {"rendition": "720p"}) == 30.0
        assert telemetry.share_with_workers() == (directory, False)  # a directory set already: reused, wiped
        assert not list(Path(directory).glob("*.db"))
    finally:
        telemetry.unshare(directory, made)
    assert not Path(directory).exists() and telemetry.MULTIPROCESS_DIR_VARIABLE not in os.environ


def test_a_process_whose_metrics_nothing_reads_counts_nothing_and_imports_no_prometheus_client() -> None:
    script = (
        "import sys; from videoconverter import telemetry; telemetry.ffmpeg_ran('720p', 2.0, 60); "
        "telemetry.bytes_in('720p', 5); telemetry.lease_extension('q', 'extended'); "
        "print('prometheus_client' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != telemetry.MULTIPROCESS_DIR_VARIABLE}
    ran = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, env={**env, "PYTHONPATH": SOURCE}
    )
    assert ran.stdout.strip() == "False"


def test_threads_counting_at_once_make_the_metrics_once() -> None:
    # A fresh process, so the metrics are not made yet; 16 threads released together all make them first.
    script = (
        "import os, sys, threading, prometheus_client\n"
        "sys.setswitchinterval(1e-6)  # switch threads often, as a loaded machine does\n"
        "os.environ['PROMETHEUS_MULTIPROC_DIR'] = 'x'  # a reader, set once prometheus_client chose one process\n"
        "from videoconverter import telemetry\n"
        "barrier, errors = threading.Barrier(16), []\n"
        "def count():\n"
        "    barrier.wait()\n"
        "    try:\n"
        "        telemetry.bytes_in('720p', 1)\n"
        "    except Exception as exc:\n"
        "        errors.append(repr(exc))\n"
        "threads = [threading.Thread(target=count) for _ in range(16)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(errors or prometheus_client.REGISTRY.get_sample_value(\n"
        "    'videoconverter_worker_input_bytes_total', {'rendition': '720p'}))\n"
    )
    env = {**os.environ, "PYTHONPATH": SOURCE}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "16.0"
