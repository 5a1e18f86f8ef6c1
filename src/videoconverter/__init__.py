"""videoconverter: event-driven, fault-tolerant conversion of uploaded videos into web-ready renditions."""

__version__ = "0.1.0"
