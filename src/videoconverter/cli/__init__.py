"""The command line: one module per command family; ``main`` is the entry point."""

from videoconverter.cli.main import main

__all__ = ["main"]
