"""The ``thumbnails`` rendition: a poster, thumbnails every N seconds and seek-preview sprites, as Elastic
Transcoder made, indexed by ``KEY/index.json`` (written last).

Objects under the upload's key (``VERSION`` comes from the source's ETag, so a new upload never mixes its
pictures with the previous one's)::

    VERSION/poster.jpg               display size, upright, past black frames at the start
    VERSION/thumbnails/00001.jpg     one every interval, the first at 0 s, thumbnail_width wide
    VERSION/sprites/001.jpg          the same pictures on sheets of up to 10 x 10 (only when sprite = true)
    VERSION/sprites.vtt              WebVTT seek previews: sprites/001.jpg#xywh=x,y,w,h
    index.json                       the marker: lists all of the above (schema in :func:`build_index`)

Three FFmpeg runs: a luma scan of the first seconds and the poster (see :mod:`.poster`), then one decode of
the whole video that writes thumbnails and sheets together (``split``).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from videoconverter.errors import TranscodeError
from videoconverter.renditions import Limits, Rendition
from videoconverter.transcode import poster
from videoconverter.transcode.command import input_args
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.products import Conversion, OutputFile, Produced
from videoconverter.transcode.sprites import SpriteLayout, build_vtt, sprite_layout
from videoconverter.transcode.truncation import check_read, joined

#: A long video's interval is widened (to whole seconds) so that it gets no more thumbnails than this.
MAX_THUMBNAILS = 1000
THUMBNAIL_JPEG_QUALITY = 3  # FFmpeg's -q:v for MJPEG: a little smaller than the poster's 2
INDEX_SCHEMA = 1
INDEX_NAME = "index.json"


@dataclass(frozen=True)
class ThumbnailPlan:
    interval_seconds: float
    count: int  # at most; a video whose last frames end early may give one fewer
    width: int
    height: int
    note: str  # why the interval differs from the rendition's, or ""


def plan_thumbnails(rendition: Rendition, info: MediaInfo) -> ThumbnailPlan:
    """How many thumbnails, how far apart and how large: ``thumbnail_width`` wide (never wider than the
    displayed picture), the display aspect kept, at most :data:`MAX_THUMBNAILS`."""
    display_width, display_height = info.display_size
    width = min(rendition.thumbnail_width, display_width)
    height = max(1, round(width * display_height / display_width))
    interval = rendition.thumbnail_interval_seconds
    duration = info.duration_seconds
    if duration is None:
        note = f"the duration is unknown: at most {MAX_THUMBNAILS} thumbnails"
        return ThumbnailPlan(interval, MAX_THUMBNAILS, width, height, note)
    note = ""
    if duration / interval > MAX_THUMBNAILS:
        wider = float(math.ceil(duration / MAX_THUMBNAILS))
        note = f"a thumbnail every {wider:g} s instead of {interval:g} s (at most {MAX_THUMBNAILS} thumbnails)"
        interval = wider
    # A thumbnail at 0, interval, 2 x interval, ... while that time is inside the video.
    count = max(1, math.ceil(duration / interval - 1e-9))
    return ThumbnailPlan(interval, count, width, height, note)


def _rate(interval_seconds: float) -> str:
    """One frame every ``interval_seconds`` as an exact ratio FFmpeg parses (``1/10``, ``5/72``)."""
    interval = Fraction(interval_seconds).limit_denominator(1000)
    return f"{interval.denominator}/{interval.numerator}"


def _pattern(directory: Path, digits: int) -> str:
    # image2 reads % as the start of the number's format: a % of the directory's own must be doubled.
    return f"file:{str(directory).replace('%', '%%')}/%0{digits}d.jpg"


def thumbnails_args(
    ffmpeg: str,
    source: Path,
    info: MediaInfo,
    limits: Limits,
    plan: ThumbnailPlan,
    layout: SpriteLayout | None,
    thumbnails_dir: Path,
    sprites_dir: Path,
) -> list[str]:
    """Arguments of the one decode that writes the thumbnails (``00001.jpg``...) and, with a ``layout``, the
    sheets (``001.jpg``...). FFmpeg's autorotation is on, so the pictures are upright."""
    # eof_action=pass: the default rounds the end of the video to the nearest slot, dropping a last thumbnail
    # whose time is less than half an interval before the end (a 4 s clip every 10 s would get none).
    picture = (
        f"[0:v:0]fps=fps={_rate(plan.interval_seconds)}:eof_action=pass,trim=end_frame={plan.count},"
        f"{poster.picture_filters(info, plan.width, plan.height)}"
    )
    graph = f"{picture}[thumbs]"
    if layout is not None:
        graph = f"{picture},split=2[thumbs][tiles];[tiles]tile={layout.columns}x{layout.rows}[sheets]"
    args = [*input_args(ffmpeg, source, info, limits), "-filter_complex", graph, "-progress", "pipe:1"]
    jpeg = ["-q:v", str(THUMBNAIL_JPEG_QUALITY), "-start_number", "1", "-f", "image2"]
    args += ["-map", "[thumbs]", "-frames:v", str(plan.count), *jpeg, _pattern(thumbnails_dir, 5)]
    if layout is not None:
        args += ["-map", "[sheets]", "-frames:v", str(layout.sheet_count), *jpeg, _pattern(sprites_dir, 3)]
    return args


