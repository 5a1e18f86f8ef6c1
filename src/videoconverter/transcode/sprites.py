"""Seek-preview sprites: the layout of thumbnails on sheets and the WebVTT file that indexes them (pure).

Thumbnail ``i`` (0-based) stands for the time from ``i * interval`` to the next one (the last to the end of the
video). Sheets are grids of at most :data:`MAX_SPRITE_COLUMNS` x :data:`MAX_SPRITE_ROWS` tiles, filled row by
row; every sheet has the same grid, so the last one may be partly empty (FFmpeg's ``tile`` filter pads it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SPRITE_COLUMNS = 10
MAX_SPRITE_ROWS = 10


@dataclass(frozen=True)
class TilePosition:
    sheet: int  # 0-based
    x: int  # pixels from the sheet's left edge
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class SpriteLayout:
    """Where ``count`` tiles of ``tile_width`` x ``tile_height`` go on sheets of ``columns`` x ``rows``."""

    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def tiles_per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheet_count(self) -> int:
        return math.ceil(self.count / self.tiles_per_sheet)

    @property
    def sheet_width(self) -> int:
        return self.columns * self.tile_width

    @property
    def sheet_height(self) -> int:
        return self.rows * self.tile_height

    def position(self, index: int) -> TilePosition:
        """Where tile ``index`` (0-based, less than ``count``) is."""
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} is outside 0..{self.count - 1}")
        sheet, within = divmod(index, self.tiles_per_sheet)
        row, column = divmod(within, self.columns)
        return TilePosition(sheet, column * self.tile_width, row * self.tile_height, self.tile_width, self.tile_height)


def sprite_layout(count: int, tile_width: int, tile_height: int) -> SpriteLayout:
    """The smallest grid that holds ``count`` tiles, up to 10 x 10; more tiles take more sheets of 10 x 10.

    A short video's single sheet is no larger than it needs: 4 tiles make a 4 x 1 sheet, 23 make 10 x 3.
    """
    if count < 1:
        raise ValueError("a sprite needs at least one tile")
    columns = min(count, MAX_SPRITE_COLUMNS)
    rows = min(math.ceil(count / columns), MAX_SPRITE_ROWS)
    return SpriteLayout(count, columns, rows, tile_width, tile_height)


def cue_bounds_ms(count: int, interval_seconds: float, duration_seconds: float | None) -> list[tuple[int, int]]:
    """Start and end (milliseconds) of each thumbnail's cue: back to back from 0, the last one ending at the
    end of the video (or one interval after its start when the duration is unknown or shorter)."""
    starts = [round(i * interval_seconds * 1000) for i in range(count)]
    ends = starts[1:]
    last_end = starts[-1] + round(interval_seconds * 1000) if starts else 0
    if starts and duration_seconds is not None and round(duration_seconds * 1000) > starts[-1]:
        last_end = round(duration_seconds * 1000)
    return list(zip(starts, [*ends, last_end], strict=True))


def vtt_timestamp(milliseconds: int) -> str:
    """``HH:MM:SS.mmm``, as WebVTT wants (hours always shown, so players never misread a long video)."""
    seconds, ms = divmod(milliseconds, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def build_vtt(
    layout: SpriteLayout, sheet_urls: list[str], interval_seconds: float, duration_seconds: float | None
) -> str:
    """The WebVTT seek-preview index: one cue a thumbnail, ``URL#xywh=x,y,w,h`` into its sheet.

    ``sheet_urls[i]`` is sheet ``i``'s URL relative to the VTT file (e.g. ``sprites/001.jpg``).
    """
    if len(sheet_urls) != layout.sheet_count:
        raise ValueError(f"{len(sheet_urls)} sheet URLs for a layout of {layout.sheet_count} sheets")
    lines = ["WEBVTT", ""]
    for index, (start, end) in enumerate(cue_bounds_ms(layout.count, interval_seconds, duration_seconds)):
        tile = layout.position(index)
        lines += [
            f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}",
            f"{sheet_urls[tile.sheet]}#xywh={tile.x},{tile.y},{tile.width},{tile.height}",
            "",
        ]
    return "\n".join(lines)
