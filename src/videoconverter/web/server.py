"""Run the web app with uvicorn: alone (``videoconverter web``) or in a thread of ``videoconverter up``."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import replace

import uvicorn

from videoconverter.config import Config
from videoconverter.errors import VideoConverterError
from videoconverter.web.app import create_app
from videoconverter.web.auth import check_bind
from videoconverter.web.limits import http_protocol

log = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 30.0
GRACEFUL_SHUTDOWN_SECONDS = 3  # open event streams are cut after this


class WebServer:
    """uvicorn on a socket bound here (so a busy port is one clear error), serving from a thread."""

    def __init__(self, config: Config, host: str | None = None, port: int | None = None) -> None:
        self.host = host or config.web.host
        port = config.web.port if port is None else port
        check_bind(self.host, config.web)
        self._socket = _bind(self.host, port)
        self.port: int = self._socket.getsockname()[1]
        # The app checks Host against the address it is served on, which --host may have changed.
        served = replace(config, web=replace(config.web, host=self.host, port=self.port))
        self.app = create_app(served)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                http=http_protocol(config.web.read_timeout_seconds),
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                lifespan="on",
            )
        )
        self._thread = threading.Thread(target=self._serve, name="videoconverter-web", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread; return once the app has started (raises if it could not)."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise VideoConverterError(f"the web server did not start on {self.url}: see the log above")
            time.sleep(0.05)
        log.info("dashboard and HTTP API on %s", self.url)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(GRACEFUL_SHUTDOWN_SECONDS + 10)
        self._socket.close()

    def _serve(self) -> None:
        self._server.run(sockets=[self._socket])


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise VideoConverterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock
