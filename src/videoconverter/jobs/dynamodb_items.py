"""How the DynamoDB job store lays out its items: attribute values, index keys, records.

Items of the one table (partition key ``pk``, sort key ``sk``):

- a job: ``pk`` = the upload key, ``sk`` = ``job#RENDITION#ETAG``, one attribute per JobRecord field, and the
  index attributes: ``g_all`` (``job``), ``g_created`` and ``g_updated`` (``TIME#KEY#ETAG#RENDITION``, TIME
  the epoch seconds with six decimals, zero-padded, so strings sort as times do) and ``g_rendition_state``
  (``RENDITION#STATE``);
- a log line: ``pk`` = the upload key, ``sk`` = ``line#RENDITION#NUMBER`` (NUMBER zero-padded: the line's place
  among those its key and rendition were given); ``lines#RENDITION`` holds how many were given. Lines written by
  earlier versions are ``log#NANOSECONDS#RANDOM``;
- the counters of a rendition: ``pk`` = ``/counters`` (no upload key starts with ``/``), ``sk`` = the rendition,
  one number attribute per counter (:mod:`videoconverter.jobs.counters`).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, NamedTuple

from videoconverter.jobs.base import JobId, JobLogLine, JobRecord, JobState
from videoconverter.jobs.paging import Position
from videoconverter.jobs.timeline import Timeline

JOB_PREFIX = "job#"
LINE_PREFIX = "line#"
LINES_PREFIX = "lines#"
LEGACY_LOG_PREFIX = "log#"
COUNTERS_PK = "/counters"
JOB_PARTITION = "job"
#: Attributes that differ from their JobRecord field or are reserved words in expressions.
NAMES = {"#state": "state", "#error": "error", "#key": "key", "#etag": "source_etag", "#rendition": "rendition"}
#: Python values for attributes or expression values: ``str`` becomes S, ``int`` and ``float`` become N.
Values = dict[str, str | float]


class IndexEntry(NamedTuple):
    """One item of a keys-only index: its place (the index's sort key) and the job it names."""

    sort: str
    job_id: JobId

    @property
    def position(self) -> Position:
        return Position(
            float(self.sort.split("#", 1)[0]), self.job_id.key, self.job_id.source_etag, self.job_id.rendition
        )


def s(value: str) -> dict[str, str]:
    return {"S": str(value)}


def n(value: float) -> dict[str, str]:
    """A DynamoDB number: a plain decimal string (no exponent), exact for a float's shortest repr."""
    return {"N": format(Decimal(repr(value)), "f")}


def attributes(values: Values) -> dict[str, dict[str, str]]:
    """Python values as DynamoDB attribute values: ``str`` as S, ``int`` and ``float`` as N."""
    return {name: s(value) if isinstance(value, str) else n(value) for name, value in values.items()}


def job_key(job_id: JobId) -> dict[str, dict[str, str]]:
    return {"pk": s(job_id.key), "sk": s(f"{JOB_PREFIX}{job_id.rendition}#{job_id.source_etag}")}


def job_id_of(item: dict[str, Any]) -> JobId:
    """The job a job item (or an index entry, which carries ``pk`` and ``sk``) names."""
    _, rendition, etag = item["sk"]["S"].split("#", 2)
    return JobId(item["pk"]["S"], etag, rendition)


def index_time(at: float) -> str:
    return f"{at:017.6f}"


def place(at: Position) -> str:
    """The ``g_created`` / ``g_updated`` string of a position: ``TIME#KEY#ETAG#RENDITION``."""
    return f"{index_time(at.at)}#{at.key}#{at.source_etag}#{at.rendition}"


def place_of(job_id: JobId, at: float) -> str:
    return place(Position(at, job_id.key, job_id.source_etag, job_id.rendition))


def identity(job_id: JobId) -> Values:
    return {"key": job_id.key, "source_etag": job_id.source_etag, "rendition": job_id.rendition}


def index_values(job_id: JobId, state: JobState, created_at: float, updated_at: float) -> Values:
    """The index attributes of a job with these times and state."""
    return {
        "g_all": JOB_PARTITION,
        "g_created": place_of(job_id, created_at),
        "g_updated": place_of(job_id, updated_at),
        "g_rendition_state": f"{job_id.rendition}#{state.value}",
    }


def records(items: Iterable[dict[str, Any]]) -> list[JobRecord]:
    """The records of job items that hold a job. An item without a state is left out: moto's server (unlike
    DynamoDB, whose writes are atomic) lets a concurrent read see the item an Update creates before the update's
    attributes are set, and that half-made item is no job yet."""
    return [record(item) for item in items if "state" in item]


def record(item: dict[str, Any]) -> JobRecord:
    def text(name: str) -> str:
        return str(item[name]["S"]) if name in item else ""

    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return JobRecord(
        id=JobId(text("key"), text("source_etag"), text("rendition")),
        state=JobState(text("state")),
        attempts=int(number("attempts") or 0),
        created_at=number("created_at") or 0.0,
        updated_at=number("updated_at") or 0.0,
        started_at=number("started_at"),
        finished_at=number("finished_at"),
        progress_percent=number("progress_percent") or 0.0,
        output_url=text("output_url"),
        error=text("error"),
        stderr_tail=text("stderr_tail"),
        note=text("note"),
        sequencer=text("sequencer"),
        output_size=int(item["output_size"]["N"]) if "output_size" in item else None,
        quality=text("quality"),
        timeline=Timeline.from_text(text("timeline")),
        pieces_planned=int(number("pieces_planned") or 0),
        pieces_done=len(item["pieces_done"]["NS"]) if "pieces_done" in item else 0,  # see dynamodb_pieces
        holder=text("holder"),
    )


def log_line(item: dict[str, Any]) -> tuple[int | None, JobLogLine]:
    """A log line item with its number (None for a line of an earlier version)."""
    seq = int(item["seq"]["N"]) if "seq" in item else None
    line = JobLogLine(
        item["key"]["S"], item["rendition"]["S"], float(item["at"]["N"]), item["level"]["S"], item["message"]["S"]
    )
    return seq, line


def line_sort_key(rendition: str, seq: int) -> str:
    return f"{LINE_PREFIX}{rendition}#{seq:010d}"
