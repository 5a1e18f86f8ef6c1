"""What one client may hold, so that slow or silent clients cannot freeze the server.

- Its request line and headers must arrive within ``read_timeout_seconds`` (:class:`DeadlineH11Protocol`), or
  it gets a 408 and its connection is closed; a connection that sends nothing is closed as well.
- Its request body may pause for at most as long (:func:`timed_receive`), or the request ends with a 408.
- At most ``max_concurrent_uploads`` uploads run at once (:class:`UploadSlots`); one more gets a 429. Their
  threads come from a pool of their own, so uploads never take the threads that the rest of the API runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import anyio
import h11
from starlette.types import Message, Receive
from uvicorn.protocols.http.h11_impl import H11Protocol

from videoconverter.web.errors import ApiError, ReadTimeout

THREADS_PER_UPLOAD = 2  # the store's writer, and a hand-over to it that waits while the store is slow
RETRY_AFTER_SECONDS = 10


class UploadSlots:
    """At most ``limit`` uploads at once. Create it in the event loop that serves the uploads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.threads = anyio.CapacityLimiter(THREADS_PER_UPLOAD * limit)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a slot for the ``with`` block; raises a 429 (with ``Retry-After``) when none is free."""
        # No lock: the event loop runs one check-and-take at a time.
        if self.in_use >= self.limit:
            raise ApiError(
                429,
                "busy",
                f"{self.limit} uploads are in progress, the most this server takes at once: try again shortly",
                {"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},  # its body stays unread
            )
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


def timed_receive(receive: Receive, seconds: float) -> Receive:
    """``receive`` that raises :class:`ReadTimeout` when a body part takes longer than ``seconds``. Once the body
    is complete it waits without limit, as that wait is for a disconnect (an event stream's, say)."""
    body_done = False

    async def receive_within() -> Message:
        nonlocal body_done
        if body_done:
            return await receive()
        try:
            async with asyncio.timeout(seconds):
                message = await receive()
        except TimeoutError:
            raise ReadTimeout(seconds) from None
        body_done = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return receive_within


def _json_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nx-content-type-options: nosniff\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers, counted from the moment the
    connection is ready for a request (opened, or done with the previous one). uvicorn has none: a client that
    sends a byte now and then, or nothing at all, holds its connection for ever. Its protocol errors (400) are
    JSON like every other error."""

    header_timeout_seconds = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_json_response(400, "Bad Request", "bad_request", msg))
        self.transport.close()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.header_timeout_seconds, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return  # a request is being answered: its body has a timeout of its own
        partial, _closed = self.conn.trailing_data
        if partial and self.conn.our_state is h11.IDLE:
            seconds = f"{self.header_timeout_seconds:g}"
            message = f"the request line and headers took more than {seconds} s: send them at once"
            self.transport.write(_json_response(408, "Request Timeout", "timeout", message))
        self.transport.close()


def http_protocol(header_timeout_seconds: float) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with that deadline for headers."""

    class Configured(DeadlineH11Protocol):
        pass

    Configured.header_timeout_seconds = header_timeout_seconds
    return Configured
