"""What a worker makes of a delivery that needs no conversion, since delivery is at least once.

An event may come again after its job is done (its output says which upload it was made from), after a newer
upload of the key replaced the object (the newer one's own event converts it), or while another message's
delivery converts the same upload (a second copy of the event: S3 may send one twice, and `up` queues an upload
it finds without a job while its own event is on the way). Each ends the delivery without FFmpeg.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from videoconverter.brokers.base import Delivery
from videoconverter.consumer import ACKED, Settlement
from videoconverter.events import ObjectCreated
from videoconverter.jobs.base import JobRecord
from videoconverter.jobs.log import JobLog


@dataclass(frozen=True)
class Outcome:
    """How one upload's conversion ended, for its job record."""

    output_url: str
    note: str
    quality: str = ""  # a VMAF target's search, as JSON text for the job store
    output_size: int | None = None  # bytes of the marker written (None: nothing written now; read from the store)
    pending: bool = False  # split into pieces (chunking/): the join finishes the job


def already_handled(record: ObjectCreated, metadata: Mapping[str, str] | None, marker_url: str) -> Outcome | None:
    """The outcome when the rendition's output (its marker's ``metadata``; None: no output) shows this upload
    converted, or a newer upload's; None when there is work to do."""
    if metadata is None:
        return None
    if metadata.get("source-etag") == record.etag:
        return Outcome(marker_url, "output already existed for this upload (event delivered again)")
    newer = metadata.get("source-sequencer", "")
    if newer and not record.is_newer_than(newer):
        return Outcome("", "superseded: the output of a newer upload of this key exists")
    return None


def superseded(job_log: JobLog, current_etag: str) -> Outcome:
    """The outcome when the object was replaced since this event (its ETag is now ``current_etag``)."""
    note = f"superseded: the object was replaced (now etag {current_etag}); its own event converts it"
    job_log.info(note)
    return Outcome("", note)


def drop_duplicate(running: JobRecord, delivery: Delivery, job_log: JobLog) -> Settlement:
    """A copy of an event whose job another message holds (``running``, as the refused claim returned it):
    acknowledged, not converted twice. Nothing is lost: the holder's message stays leased until the job is
    recorded and comes back if its worker dies; a holder quiet for a visibility timeout loses the job to any
    message (``JobStore.start``)."""
    quiet = max(0.0, time.time() - running.updated_at)
    job_log.info(
        f"duplicate event (message {delivery.message_id}): the job is running for message {running.holder}, "
        f"updated {quiet:.0f} s ago; this copy is dropped"
    )
    return ACKED
