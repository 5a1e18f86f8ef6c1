"""A worker process's state folder: its jobs' private temp dirs and its lease journals.

``<temp dir>/videoconverter-work-<uid>/<pid>-<start>-<boot>-<pid namespace>/`` (see :mod:`.identity`), every
level mode 0700 and owned by the user, so nobody else can read a job's source or plant files in it. The per-user
root in a shared temp dir is checked before use: a symlink, or a folder someone else owns or can enter, is
refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from videoconverter.errors import ConfigError
from videoconverter.recovery.identity import ProcessIdentity, this_process
from videoconverter.recovery.journal import LeaseJournal

ROOT_PREFIX = "videoconverter-work-"
JOB_PREFIX = "job-"


class UnsafeFolderError(ConfigError):
    """A state folder of videoconverter's in the temp dir is not private: remove it, or set TMPDIR elsewhere."""


def default_root(temp_dir: Path | None = None) -> Path:
    """Where this user's worker processes keep their state folders."""
    return Path(temp_dir or tempfile.gettempdir()) / f"{ROOT_PREFIX}{os.getuid()}"


def private_folder(path: Path) -> Path:
    """Create ``path`` (mode 0700) unless it exists; raise :class:`UnsafeFolderError` unless it is a real
    folder of this user's that nobody else may enter."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UnsafeFolderError(
            f"{path} is not a private folder of this user's (a symlink, someone else's, or open to others): "
            "remove it, or set TMPDIR to another temp dir"
        )
    return path


class Workspace:
    """The state folder of one process (``identity``, by default this one) under ``root``."""

    def __init__(self, root: Path | None = None, identity: ProcessIdentity | None = None) -> None:
        self.root = root or default_root()
        self.identity = identity or this_process()
        self.folder = self.root / self.identity.name

    def _ensure(self) -> Path:
        private_folder(self.root)
        return private_folder(self.folder)

    @contextlib.contextmanager
    def job_dir(self) -> Iterator[Path]:
        """A new private temp dir (mode 0700) for one job, removed when the ``with`` block ends; one left by a
        process killed meanwhile goes with its state folder (:mod:`.reaper`)."""
        try:
            path = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=self._ensure()))
        except FileNotFoundError:  # another thread's remove_if_empty took the folder between the two calls
            path = Path(tempfile.mkdtemp(prefix=JOB_PREFIX, dir=self._ensure()))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def journal(self, broker: str) -> LeaseJournal:
        """A new lease journal in this folder, for leases of the broker whose fingerprint is ``broker``. The
        root is checked now (an unsafe one stops a worker at its start); the folder is made on the first lease."""
        private_folder(self.root)
        return LeaseJournal(self.folder, broker)

    def remove_if_empty(self) -> None:
        """Remove the folder if nothing is left in it, so that a worker that stops cleanly leaves nothing behind
        (a job starting meanwhile in another thread makes it again)."""
        with contextlib.suppress(OSError):
            self.folder.rmdir()
