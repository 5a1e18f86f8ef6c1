"""The set-up half of the RabbitMQ broker: the fanout exchange (the topic), each work queue with its delay and
dead-letter queues and their arguments, and their deletion. Mixed into :class:`~.rabbitmq.RabbitMQBroker`, whose
I/O thread and caches it shares."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pika.exceptions

from videoconverter.brokers.base import Topology
from videoconverter.brokers.rabbitmq_io import AmqpConnection
from videoconverter.brokers.rabbitmq_messages import (
    DELAY_LADDER_SECONDS,
    dead_letter_queue_arguments,
    delay_queue_arguments,
    delay_queue_name,
    version_tuple,
    work_queue_arguments,
)
from videoconverter.errors import ConfigError

log = logging.getLogger("videoconverter.brokers.rabbitmq")
_PRECONDITION_FAILED = 406


class RabbitMQTopology:
    """``declare`` and ``delete``; the broker provides the I/O thread, its URL for messages and the caches."""

    display_url: str
    _io: AmqpConnection
    _dead_letter_queues: dict[str, str]
    _delay_queues: set[str]

    def _server_version(self) -> str:
        raise NotImplementedError

    def declare(self, topology: Topology) -> None:
        self._io.call(lambda: self._declare(topology))

    def _declare(self, topology: Topology) -> None:
        with self._precondition(f"the exchange (topic) {topology.topic!r}"):
            self._io.control_channel().exchange_declare(topology.topic, exchange_type="fanout", durable=True)
        for spec in topology.queues:
            self._declare_queue(spec.dead_letter_queue, dead_letter_queue_arguments())
            self._declare_queue(spec.name, work_queue_arguments(spec))
            for rung in DELAY_LADDER_SECONDS:
                self._declare_queue(delay_queue_name(spec.name, rung), delay_queue_arguments(spec.name, rung))
                self._delay_queues.add(delay_queue_name(spec.name, rung))
            self._io.control_channel().queue_bind(spec.name, topology.topic)
            self._dead_letter_queues[spec.name] = spec.dead_letter_queue
        version = self._server_version()
        if version_tuple(version) < (3, 12):
            log.info(
                "RabbitMQ %s ignores x-consumer-timeout: set consumer_timeout in rabbitmq.conf above the longest "
                "job (default 30 min), or jobs longer than that are handed to another worker",
                version,
            )

    def _declare_queue(self, name: str, arguments: dict[str, Any]) -> None:
        with self._precondition(f"queue {name!r}"):
            self._io.control_channel().queue_declare(name, durable=True, arguments=arguments)

    @contextlib.contextmanager
    def _precondition(self, what: str) -> Iterator[None]:
        try:
            yield
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != _PRECONDITION_FAILED:
                raise
            raise ConfigError(
                f"{what} already exists on {self.display_url} with other settings ({exc.reply_text}); a changed "
                "queues.max_receive_count changes x-delivery-limit. RabbitMQ cannot change them in place: let the "
                "workers drain it, delete it (`rabbitmqctl delete_queue NAME`, or the management UI) and run "
                "`videoconverter provision` again, or configure new queue and topic names"
            ) from exc

    def delete(self, topology: Topology) -> None:
        """Delete the topic, the queues, their delay and dead-letter queues, and every message in them."""

        def delete() -> None:
            channel = self._io.control_channel()
            for spec in topology.queues:
                for name in (
                    spec.name,
                    spec.dead_letter_queue,
                    *(delay_queue_name(spec.name, rung) for rung in DELAY_LADDER_SECONDS),
                ):
                    channel.queue_delete(name)
            channel.exchange_delete(topology.topic)
            for spec in topology.queues:
                self._dead_letter_queues.pop(spec.name, None)
                self._delay_queues.difference_update(delay_queue_name(spec.name, r) for r in DELAY_LADDER_SECONDS)

        self._io.call(delete)
