"""Message brokers: a topic fanning out to durable queues with leases, retries and dead-letter queues."""

from videoconverter.brokers.base import Broker, Capabilities, DeadLetter, Delivery, QueueDepth, QueueSpec, Topology

__all__ = ["Broker", "Capabilities", "DeadLetter", "Delivery", "QueueDepth", "QueueSpec", "Topology"]
