"""The pieces of a split job (chunking) in portable SQL: the plan and the pieces done, on the job's own row.

The pieces done are a sorted, comma-separated list of indexes in ``pieces_done``. Counting one reads the row
under a lock (SQLite: the database's write lock that ``BEGIN IMMEDIATE`` holds; PostgreSQL: ``FOR UPDATE``),
adds the index and writes the row in the same transaction, so concurrent workers are serialised on the job and
exactly one of them counts the last piece.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from videoconverter.jobs import queries as q
from videoconverter.jobs.base import JobId, PieceCount
from videoconverter.jobs.sql import Dialect, Run

#: Progress of a split job whose pieces are all done, until the join finishes it (100).
PIECES_DONE_PERCENT = 99.0
PLAN_PIECES = f"UPDATE jobs SET pieces_planned = ?, updated_at = ? WHERE {q.ID}"
GET_PIECES = f"SELECT pieces_planned, pieces_done FROM jobs WHERE {q.ID}{{for_update}}"
SET_PIECES = f"UPDATE jobs SET pieces_done = ?, progress_percent = ?, updated_at = ? WHERE {q.ID}"


def done_indexes(text: str | None) -> set[int]:
    """The piece indexes a ``pieces_done`` column holds."""
    return {int(part) for part in (text or "").split(",") if part.strip().isdigit()}


def pieces_percent(done: int, planned: int) -> float:
    return PIECES_DONE_PERCENT * done / planned if planned else 0.0


class SqlPieces:
    """What :class:`~videoconverter.jobs.sql.SqlJobStore` adds for split jobs."""

    dialect: Dialect
    _transaction: Callable[[], contextlib.AbstractContextManager[Run]]  # the store's own (see SqlJobStore)

    def plan_pieces(self, job_id: JobId, planned: int) -> None:
        with self._transaction() as run:
            if run(PLAN_PIECES, (planned, time.time(), *_key(job_id))).rowcount == 0:
                raise LookupError(f"job {job_id} has no record")

    def piece_done(self, job_id: JobId, piece_index: int) -> PieceCount:
        with self._transaction() as run:
            row = run(self.dialect.fill(GET_PIECES), _key(job_id)).fetchone()
            if row is None or not row["pieces_planned"]:
                raise LookupError(f"job {job_id} has no plan of pieces")
            planned, done = int(row["pieces_planned"]), done_indexes(row["pieces_done"])
            newly = piece_index not in done
            if newly:
                done.add(piece_index)
                text = ",".join(str(i) for i in sorted(done))
                run(SET_PIECES, (text, pieces_percent(len(done), planned), time.time(), *_key(job_id)))
            return PieceCount(len(done), planned, newly)


def _key(job_id: JobId) -> tuple[str, str, str]:
    return (job_id.key, job_id.source_etag, job_id.rendition)
