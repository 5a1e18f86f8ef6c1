"""The pieces of a split job (chunking) on DynamoDB: ``pieces_planned`` (a number) and ``pieces_done`` (a number
set of piece indexes) on the job's item.

Counting a piece is one conditional update: ``ADD`` the index to the set on condition that the set does not
hold it yet, returning the item as written. DynamoDB applies the writes to an item one at a time, so of the
workers counting a job's pieces at once exactly one sees the set reach the plan; a piece counted again fails
the condition and changes nothing.
"""

from __future__ import annotations

import time

from videoconverter.jobs.base import JobId, JobState, PieceCount
from videoconverter.jobs.dynamodb_client import Table
from videoconverter.jobs.dynamodb_items import index_values, job_key, n

#: Progress of a split job whose pieces are all done, until the join finishes it (100).
PIECES_DONE_PERCENT = 99.0


class DynamoDBPieces:
    """What :class:`~videoconverter.jobs.dynamodb.DynamoDBJobStore` adds for split jobs."""

    _db: Table

    def plan_pieces(self, job_id: JobId, planned: int) -> None:
        written = self._db.conditional(
            "update_item",
            Key=job_key(job_id),
            UpdateExpression="SET pieces_planned = :planned",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":planned": n(planned)},
        )
        if written is None:
            raise LookupError(f"job {job_id} has no record")

    def piece_done(self, job_id: JobId, piece_index: int) -> PieceCount:
        written = self._db.conditional(
            "update_item",
            Key=job_key(job_id),
            UpdateExpression="ADD pieces_done :piece",
            ConditionExpression="attribute_exists(pieces_planned) AND NOT contains(pieces_done, :index)",
            ExpressionAttributeValues={":piece": {"NS": [str(piece_index)]}, ":index": n(piece_index)},
            ReturnValues="ALL_NEW",
        )
        if written is not None:
            item = written["Attributes"]
            count = PieceCount(len(item["pieces_done"]["NS"]), int(item["pieces_planned"]["N"]), True)
            self._progress(job_id, item, count)
            return count
        item = self._db.call("get_item", Key=job_key(job_id), ConsistentRead=True).get("Item")
        if item is None or "pieces_planned" not in item:
            raise LookupError(f"job {job_id} has no plan of pieces")
        done = len(item["pieces_done"]["NS"]) if "pieces_done" in item else 0
        return PieceCount(done, int(item["pieces_planned"]["N"]), False)

    def _progress(self, job_id: JobId, item: dict[str, dict[str, str]], count: PieceCount) -> None:
        """The share of pieces done, while the job runs (a later count may land first: progress may step back a
        piece for a moment, never past what is done)."""
        now = time.time()
        created = float(item["created_at"]["N"]) if "created_at" in item else now
        self._db.conditional(
            "update_item",
            Key=job_key(job_id),
            UpdateExpression="SET progress_percent = :percent, updated_at = :now, g_updated = :g_updated",
            ConditionExpression="#state = :running",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":percent": n(PIECES_DONE_PERCENT * count.done / count.planned),
                ":now": n(now),
                ":running": {"S": JobState.RUNNING.value},
                ":g_updated": {"S": str(index_values(job_id, JobState.RUNNING, created, now)["g_updated"])},
            },
        )
