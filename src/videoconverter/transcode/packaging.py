"""Write a package's text files: subtitles, package.json, manifest.mpd and master.m3u8 (the marker, last).

The same code writes them after an encode and when a caption arrives after the video (:func:`add_captions`):
the manifests are a function of the :class:`.package.Package` alone, so no media is read or encoded again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from videoconverter.transcode.captions import Caption
from videoconverter.transcode.dash import manifest
from videoconverter.transcode.package import (
    CAPTIONS_VTT,
    MANIFEST_MPD,
    MASTER,
    MEDIA_PLAYLIST,
    PACKAGE_JSON,
    Package,
    Subtitle,
    to_json,
)
from videoconverter.transcode.playlists import master_playlist, subtitle_playlist, timestamped_vtt
from videoconverter.transcode.products import OutputFile, Produced

MPEGTS_HZ = 90_000


def track_label(language: str) -> str:
    """A language as a directory name's part: letters, digits and hyphens, lower case; "und" otherwise."""
    slug = re.sub(r"[^a-z0-9-]", "", language.lower())[:35]
    return slug or "und"


def write_subtitles(
    package: Package, captions: Sequence[Caption], version_dir: Path
) -> tuple[Package, list[OutputFile]]:
    """Each caption as ``VERSION/subs/s<N>-<lang>/captions.vtt`` (with X-TIMESTAMP-MAP) and its one-segment
    playlist, numbered after the package's own; the package with them added, and their files in write order."""
    subtitles, files = list(package.subtitles), []
    for caption in captions:
        name = f"s{len(subtitles)}-{track_label(caption.language)}"
        directory = version_dir / "subs" / name
        directory.mkdir(parents=True, exist_ok=True)
        vtt = timestamped_vtt(caption.path.read_text(encoding="utf-8"), media_start_mpegts(package))
        (directory / CAPTIONS_VTT).write_text(vtt, encoding="utf-8")
        (directory / MEDIA_PLAYLIST).write_text(subtitle_playlist(package.duration_seconds), encoding="utf-8")
        files += [OutputFile(package.path("subs", name, n), directory / n) for n in (CAPTIONS_VTT, MEDIA_PLAYLIST)]
        subtitles.append(Subtitle(name, caption.language, _unique_title(caption, subtitles), caption.origin))
    return dataclasses.replace(package, subtitles=tuple(subtitles)), files


def _unique_title(caption: Caption, subtitles: list[Subtitle]) -> str:
    """What players show; NAME must be unique in its group (RFC 8216 4.4.6.1), so a repeated one is numbered."""
    title = caption.name or caption.language
    taken = {s.title for s in subtitles}
    number = 2
    candidate = title
    while candidate in taken:
        candidate, number = f"{title} {number}", number + 1
    return candidate


def media_start_mpegts(package: Package) -> int:
    """The video's first decode time in 90 kHz units: X-TIMESTAMP-MAP's MPEGTS for cue time 0."""
    track = package.rungs[0].track
    return round(track.segments[0].start * MPEGTS_HZ / track.timescale)


def write_manifests(package: Package, version_dir: Path, key_dir: Path) -> list[OutputFile]:
    """``VERSION/package.json``, ``manifest.mpd`` (if the package has DASH) and ``master.m3u8``, in write order:
    the marker last."""
    description = version_dir / PACKAGE_JSON
    description.write_text(to_json(package), encoding="utf-8")
    files = [OutputFile(package.path(PACKAGE_JSON), description)]
    if package.dash:
        mpd = key_dir / MANIFEST_MPD
        mpd.write_text(manifest(package), encoding="utf-8")
        files.append(OutputFile(MANIFEST_MPD, mpd))
    master = key_dir / MASTER
    master.write_text(master_playlist(package), encoding="utf-8")
    return [*files, OutputFile(MASTER, master)]


def add_captions(package: Package, captions: Sequence[Caption], workdir: Path) -> Produced:
    """Captions added to a published package without touching its media: writes into ``workdir`` (as under
    ``KEY``) the new subtitle files and playlists, package.json, manifest.mpd and master.m3u8, and returns
    them in write order, master.m3u8 last (names relative to ``KEY``, in the package's VERSION)."""
    version_dir = workdir / package.version
    version_dir.mkdir(parents=True, exist_ok=True)
    package, files = write_subtitles(package, captions, version_dir)
    files += write_manifests(package, version_dir, workdir)
    origins = ", ".join(c.origin for c in captions)
    return Produced(tuple(files), note=f"captions added: {origins}" if captions else "")
