"""Outputs for a browser: downloads with HTTP range requests (so a ``<video>`` can seek), poster frames and a
probe summary of each output."""

from __future__ import annotations

import collections
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from videoconverter.errors import ObjectNotFoundError, VideoConverterError
from videoconverter.pipeline import Services
from videoconverter.renditions import Rendition
from videoconverter.storage.base import ObjectInfo
from videoconverter.storage.keys import validate_key
from videoconverter.transcode.poster import preview_args
from videoconverter.transcode.probe import probe
from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg
from videoconverter.web import streaming
from videoconverter.web.errors import ApiError
from videoconverter.web.uploads import services

router = APIRouter(tags=["outputs"])
HEAD_BYTES = 8 * 1024 * 1024  # outputs are +faststart MP4s: the index and first frames are at the start
POSTER_TIMEOUT_SECONDS = 20.0
POSTER_WIDTH = 640
CACHE_ENTRIES = 64
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
MAX_POSITION_DIGITS = 18  # past the end of any object, and far within int()'s limit of 4300 digits


@dataclass(frozen=True)
class ByteRange:
    start: int
    length: int


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for within ``size`` bytes; None to send the whole object (no header, a
    malformed one, or several ranges, which a server may answer in full). Raises 416 when unsatisfiable."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = _position(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        start = max(0, size - suffix)
        return ByteRange(start, size - start)
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or (last and _position(last) < start):
        raise _unsatisfiable(size)
    return ByteRange(start, end - start + 1)


def _position(digits: str) -> int:
    """A byte position of a ``Range`` header; one too long for any object counts as beyond every end."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= MAX_POSITION_DIGITS else 10**MAX_POSITION_DIGITS


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(416, "range_not_satisfiable", f"the object has {size} bytes", {"Content-Range": f"bytes */{size}"})


def _located(svc: Services, rendition_name: str, key: str) -> tuple[Rendition, ObjectInfo]:
    rendition = svc.config.rendition(rendition_name)
    validate_key(key)
    info = svc.store.head(rendition.output_bucket, key)
    if info is None:
        raise ApiError(404, "not_found", f"no {rendition.name} output for {key!r} (yet)")
    return rendition, info


OUTPUT_PATH = "/api/outputs/{rendition}/{key:path}"


# Two registrations, so the OpenAPI schema gets one operation id for each method.
@router.get(OUTPUT_PATH, operation_id="get_output")
@router.head(OUTPUT_PATH, operation_id="head_output")
async def output(
    rendition: str, key: str, request: Request, svc: Annotated[Services, Depends(services)], download: bool = False
) -> Response:
    """The output's bytes; ``Range: bytes=A-B`` answers 206 with that part, 416 when unsatisfiable. Manifests,
    playlists, captions and JSON go gzip-compressed when ``Accept-Encoding`` allows it and no range is asked."""
    where, info = await run_in_threadpool(_located, svc, rendition, key)
    wanted = parse_range(request.headers.get("range"), info.size)
    part = wanted or ByteRange(0, info.size)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(part.length),
        "ETag": f'"{info.etag}"',
        "Cache-Control": "private, max-age=0",
    }
    if download:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(Path(key).name, safe='')}"
    media_type = streaming.media_type(key, packaged=where.kind == "hls")
    if streaming.compressible(key, info.size):
        headers["Vary"] = "Accept-Encoding"
        if wanted is None and streaming.accepts_gzip(request.headers.get("accept-encoding")):
            return await _compressed(svc, where.output_bucket, info, headers, media_type, request.method)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {part.start}-{part.start + part.length - 1}/{info.size}"
    status = 206 if wanted is not None else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    chunks = await run_in_threadpool(svc.store.read_range, where.output_bucket, key, part.start, part.length)
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=media_type)


async def _compressed(
    svc: Services, bucket: str, info: ObjectInfo, headers: dict[str, str], media_type: str, method: str
) -> Response:
    """The whole object gzip-compressed; HEAD compresses it too, so its ``Content-Length`` is the GET's. The
    compressed body is another representation: its own ETag, and no ranges into it."""
    body = streaming.gzipped(await run_in_threadpool(_read_all, svc, bucket, info))
    headers = {**headers, "Content-Encoding": "gzip", "Content-Length": str(len(body)), "ETag": f'"{info.etag}-gz"'}
    del headers["Accept-Ranges"]
    return Response(b"" if method == "HEAD" else body, headers=headers, media_type=media_type)


def _read_all(svc: Services, bucket: str, info: ObjectInfo) -> bytes:
    try:
        return b"".join(svc.store.read_range(bucket, info.key, 0, info.size))
    except ObjectNotFoundError as exc:
        raise ApiError(404, "not_found", f"the output {info.key!r} vanished") from exc


@router.get("/api/posters/{rendition}/{key:path}")
async def poster(rendition: str, key: str, request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    """A JPEG of the output's first frame, at most 640 pixels wide (made once, then cached)."""
    inspector: OutputInspector = request.app.state.inspector
    where, info = await run_in_threadpool(_located, svc, rendition, key)
    jpeg = await run_in_threadpool(inspector.poster, where.output_bucket, info)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