def produce_thumbnails(rendition: Rendition, job: Conversion) -> Produced:
    """Make the poster, thumbnails and (when ``rendition.sprite``) sprites with their VTT, in ``workdir``.

    Returns the files in upload order, ``index.json`` last. Raises what ``run`` raises,
    :class:`TruncatedSourceError` when the pictures show the video ends well before its header says, or
    :class:`TranscodeError` when FFmpeg succeeded but wrote no picture.
    """
    info, version, root = job.info, job.version, job.workdir / "thumbnails"
    pictures, sheets = root / "thumbnails", root / "sprites"
    shutil.rmtree(root, ignore_errors=True)  # a retried job must not pick up an earlier attempt's pictures
    pictures.mkdir(parents=True)
    sheets.mkdir()
    poster_path, choice, scan_end = _make_poster(job, root)
    plan = plan_thumbnails(rendition, info)
    layout = sprite_layout(plan.count, plan.width, plan.height) if rendition.sprite else None
    args = thumbnails_args(job.ffmpeg, job.source, info, job.limits, plan, layout, pictures, sheets)
    job.run(args, info.duration_seconds)
    thumbnails = _written(pictures, 5, plan.count)
    read_seconds, promised_seconds, resolution_seconds = seconds_read(info, plan, len(thumbnails), scan_end)
    read = check_read(read_seconds, promised_seconds, job.limits, resolution_seconds)
    files = [OutputFile(f"{version}/poster.jpg", poster_path)]
    files += [OutputFile(f"{version}/thumbnails/{p.name}", p) for p in thumbnails]
    if layout is not None:
        layout = replace(layout, count=len(thumbnails))
        files += _sprite_files(root, version, layout, plan, info)
    index = build_index(version, info, choice.time_seconds, plan, len(thumbnails), layout)
    index_path = root / INDEX_NAME
    index_path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    files.append(OutputFile(INDEX_NAME, index_path))
    return Produced(tuple(files), joined(choice.note, plan.note, read))


def _sprite_files(
    root: Path, version: str, layout: SpriteLayout, plan: ThumbnailPlan, info: MediaInfo
) -> list[OutputFile]:
    """The sheets FFmpeg wrote and the WebVTT index into them (written here)."""
    sheets = _written(root / "sprites", 3, layout.sheet_count)
    if len(sheets) != layout.sheet_count:
        raise TranscodeError(f"FFmpeg wrote {len(sheets)} sprite sheets for {layout.count} thumbnails")
    vtt = root / "sprites.vtt"
    urls = [f"sprites/{p.name}" for p in sheets]
    vtt.write_text(build_vtt(layout, urls, plan.interval_seconds, info.duration_seconds), encoding="utf-8")
    return [*(OutputFile(f"{version}/sprites/{p.name}", p) for p in sheets), OutputFile(f"{version}/sprites.vtt", vtt)]


