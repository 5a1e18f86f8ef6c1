"""A worker's own metrics, through prometheus_client when it is installed (``pip install 'videoconverter[metrics]'``,
part of the ``web`` extra); without it every function here does nothing, so the core install needs no more.

Counters (per rendition): ``videoconverter_worker_ffmpeg_seconds_total`` (FFmpeg's wall time),
``videoconverter_worker_ffmpeg_frames_total`` (frames FFmpeg reported writing), ``..._input_bytes_total`` (uploads
downloaded), ``..._output_bytes_total`` (output files written); per queue and outcome (``extended``, ``lost``,
``failed``): ``videoconverter_worker_lease_extensions_total``. Gauge: ``videoconverter_worker_frames_per_second``,
the last conversion's frames over FFmpeg's time.

They are exposed as prometheus_client documents, without a Pushgateway: ``videoconverter worker --metrics-port
PORT`` serves them over HTTP; ``videoconverter up`` gives its worker processes a multi-process directory
(``PROMETHEUS_MULTIPROC_DIR``, wiped at start) whose metrics the dashboard's ``/metrics`` adds to its own. A
process that has neither counts nothing and never imports prometheus_client (with its HTTP server, e-mail and TLS
modules): nothing could read what it counted.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import tempfile
import threading
from typing import Any

from videoconverter.errors import ConfigError

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_metrics: dict[str, Any] | None = None
# The metrics live in prometheus_client's default registry, once per process: worker threads (`demo`, the
# benchmarks) that made them at the same moment would register each twice (DuplicateTimeseries).
_metrics_lock = threading.Lock()


def available() -> bool:
    return importlib.util.find_spec("prometheus_client") is not None


def _instruments(served: bool = False) -> dict[str, Any] | None:
    """The metrics, made on first use in the default registry; None without prometheus_client, or while nothing
    reads them: no multi-process directory to share them through, and not ``served`` on a port."""
    with _metrics_lock:
        return _made_instruments(served)


def _made_instruments(served: bool) -> dict[str, Any] | None:
    global _metrics
    if _metrics is None and (served or os.environ.get(MULTIPROCESS_DIR_VARIABLE)) and available():
        from prometheus_client import Counter, Gauge

        by_rendition = ["rendition"]
        _metrics = {
            "seconds": Counter("videoconverter_worker_ffmpeg_seconds", "FFmpeg's wall time.", by_rendition),
            "frames": Counter("videoconverter_worker_ffmpeg_frames", "Frames FFmpeg reported writing.", by_rendition),
            "fps": Gauge(
                "videoconverter_worker_frames_per_second",
                "Frames per second of the last conversion (frames over FFmpeg's time).",
                by_rendition,
                multiprocess_mode="mostrecent",
            ),
            "in": Counter("videoconverter_worker_input_bytes", "Bytes of uploads downloaded.", by_rendition),
            "out": Counter("videoconverter_worker_output_bytes", "Bytes of outputs written.", by_rendition),
            "leases": Counter(
                "videoconverter_worker_lease_extensions",
                "Lease extensions while converting, by outcome (extended, lost, failed).",
                ["queue", "outcome"],
            ),
        }
    return _metrics


def ffmpeg_ran(rendition: str, seconds: float, frames: int) -> None:
    """Count one FFmpeg run of ``rendition``."""
    if (m := _instruments()) is not None:
        m["seconds"].labels(rendition).inc(max(0.0, seconds))
        if frames > 0:
            m["frames"].labels(rendition).inc(frames)
            if seconds > 0:
                m["fps"].labels(rendition).set(frames / seconds)


def bytes_in(rendition: str, count: int) -> None:
    if (m := _instruments()) is not None:
        m["in"].labels(rendition).inc(max(0, count))


def bytes_out(rendition: str, count: int) -> None:
    if (m := _instruments()) is not None:
        m["out"].labels(rendition).inc(max(0, count))


def lease_extension(queue: str, outcome: str) -> None:
    """Count one attempt to extend a lease: ``extended``, ``lost`` (another worker has it) or ``failed``."""
    if (m := _instruments()) is not None:
        m["leases"].labels(queue, outcome).inc()


def serve(port: int, host: str = "127.0.0.1") -> Any:
    """Serve this process's metrics over HTTP (prometheus_client's own server, in a thread); return it."""
    if not available():
        raise ConfigError("--metrics-port needs prometheus_client: pip install 'videoconverter[metrics]'")
    from prometheus_client import start_http_server

    _instruments(served=True)
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(f"--metrics-port: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return server


def share_with_workers() -> tuple[str, bool]:
    """Give the worker processes about to start a multi-process directory: the one in
    ``PROMETHEUS_MULTIPROC_DIR`` (its ``.db`` files of an earlier run removed), or a new temporary one set there.
    Returns it and whether it was made here (then :func:`unshare` removes it)."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE, "")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.remove(stale)
        return directory, False
    directory = tempfile.mkdtemp(prefix="videoconverter-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
    return directory, True


def unshare(directory: str, made: bool) -> None:
    if made:
        shutil.rmtree(directory, ignore_errors=True)
        if os.environ.get(MULTIPROCESS_DIR_VARIABLE) == directory:
            del os.environ[MULTIPROCESS_DIR_VARIABLE]
