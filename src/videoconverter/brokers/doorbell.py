"""Cross-process wake-ups for the SQLite broker, so a long-poll receive sleeps instead of polling.

Each waiting broker binds a Unix datagram socket in a private folder named after the database; whoever
writes a message rings every socket there. A ring sent while nobody waits stays in the socket's buffer, so a
waiter that checks the database and then waits cannot miss one. Where Unix sockets are unavailable (or the
folder is not ours), waiting falls back to short sleeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

FALLBACK_POLL_SECONDS = 0.05


class Doorbell:
    def __init__(self, database: Path) -> None:
        digest = hashlib.sha256(str(database.resolve()).encode()).hexdigest()[:16]
        self._folder = Path(tempfile.gettempdir()) / f"videoconverter-{os.getuid()}-{digest}"
        # One socket per thread: threads sharing a broker must not drain each other's rings.
        self._local = threading.local()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._enabled = hasattr(socket, "AF_UNIX") and self._prepare_folder()

    def _prepare_folder(self) -> bool:
        try:
            self._folder.mkdir(mode=0o700, exist_ok=True)
            stat = self._folder.lstat()
        except OSError:
            return False
        # Someone else's folder (or a symlink) in a shared /tmp must not receive or send our rings.
        return stat.st_uid == os.getuid() and not self._folder.is_symlink()

    def _listener(self) -> socket.socket | None:
        if not self._enabled:
            return None
        sock: socket.socket | None = getattr(self._local, "socket", None)
        if sock is None:
            path = self._folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(str(path))
            except OSError:
                sock.close()
                self._enabled = False
                return None
            sock.setblocking(False)
            self._local.socket = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def arm(self) -> None:
        """Start listening (if not already) and forget rings heard so far. Call before checking for work."""
        sock = self._listener()
        if sock is None:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                sock.recv(64)

    def wait(self, timeout_seconds: float) -> None:
        """Sleep until a ring or the timeout, whichever comes first."""
        if timeout_seconds <= 0:
            return
        sock = self._listener()
        if sock is None:
            time.sleep(min(timeout_seconds, FALLBACK_POLL_SECONDS))
            return
        select.select([sock], [], [], timeout_seconds)

    def ring(self) -> None:
        """Wake every waiter on this database."""
        if not self._enabled:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for path in self._folder.glob("*.sock"):
                try:
                    sender.sendto(b"!", str(path))
                except BlockingIOError:
                    pass  # its buffer is full of rings already: it will wake
                except (ConnectionRefusedError, FileNotFoundError):
                    path.unlink(missing_ok=True)  # left behind by a process that died
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                name = sock.getsockname()
                sock.close()
                if isinstance(name, str) and name:
                    Path(name).unlink(missing_ok=True)
            self._sockets.clear()
            self._enabled = False
        with contextlib.suppress(OSError):
            self._folder.rmdir()  # only when no other broker of this database listens any more