def seconds_read(
    info: MediaInfo, plan: ThumbnailPlan, count: int, scan_end: float | None
) -> tuple[float | None, float | None, float]:
    """How far the video stream could be read, what its header promised, and to how many seconds the pictures
    can tell. Where the luma scan stopped, if before its :data:`~.poster.SCAN_SECONDS`: the stream's end, to
    a scan frame. Else, when thumbnails are missing, the time the last one reached: the end is within one
    interval after it, and one thumbnail fewer than planned is normal (a video may end a frame early), so to
    two intervals. Else None: nothing is missing. Only the video stream is decoded, so the promise is its own
    duration, as audio may run longer (None where the container gives no stream duration: not compared)."""
    step = 1 / poster.SCAN_FRAMES_PER_SECOND
    promised = info.video_duration_seconds
    if scan_end is not None and scan_end < poster.SCAN_SECONDS - step:
        return scan_end, promised, step
    if count < plan.count:
        return (count - 1) * plan.interval_seconds, promised, 2 * plan.interval_seconds
    return None, promised, 0.0


def _make_poster(job: Conversion, root: Path) -> tuple[Path, poster.PosterChoice, float | None]:
    """The poster, why it was taken where it was, and where the luma scan stopped (None: no scan log)."""
    ffmpeg, source, info, limits, run = job.ffmpeg, job.source, job.info, job.limits, job.run
    log = root / "luma-scan.txt"
    run(poster.scan_args(ffmpeg, source, info, limits, log), None)
    samples = poster.parse_luma_log(log.read_text(encoding="utf-8", errors="replace")) if log.exists() else ()
    choice = poster.choose_poster_time(samples, info.duration_seconds)
    destination = root / "poster.jpg"
    run(poster.extract_args(ffmpeg, source, info, limits, choice.time_seconds, destination), None)
    if not destination.exists() and choice.time_seconds > 0:
        # A duration longer than the video stream (audio runs on) can put the chosen time past its last frame.
        choice = poster.PosterChoice(0.0, f"no frame at {choice.time_seconds:.1f} s: poster taken at 0 s")
        run(poster.extract_args(ffmpeg, source, info, limits, 0.0, destination), None)
    if not destination.exists():
        raise TranscodeError("FFmpeg wrote no poster frame")
    return destination, choice, poster.scan_end_seconds(samples)


def _written(directory: Path, digits: int, at_most: int) -> list[Path]:
    """The numbered pictures FFmpeg wrote, 1, 2, 3... without a gap (at least one, else TranscodeError)."""
    paths = []
    for number in range(1, at_most + 1):
        path = directory / f"{number:0{digits}d}.jpg"
        if not path.exists():
            break
        paths.append(path)
    if not paths:
        raise TranscodeError(f"FFmpeg wrote no picture in {directory.name}/")
    return paths


def build_index(
    version: str,
    info: MediaInfo,
    poster_time_seconds: float,
    plan: ThumbnailPlan,
    count: int,
    layout: SpriteLayout | None,
) -> dict[str, Any]:
    """The content of ``index.json``. Names are relative to the upload's key, times in seconds, sizes in pixels.

    - ``schema``: 1; a change that breaks readers gets a new number;
    - ``version``: the directory of this upload's pictures; ``duration_seconds``: the video's, or null;
    - ``poster``: ``name``, ``time_seconds``, ``width``, ``height``;
    - ``thumbnails``: ``interval_seconds``, ``width``, ``height``, ``items``: a list of ``name`` and
      ``time_seconds``, in time order;
    - ``sprites``: null without sprites, else ``vtt`` (the WebVTT file's name), ``columns`` and ``rows`` of
      every sheet, ``tile_width``, ``tile_height``, ``sheets`` (names, in order).
    """
    width, height = info.display_size
    items = [
        {"name": f"{version}/thumbnails/{n:05d}.jpg", "time_seconds": round(i * plan.interval_seconds, 3)}
        for i, n in enumerate(range(1, count + 1))
    ]
    sprites = None
    if layout is not None:
        sprites = {
            "vtt": f"{version}/sprites.vtt",
            "columns": layout.columns,
            "rows": layout.rows,
            "tile_width": layout.tile_width,
            "tile_height": layout.tile_height,
            "sheets": [f"{version}/sprites/{n:03d}.jpg" for n in range(1, layout.sheet_count + 1)],
        }
    return {
        "schema": INDEX_SCHEMA,
        "version": version,
        "duration_seconds": info.duration_seconds,
        "poster": {
            "name": f"{version}/poster.jpg",
            "time_seconds": round(poster_time_seconds, 3),
            "width": width,
            "height": height,
        },
        "thumbnails": {
            "interval_seconds": plan.interval_seconds,
            "width": plan.width,
            "height": plan.height,
            "items": items,
        },
        "sprites": sprites,
    }
