"""Message brokers: a topic fanning out to durable queues with leases, retries and dead-letter queues.

The URL's scheme picks the backend (:data:`BACKENDS`); its module is imported only when a URL names it, so the
optional dependencies (pika, boto3) stay optional.
"""

from videoconverter.brokers.base import (
    Broker,
    BrokerBackend,
    Capabilities,
    DeadLetter,
    Delivery,
    QueueDepth,
    QueueSpec,
    Topology,
)
from videoconverter.registry import Registry

#: URL scheme(s) -> ``module:Class [extra]`` of the broker they open (the pip extra that installs what it needs).
BACKENDS = Registry[BrokerBackend](
    "broker",
    {
        ("amqp", "amqps"): "videoconverter.brokers.rabbitmq:RabbitMQBroker [rabbitmq]",
        "aws": "videoconverter.brokers.sqs:SQSBroker [aws]",
        "sqlite": "videoconverter.brokers.sqlite:SQLiteBroker",
    },
)


def open_broker(url: str) -> Broker:
    """The broker ``url`` names, opened by its class's ``from_url``."""
    return BACKENDS.backend_class(url).from_url(url)


__all__ = ["Broker", "BrokerBackend", "Capabilities", "DeadLetter", "Delivery", "QueueDepth", "QueueSpec", "Topology"]
