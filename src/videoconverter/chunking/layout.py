"""What a split job's pieces and join must agree on, decided once when the job is split: an HLS ladder's rungs
(their sizes and CRFs, after the VMAF search dropped or tuned them) and the audio tracks kept (their languages
and titles, which the pieces' files do not carry). It travels in every chunk message as JSON text, so the
join never needs the source to know what to write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videoconverter.errors import InvalidEventError
from videoconverter.transcode.probe import AudioTrack

if TYPE_CHECKING:  # the ladder's modules load when a ladder's piece is encoded: a message is read without them
    from videoconverter.renditions import Rendition
    from videoconverter.transcode.ladder import AudioOutput, Rung


@dataclass(frozen=True)
class RungPlan:
    """One rung of a ladder: its short side (which names it, "720p"), its CRF and its picture size."""

    short_side: int
    crf: int  # -1: none set (the codec's default)
    width: int
    height: int

    @property
    def name(self) -> str:
        return f"{self.short_side}p"


@dataclass(frozen=True)
class Layout:
    rungs: tuple[RungPlan, ...] = ()  # an HLS ladder's; () for an MP4
    audio: tuple[AudioTrack, ...] = ()  # the source's tracks kept, in output order

    def to_json(self) -> str:
        return json.dumps(
            {
                "rungs": [[r.short_side, r.crf, r.width, r.height] for r in self.rungs],
                "audio": [[t.index, t.language, t.channels, t.title] for t in self.audio],
            },
            separators=(",", ":"),
        )

    def ladder_rungs(self, rendition: Rendition, workdir: Path) -> list[Rung]:
        """The rungs as :mod:`videoconverter.transcode.ladder` writes them, in ``workdir``."""
        from videoconverter.transcode.geometry import OutputSize
        from videoconverter.transcode.ladder import Rung

        rungs = []
        for r in self.rungs:
            settings = replace(rendition.rung(r.short_side), crf=r.crf if r.crf >= 0 else None)
            rungs.append(Rung(settings, OutputSize(r.width, r.height, ""), workdir / "hls" / r.name))
        return rungs

    def audio_outputs(self, workdir: Path) -> list[AudioOutput]:
        """The audio renditions of a ladder, named as a whole encode names them ("a0-eng")."""
        from videoconverter.transcode.ladder import audio_output

        return [audio_output(track, workdir) for track in self.audio]


def layout_of(rungs: list[Rung], audio: tuple[AudioTrack, ...]) -> Layout:
    plans = tuple(RungPlan(r.rendition.short_side, _crf(r.rendition.crf), r.size.width, r.size.height) for r in rungs)
    return Layout(plans, audio)


def parse_layout(text: str) -> Layout:
    """The layout ``text`` holds ("": none, an older message's). Raises InvalidEventError when malformed."""
    if not text:
        return Layout()
    try:
        data = json.loads(text)
        rungs = tuple(RungPlan(*_ints(item, 4)) for item in data["rungs"])
        audio = tuple(_track(item) for item in data["audio"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidEventError(f"chunk message: malformed layout ({exc})") from None
    if any(min(r.short_side, r.width, r.height) < 1 or not -1 <= r.crf <= 63 for r in rungs):
        raise InvalidEventError("chunk message: layout rungs out of range")
    return Layout(rungs, audio)


def _ints(item: Any, count: int) -> list[int]:
    if not isinstance(item, list) or len(item) != count or not all(type(v) is int for v in item):
        raise TypeError(f"expected {count} integers")
    return item


def _track(item: Any) -> AudioTrack:
    if not isinstance(item, list) or len(item) != 4:
        raise TypeError("an audio track is [index, language, channels, title]")
    index, language, channels, title = item
    if type(index) is not int or type(channels) is not int or index < 0 or channels < 1:
        raise TypeError("an audio track's index and channels are non-negative integers")
    if not isinstance(language, str) or not isinstance(title, str) or not language.isalpha() or len(language) > 8:
        raise TypeError("an audio track's language and title are text")
    return AudioTrack(index, language, channels, title)


def _crf(crf: int | None) -> int:
    return -1 if crf is None else crf
