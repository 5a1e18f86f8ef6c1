"""A progress bar on stderr for long commands, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_SECONDS = 0.1


class ProgressBar:
    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last_draw = 0.0
        self._drawn = False

    def update(self, done: float, total: float | None, suffix: str = "") -> None:
        if not self.enabled or time.monotonic() - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = time.monotonic()
        if total:
            fraction = max(0.0, min(1.0, done / total))
            bar = "#" * int(fraction * 30)
            text = f"\r{self.label} [{bar:<30}] {fraction * 100:5.1f}% {suffix}"
        else:
            text = f"\r{self.label} {suffix}"
        self.stream.write(text.ljust(79))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
