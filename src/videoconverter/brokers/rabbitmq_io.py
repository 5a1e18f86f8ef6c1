"""One AMQP connection on its own I/O thread, for the RabbitMQ broker.

pika's ``BlockingConnection`` is not thread-safe and answers server heartbeats only inside its own calls. The
thread here holds the connection, runs every operation other threads submit (:meth:`AmqpConnection.call`),
calls the owner back every round (the broker returns expired leases then, and hands consumed messages to the
receives waiting for them) and keeps the connection alive while workers run FFmpeg. Between rounds it sleeps in
``process_data_events`` until a frame arrives, an operation is submitted (``add_callback_threadsafe`` wakes it),
the owner's next deadline comes or :data:`IDLE_ROUND_SECONDS` pass; pika's own timers answer heartbeats
meanwhile. After a lost connection it reconnects with back-off and tells the owner (``on_lost``), whose leases
died with it.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queues
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any, TypeVar

import pika
import pika.exceptions

from videoconverter.errors import BrokerUnavailableError, ConfigError, VideoConverterError

log = logging.getLogger("videoconverter.brokers.rabbitmq")
T = TypeVar("T")

#: The longest the I/O thread sleeps between rounds when the owner names no deadline. Nothing waits on it (frames,
#: operations and pika's heartbeat timers wake the thread): it bounds how late a forgotten deadline could be.
IDLE_ROUND_SECONDS = 5.0
OPERATION_TIMEOUT_SECONDS = 60.0
RECONNECT_MAX_DELAY_SECONDS = 30.0


class AmqpConnection:
    """The connection, its three long-lived channels and the thread that alone may touch them."""

    def __init__(
        self,
        parameters: Any,
        display_url: str,
        *,
        on_tick: Callable[[], float | None],
        on_lost: Callable[[], None],
    ) -> None:
        """``on_tick`` is called every round and returns the seconds until it needs calling again (None: no
        deadline); ``on_lost`` when the connection or the work channel is gone, with whatever they held."""
        self.display_url = display_url
        self._parameters = parameters
        self._on_tick = on_tick
        self._on_lost = on_lost
        self._operations: queues.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queues.SimpleQueue()
        self.stopping = threading.Event()
        self.connection: Any = self._connect()
        self._control: Any = None  # publishes (with confirms) and declarations
        self._probe: Any = None  # passive declarations, whose 404 closes the channel
        self.work: Any = None  # basic.get, consumers, ack and reject: it holds the leases
        self._reconnect_delay = 1.0
        self._thread = threading.Thread(target=self._run, name="rabbitmq-io", daemon=True)
        self._thread.start()

    def call(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` on the I/O thread and return its result (or raise its error)."""
        if self.stopping.is_set():
            raise VideoConverterError("the broker is closed")
        if threading.current_thread() is self._thread:
            return operation()
        future: Future[T] = Future()
        self._operations.put((operation, future))
        self._wake()
        try:
            return future.result(timeout=OPERATION_TIMEOUT_SECONDS)
        except FutureTimeoutError as exc:
            future.cancel()
            raise BrokerUnavailableError(
                f"RabbitMQ at {self.display_url} did not answer within {OPERATION_TIMEOUT_SECONDS:.0f} s"
            ) from exc

    # --- channels (I/O thread only) ---------------------------------------------------------------------

    def control_channel(self) -> Any:
        if self._control is None or not self._control.is_open:
            self._control = self.connection.channel()
            self._control.confirm_delivery()
        return self._control

    def probe_channel(self) -> Any:
        if self._probe is None or not self._probe.is_open:
            self._probe = self.connection.channel()
        return self._probe

    def work_channel(self) -> Any:
        if self.work is None or not self.work.is_open:
            self._on_lost()  # leases died with the old channel
            self.work = self.connection.channel()
        return self.work

    # --- the thread -------------------------------------------------------------------------------------

    def _wake(self) -> None:
        connection = self.connection
        with contextlib.suppress(Exception):  # closed: the I/O thread is reconnecting and polls anyway
            connection.add_callback_threadsafe(_nothing)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                if not self.connection.is_open:
                    self._reconnect()
                    continue
                self._run_operations()
                due = self._on_tick()
                pause = IDLE_ROUND_SECONDS if due is None else min(max(0.0, due), IDLE_ROUND_SECONDS)
                self.connection.process_data_events(time_limit=pause)
                self._on_tick()  # what the dispatch just pushed, before any operation can act on it
            except pika.exceptions.AMQPConnectionError as exc:
                log.warning("lost the connection to RabbitMQ at %s: %s", self.display_url, exc)
            except pika.exceptions.AMQPChannelError as exc:  # e.g. the work channel closed under us
                log.warning("a RabbitMQ channel closed: %s", exc)
            except Exception:
                log.exception("unexpected error in the RabbitMQ I/O thread")
        self._fail_operations(VideoConverterError("the broker is closed"))
        with contextlib.suppress(Exception):
            self.connection.close()  # RabbitMQ requeues whatever is still leased

    def _run_operations(self) -> None:
        while True:
            try:
                operation, future = self._operations.get_nowait()
            except queues.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(operation())
            except pika.exceptions.AMQPConnectionError as exc:
                future.set_exception(
                    BrokerUnavailableError(f"lost the connection to RabbitMQ at {self.display_url}: {exc!r}")
                )
                return
            except BaseException as exc:
                future.set_exception(exc)

    def _fail_operations(self, error: Exception) -> None:
        while True:
            try:
                _operation, future = self._operations.get_nowait()
            except queues.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

    def _reconnect(self) -> None:
        self._on_lost()  # RabbitMQ requeued the leased messages with the connection
        self._control = self._probe = self.work = None
        try:
            self.connection = self._connect()
        except (BrokerUnavailableError, ConfigError) as exc:
            self._fail_operations(exc)
            log.warning("%s; trying again in %.0f s", exc, self._reconnect_delay)
            deadline = time.monotonic() + self._reconnect_delay
            while not self.stopping.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                self._fail_operations(exc)
                if time.monotonic() >= deadline:
                    break
            self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_MAX_DELAY_SECONDS)
            return
        self._reconnect_delay = 1.0
        log.info("reconnected to RabbitMQ at %s", self.display_url)

    def _connect(self) -> Any:
        try:
            return pika.BlockingConnection(self._parameters)
        except pika.exceptions.ProbableAuthenticationError as exc:
            raise ConfigError(f"broker: RabbitMQ at {self.display_url} refused the user name or password") from exc
        except pika.exceptions.ProbableAccessDeniedError as exc:
            raise ConfigError(f"broker: no access to the vhost of {self.display_url}") from exc
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailableError(f"cannot connect to RabbitMQ at {self.display_url}: {exc!r}") from exc

    def close(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._wake()
        self._thread.join(timeout=OPERATION_TIMEOUT_SECONDS)
        self._fail_operations(VideoConverterError("the broker is closed"))  # submitted while it stopped


def _nothing() -> None:
    """Wakes the I/O thread out of ``process_data_events``."""