class OutputInspector:
    """Probe summaries and poster frames of outputs, from the first 8 MiB of each, cached by ETag."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._lock = threading.Lock()
        self._summaries: collections.OrderedDict[tuple[str, str, str], dict[str, Any]] = collections.OrderedDict()
        self._posters: collections.OrderedDict[tuple[str, str, str], bytes] = collections.OrderedDict()

    def summary(self, bucket: str, info: ObjectInfo) -> dict[str, Any]:
        """``{"container", "duration_seconds", "width", "height", "video_codec", "frame_rate", "has_audio"}``,
        or ``{"error": ...}`` when the output cannot be probed."""
        ident = (bucket, info.key, info.etag)
        with self._lock:
            if ident in self._summaries:
                return self._summaries[ident]
        with tempfile.TemporaryDirectory(prefix="videoconverter-web-") as tmp:
            head = self._head(bucket, info, Path(tmp))
            try:
                media = probe(head, self.svc.config.limits)
                width, height = media.display_size
                found: dict[str, Any] = {
                    "container": media.demuxer,
                    "duration_seconds": round(media.duration_seconds or 0.0, 3),
                    "width": width,
                    "height": height,
                    "video_codec": media.video_codec,
                    "frame_rate": round(media.frame_rate, 3) if media.frame_rate else None,
                    "has_audio": media.has_audio,
                }
            except VideoConverterError as exc:
                found = {"error": exc.message}
        self._remember(self._summaries, ident, found)
        return found

    def poster(self, bucket: str, info: ObjectInfo) -> bytes:
        ident = (bucket, info.key, info.etag)
        with self._lock:
            if ident in self._posters:
                return self._posters[ident]
        with tempfile.TemporaryDirectory(prefix="videoconverter-web-") as tmp:
            workdir = Path(tmp)
            head = self._head(bucket, info, workdir)
            try:
                jpeg = self._extract_poster(head, workdir / "poster.jpg")
            except (VideoConverterError, OSError) as exc:
                raise ApiError(422, "no_poster", "no frame could be extracted from this output") from exc
        self._remember(self._posters, ident, jpeg)
        return jpeg

    def _extract_poster(self, head: Path, destination: Path) -> bytes:
        """Probe the output's start, then take its first frame with the converter's own hardened input
        arguments (:func:`preview_args`) and runner (its own process group, killed on timeout, a minimal
        environment)."""
        limits = self.svc.config.limits
        args = preview_args(ffmpeg_executable(), head, probe(head, limits), limits, destination, POSTER_WIDTH)
        run_ffmpeg(args, workdir=destination.parent, timeout_seconds=POSTER_TIMEOUT_SECONDS)
        return destination.read_bytes()

    def _head(self, bucket: str, info: ObjectInfo, workdir: Path) -> Path:
        path = workdir / "head.mp4"
        try:
            with open(path, "wb") as out:
                for chunk in self.svc.store.read_range(bucket, info.key, 0, min(info.size, HEAD_BYTES)):
                    out.write(chunk)
        except ObjectNotFoundError as exc:
            raise ApiError(404, "not_found", f"the output {info.key!r} vanished") from exc
        return path

    def _remember(self, cache: collections.OrderedDict[Any, Any], ident: tuple[str, str, str], value: Any) -> None:
        with self._lock:
            cache[ident] = value
            cache.move_to_end(ident)
            while len(cache) > CACHE_ENTRIES:
                cache.popitem(last=False)
