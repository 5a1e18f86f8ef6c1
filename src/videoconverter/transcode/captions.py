"""Captions: text tracks of the upload and sidecar caption files, turned into WebVTT for the package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Caption:
    """One caption track ready for an output: a checked UTF-8 WebVTT file in the job's directory."""

    language: str  # BCP 47 / ISO 639 as tagged or named ("en", "eng"); "und" when unknown
    name: str  # what players show in their captions menu
    path: Path  # WebVTT, UTF-8, starting "WEBVTT" (the HLS writer adds X-TIMESTAMP-MAP)
    origin: str  # where it came from, for logs and notes: "text track 0" or the sidecar's key
