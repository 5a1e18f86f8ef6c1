"""Many processes opening one new SQLite database at the same moment: `up`'s workers, a `ls`, a web request."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from videoconverter import sqlite_db

PROCESSES = 8
DATABASES = 12  # the race is narrow: one fresh database in ten lost it before the fix, so try several


def _open(path: str, barrier: threading.Barrier) -> str:  # a Manager's proxy of one
    barrier.wait(timeout=30)  # every process opens the file in the same instant
    try:
        conn = sqlite_db.connect(Path(path))
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        conn.close()
        return str(mode)
    except Exception as exc:  # reported, not raised: the test names what went wrong
        return repr(exc)


def test_processes_opening_a_new_database_together_all_get_it_in_wal_mode(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(PROCESSES) as pool:
        for n in range(DATABASES):
            path = str(tmp_path / f"fresh-{n}.sqlite3")
            barrier = manager.Barrier(PROCESSES)
            modes = pool.starmap(_open, [(path, barrier)] * PROCESSES)
            assert modes == ["wal"] * PROCESSES, (n, modes)
