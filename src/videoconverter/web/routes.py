"""Jobs, live updates, queues, dead letters, the dashboard's settings and the sign-in cookie."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from videoconverter import dead_letters as dead_letter_ops
from videoconverter.errors import ConfigError, InvalidQueryError
from videoconverter.events import parse_event
from videoconverter.jobs.base import DEFAULT_PAGE_SIZE, JobFilter, JobPage, JobState
from videoconverter.jobs.paging import parse_limit, parse_states
from videoconverter.pipeline import Services
from videoconverter.storage.keys import validate_key
from videoconverter.transcode.package import MANIFEST_MPD
from videoconverter.transcode.produce import marker_name, output_key
from videoconverter.web.auth import TOKEN_COOKIE, is_authorized, token_matches
from videoconverter.web.errors import ApiError
from videoconverter.web.live import LiveJobs, job_json, queue_depths
from videoconverter.web.media import OutputInspector
from videoconverter.web.metrics import exposition, registry_for
from videoconverter.web.uploads import services

router = APIRouter()
Svc = Annotated[Services, Depends(services)]


@router.get("/api/jobs", tags=["jobs"])
async def list_jobs(
    svc: Svc,
    state: Annotated[list[str] | None, Query()] = None,
    rendition: str | None = None,
    key_prefix: str = "",
    limit: str | None = None,
    cursor: str | None = None,
    offset: str | None = None,
) -> dict[str, Any]:
    """Jobs, newest first, one page at a time: ``{"jobs": [...], "limit", "next_cursor", "total"}``.

    ``state`` (repeated, or comma-separated), ``rendition`` and ``key_prefix`` filter; ``limit`` is 1 to 500
    (default 100); ``cursor`` is the previous page's ``next_cursor`` (null on the last page); ``total`` counts
    the matching jobs (null with a key prefix). 400 ``invalid_query`` for a malformed cursor, a limit out of
    range, an unknown state or rendition."""
    if offset is not None:
        raise InvalidQueryError("offset: jobs are paged by cursor: pass the previous page's next_cursor as cursor")
    where = JobFilter(parse_states(state or ()), _known_rendition(svc, rendition), key_prefix)
    size = parse_limit(limit, DEFAULT_PAGE_SIZE)

    def read() -> tuple[JobPage, int | None]:
        return svc.jobs.page(where, size, cursor), svc.jobs.stats().total(where)

    page, total = await run_in_threadpool(read)
    return {"jobs": [job_json(r) for r in page.records], "limit": size, "next_cursor": page.next_cursor, "total": total}


def _known_rendition(svc: Services, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return svc.config.rendition(name).name
    except ConfigError as exc:
        raise InvalidQueryError(f"rendition: {exc.message}") from exc


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request, svc: Svc) -> Response:
    """Prometheus metrics (text, or OpenMetrics when the scraper asks for it): queue depths, dead letters, jobs
    by state, job run times, failures by cause, and the workers' own where they share a multi-process directory.
    Read from counters and queue depths: a scrape never reads the job history. Takes the API token or the
    metrics token, when the server has one."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = registry_for(svc)
    body, content_type = await run_in_threadpool(exposition, registry, request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})


@router.get("/api/jobs/{key:path}", tags=["jobs"])
async def job_detail(key: str, request: Request, svc: Svc) -> dict[str, Any]:
    """Every job of one uploaded key with timings, output (size, probe summary, URLs) and the log lines."""
    validate_key(key)
    inspector: OutputInspector = request.app.state.inspector

    def gather() -> dict[str, Any]:
        records = svc.jobs.find(key)
        lines = svc.jobs.logs(key)
        if not records and not lines:
            raise ApiError(404, "not_found", f"no jobs for key {key!r}")
        jobs = []
        for record in records:
            data = job_json(record)
            data["timings"] = _timings(record.created_at, record.started_at, record.finished_at)
            data["output_object"] = None
            if record.state is JobState.DONE and record.output_url:
                data["output_object"] = _output_object(svc, inspector, record.id.rendition, key, record.id.source_etag)
            jobs.append(data)
        logs = [
            {"key": x.key, "rendition": x.rendition, "time": x.at, "level": x.level, "message": x.message}
            for x in lines
        ]
        return {"key": key, "jobs": jobs, "logs": logs}

    return await run_in_threadpool(gather)


