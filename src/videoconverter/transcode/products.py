"""What a rendition's conversion hands back to the worker: files to write, in order, the marker last."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from videoconverter.renditions import Limits
from videoconverter.transcode.pertitle import QualitySearch
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.runner import RunResult
from videoconverter.transcode.subtitles_text import Caption

#: Runs one FFmpeg argument list to completion in the job's private directory, with the job's timeout, stop
#: flag and lease; ``duration_seconds`` (of media it will write) turns its progress into a percentage.
#: Raises TranscodeError, TranscodeTimeoutError or ShutdownRequested, as run_ffmpeg does.
Runner = Callable[[list[str], float | None], RunResult]


@dataclass(frozen=True)
class OutputFile:
    """One object to write: ``name`` is relative to the upload's key ("" for the key itself)."""

    name: str
    path: Path

    @property
    def content_type(self) -> str:
        """What the file's suffix says it is, as the stores guess it from an object's key."""
        return mimetypes.guess_type(self.path.name, strict=False)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Produced:
    """A rendition's files in upload order. The last is the marker: once it exists, the output is complete
    (a reader that finds ``KEY/master.m3u8`` never finds a half-written ladder), and it carries the source's
    ETag for idempotence."""

    files: tuple[OutputFile, ...]
    note: str = ""  # why the output differs from what was asked (e.g. a small source kept its size)
    elapsed_seconds: float = 0.0  # FFmpeg's wall time, all runs together
    quality: QualitySearch | None = None  # a VMAF target's search: the CRFs chosen, predicted (and measured) VMAF

    @property
    def marker(self) -> OutputFile:
        return self.files[-1]


@dataclass(frozen=True)
class Conversion:
    """One job's conversion, as every kind's producer receives it."""

    ffmpeg: str
    source: Path  # the downloaded upload, probed
    info: MediaInfo
    workdir: Path  # private to the job; FFmpeg runs and writes here
    limits: Limits
    run: Runner
    version: str  # names the directory of multi-file outputs: a new upload never mixes with the previous one
    threads: int = 0  # FFmpeg's -threads; 0: its own choice
    captions: tuple[Caption, ...] = ()  # sidecar captions found next to the upload, checked and converted
