"""Streaming uploads: ``PUT /api/uploads/{key}`` with the raw file as the body, of any size, in flat memory.

The event loop reads the body and hands it in 1 MiB batches through a bounded pipe to a thread that runs the
store's ``put_stream``; the store's write notifies the ingest, which queues the jobs (workers need not run).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from typing import Annotated, Any, BinaryIO, cast

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.requests import ClientDisconnect

from videoconverter.config import Config
from videoconverter.jobs.base import JobRecord
from videoconverter.pipeline import Services, prepare_upload
from videoconverter.progress import human_bytes
from videoconverter.storage.base import ObjectInfo
from videoconverter.storage.keys import upload_key
from videoconverter.transcode.subtitles_text import MAX_CAPTION_BYTES
from videoconverter.web.errors import ApiError
from videoconverter.web.limits import UploadSlots
from videoconverter.web.live import job_json

router = APIRouter()
BATCH_BYTES = 1024 * 1024
PIPE_BATCHES = 4  # at most this many batches wait between the event loop and the writer thread
SIGNATURE_BYTES = 12
_WAIT_SECONDS = 0.2


class UploadAborted(Exception):
    """The upload stopped before its end (client gone, too large); nothing is stored."""


class ChunkPipe:
    """A bounded pipe of byte batches, read like a file by the writer thread."""

    def __init__(self, max_batches: int = PIPE_BATCHES) -> None:
        self._batches: queue.Queue[bytes | None] = queue.Queue(max_batches)
        self._buffer = bytearray()
        self._eof = False
        self._aborted: BaseException | None = None
        self.reader_done = threading.Event()

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            if self._aborted is not None:
                raise UploadAborted(str(self._aborted))
            try:
                batch = self._batches.get(timeout=_WAIT_SECONDS)
            except queue.Empty:
                continue
            if batch is None:
                self._eof = True
            else:
                self._buffer += batch
        count = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def put(self, batch: bytes | None) -> None:
        """Hand over a batch (None: the end), blocking while the pipe is full. Called from a worker thread."""
        while not self.reader_done.is_set():
            try:
                self._batches.put(batch, timeout=_WAIT_SECONDS)
                return
            except queue.Full:
                continue
        raise UploadAborted("the writer stopped early")

    def abort(self, reason: BaseException) -> None:
        self._aborted = reason


def looks_like_video(head: bytes) -> bool:
    """Whether the first bytes are those of an MP4/MOV (an ISO BMFF box) or a Matroska/WebM (EBML) file."""
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return True
    return len(head) >= 8 and head[4:8] in {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}


def upload_limit(config: Config, key: str) -> int:
    """The most bytes an upload under ``key`` may have: a sidecar caption is small text (its parser's limit)."""
    if config.matches_caption(key):
        return min(config.web.max_upload_bytes, MAX_CAPTION_BYTES)
    return config.web.max_upload_bytes


def services(request: Request) -> Services:
    svc: Services = request.app.state.svc
    return svc


@router.put("/api/uploads/{key:path}", status_code=201, tags=["uploads"])
async def upload(key: str, request: Request, svc: Annotated[Services, Depends(services)]) -> dict[str, Any]:
    """Store the request body under ``key`` in the input bucket (streamed), which queues one job per rendition.

    Answers ``{"bucket", "key", "size", "etag", "jobs": [...]}``. Errors: 400 bad key or empty body, 401 token,
    408 the body stalled, 411/413 size, 415 not a video (by suffix or by content), 429 too many uploads at once.
    """
    config = svc.config
    key = upload_key(key)  # NFC, no invisible characters, segments that fit a file name: before any byte is read
    if not config.matches_input(key) and not config.matches_caption(key):
        raise ApiError(
            415,
            "unsupported_type",
            f"{key!r} does not end with {' or '.join(config.event_suffixes)}: only videos and their captions",
        )
    limit = upload_limit(config, key)
    declared = _content_length(request)
    if declared is not None and declared > limit:
        raise ApiError(413, "too_large", f"the upload is {human_bytes(declared)}; the limit is {human_bytes(limit)}")
    await anyio.to_thread.run_sync(prepare_upload, svc, config.input_bucket)  # the embedded store makes it
    slots: UploadSlots = request.app.state.upload_slots
    with slots.hold():
        info = await _store(request, svc, key, declared, slots.threads)
    records: list[JobRecord] = await anyio.to_thread.run_sync(svc.jobs.find, key)
    jobs = [job_json(r) for r in records if r.id.source_etag == info.etag]
    return {"bucket": info.bucket, "key": info.key, "size": info.size, "etag": info.etag, "jobs": jobs}


async def _store(
    request: Request, svc: Services, key: str, declared: int | None, threads: anyio.CapacityLimiter
) -> ObjectInfo:
    """Stream the body through a :class:`ChunkPipe` into the store; nothing is stored unless all of it arrives.
    Its threads come from ``threads``, so uploads never take those of the rest of the API."""
    config = svc.config
    limit = upload_limit(config, key)
    caption = config.matches_caption(key)  # sidecar text: no video signature to check
    pipe = ChunkPipe()
    writer: asyncio.Task[ObjectInfo] | None = None
    received = 0
    batch = bytearray()

    def write() -> ObjectInfo:
        try:
            return svc.store.put_stream(config.input_bucket, key, cast(BinaryIO, pipe), size_hint=declared)
        finally:
            pipe.reader_done.set()

    async def hand_over(part: bytes | None) -> None:
        await anyio.to_thread.run_sync(pipe.put, part, limiter=threads)

    async def start_writer() -> None:
        nonlocal writer
        if config.web.check_content and not caption and not looks_like_video(bytes(batch[:SIGNATURE_BYTES])):
            raise ApiError(
                415, "not_a_video", "the file does not start like an MP4, MOV, MKV or WebM video: nothing was stored"
            )
        writer = asyncio.get_running_loop().create_task(anyio.to_thread.run_sync(write, limiter=threads))

    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(413, "too_large", f"the upload is over the limit of {human_bytes(limit)}")
            batch += chunk
            if writer is None and len(batch) >= SIGNATURE_BYTES:
                await start_writer()
            if writer is not None and len(batch) >= BATCH_BYTES:
                await hand_over(bytes(batch))
                batch.clear()
        if received == 0:
            raise ApiError(400, "empty", "the upload is empty: send the file as the request body")
        if writer is None:
            await start_writer()
        assert writer is not None
        if batch:
            await hand_over(bytes(batch))
        await hand_over(None)
        return await writer
    except BaseException as exc:
        if writer is not None:
            pipe.abort(exc)
            with contextlib.suppress(BaseException):
                await writer
        if isinstance(exc, ClientDisconnect):
            raise ApiError(400, "incomplete", "the client went away before the end of the upload") from exc
        raise


def _content_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length is not a number") from None