def _output_object(
    svc: Services, inspector: OutputInspector, rendition_name: str, key: str, source_etag: str
) -> dict[str, Any] | None:
    """What the job page shows of a finished output: an MP4 to play, a streaming package (its HLS master
    playlist, and its DASH manifest as ``dash_url`` when it has one), or a poster and the thumbnails' index; None
    when it is gone or belongs to another upload of the key."""
    rendition = svc.config.rendition(rendition_name)
    marker_key = output_key(key, marker_name(rendition))
    info = svc.store.head(rendition.output_bucket, marker_key)
    if info is None or info.metadata.get("source-etag", source_etag) != source_etag:
        return None
    found: dict[str, Any] = {
        "kind": rendition.kind,
        "size": info.size,
        "etag": info.etag,
        "url": f"/api/outputs/{rendition_name}/{marker_key}",
        "poster_url": None,
        "probe": None,
    }
    if rendition.kind == "hls":
        mpd_key = output_key(key, MANIFEST_MPD)
        has_dash = svc.store.head(rendition.output_bucket, mpd_key) is not None
        found["dash_url"] = f"/api/outputs/{rendition_name}/{mpd_key}" if has_dash else None
    if rendition.kind == "mp4":
        found["poster_url"] = f"/api/posters/{rendition_name}/{key}"
        found["probe"] = inspector.summary(rendition.output_bucket, info)
    elif rendition.kind == "thumbnails":
        index = json.loads(b"".join(svc.store.read_range(rendition.output_bucket, marker_key, 0, info.size)))
        found["poster_url"] = f"/api/outputs/{rendition_name}/{output_key(key, index['poster']['name'])}"
    return found


def _timings(created: float, started: float | None, finished: float | None) -> dict[str, float | None]:
    return {
        "waited_seconds": round(max(0.0, started - created), 3) if started is not None else None,
        "ran_seconds": round(finished - started, 3) if finished is not None and started is not None else None,
    }


@router.get("/api/events", tags=["jobs"])
async def events(request: Request) -> StreamingResponse:
    """Server-Sent Events: ``jobs`` (the jobs that changed), ``queues`` (depths), ``reload``; heartbeats."""
    live: LiveJobs = request.app.state.live
    return StreamingResponse(
        live.stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/api/queues", tags=["queues"])
async def queues(svc: Svc) -> dict[str, Any]:
    """Per rendition: ``{"rendition", "queue", "visible", "in_flight", "delayed", "dead_letters"}``."""
    return {"queues": await run_in_threadpool(queue_depths, svc)}


@router.get("/api/dead-letters", tags=["dead letters"])
async def dead_letters(svc: Svc, rendition: str | None = None) -> dict[str, Any]:
    """Dead-lettered messages: ``{"rendition", "message_id", "key", "reason", "dead_lettered_at", "body"}``."""
    chosen = [svc.config.rendition(rendition)] if rendition else list(svc.config.renditions)

    def gather() -> list[dict[str, Any]]:
        out = []
        for r in chosen:
            for letter in svc.broker.dead_letters(r.queue):
                out.append(
                    {
                        "rendition": r.name,
                        "message_id": letter.message_id,
                        "key": _key_of(letter.body),
                        "reason": letter.reason,
                        "dead_lettered_at": letter.dead_lettered_at,
                        "body": letter.body,
                    }
                )
        return out

    return {"dead_letters": await run_in_threadpool(gather)}


def _key_of(body: str) -> str | None:
    try:
        records = parse_event(body)
    except Exception:
        return None
    return records[0].key if records else None


@router.post("/api/dead-letters/redrive", tags=["dead letters"])
async def redrive(svc: Svc, rendition: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    """Move one rendition's (or every) dead-lettered message back to its queue, or only the one whose id is
    ``message_id`` (404 when there is none): ``{"redriven": [{"rendition", "redriven", "jobs_requeued"}]}`` as
    ``dlq redrive --json``."""
    chosen = [svc.config.rendition(rendition)] if rendition else list(svc.config.renditions)
    moved = await run_in_threadpool(dead_letter_ops.redrive, svc, chosen, message_id)
    if message_id is not None and not any(item["redriven"] for item in moved):
        raise ApiError(404, "not_found", f"no dead letter with id {message_id!r}")
    return {"redriven": moved}


@router.get("/api/settings", tags=["dashboard"])
async def settings(request: Request, svc: Svc) -> dict[str, Any]:
    """What the dashboard needs: renditions, accepted suffixes, the upload limit, whether a token is needed."""
    config = svc.config
    return {
        "renditions": [{"name": r.name, "short_side": r.short_side} for r in config.renditions],
        "input_bucket": config.input_bucket,
        "suffixes": list(config.input_suffixes),
        "max_upload_bytes": config.web.max_upload_bytes,
        "token_required": bool(config.web.api_token),
        "authorized": is_authorized(request, config.web),
    }


class SignIn(BaseModel):
    token: str


@router.get("/api/session", tags=["dashboard"])
async def session(request: Request) -> dict[str, bool]:
    """Whether the server needs a token and whether this request has it: ``{"token_required", "authorized"}``.
    Open to all, so that the page can ask before it signs in."""
    web = request.app.state.config.web
    return {"token_required": bool(web.api_token), "authorized": is_authorized(request, web)}


@router.post("/api/session", status_code=204, tags=["dashboard"])
async def sign_in(body: SignIn, request: Request) -> Response:
    """Check the token and keep it in an HttpOnly cookie, so that ``<video>`` and ``<img>`` carry it."""
    expected: str = request.app.state.config.web.api_token
    if expected and not token_matches(body.token, expected):
        raise ApiError(401, "unauthorized", "the API token is wrong")
    response = Response(status_code=204)
    response.set_cookie(
        TOKEN_COOKIE, body.token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.delete("/api/session", status_code=204, tags=["dashboard"])
async def sign_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(TOKEN_COOKIE)
    return response
