"""Output picture size: the rendition's number is the short side of the displayed picture."""

from __future__ import annotations

from dataclasses import dataclass

from videoconverter.renditions import Rendition


@dataclass(frozen=True)
class OutputSize:
    width: int
    height: int
    note: str  # why the size differs from the rendition's, or ""


def output_size(display_width: int, display_height: int, rendition: Rendition) -> OutputSize:
    """Scale so that the short side is ``rendition.short_side``, keeping the aspect ratio, both sides even.

    A source smaller than the rendition keeps its own size unless the rendition allows upscaling.
    """
    short = min(display_width, display_height)
    if short < rendition.short_side and not rendition.upscale:
        return OutputSize(
            _even(display_width),
            _even(display_height),
            f"source is {display_width}x{display_height}, smaller than {rendition.name}: "
            "kept its size (never upscaled)",
        )
    scale = rendition.short_side / short
    return OutputSize(_even(display_width * scale), _even(display_height * scale), "")


def _even(pixels: float) -> int:
    return max(2, round(pixels / 2) * 2)
