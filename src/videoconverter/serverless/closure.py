"""What goes into a Lambda artifact: the installed distributions a package needs (the closure of its runtime
requirements), each one's files (what its ``RECORD`` lists; an editable install's package directory), and the
check that their compiled wheels load on the runtime's OS (its glibc)."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from videoconverter.errors import ConfigError


@dataclass(frozen=True)
class Target:
    """The Lambda runtime the running interpreter builds for."""

    runtime: str  # "python3.12"
    python_version: str  # "3.12", the base image's tag
    os_name: str
    glibc: tuple[int, int]


@dataclass(frozen=True)
class Entry:
    """One file of an artifact: where it goes, where it comes from, and whether it is executable."""

    path: str  # POSIX path inside the artifact
    source: Path | None  # None: ``text`` is the content
    size: int
    executable: bool = False
    text: str = ""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(
    root: str = "videoconverter", exclude: frozenset[str] | set[str] = frozenset()
) -> list[metadata.Distribution]:
    """``root``'s installed distribution and those its runtime requirements need, transitively, by name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = _canonical(pending.pop())
        if name in found or name in exclude:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise ConfigError(f"{name} is required but not installed in {sys.prefix}") from exc
        found[name] = dist
        pending.extend(required for required in map(_required_name, dist.requires or []) if required)
    return [found[name] for name in sorted(found)]


def _required_name(line: str) -> str | None:
    """The distribution a ``Requires-Dist`` line needs here (no extra: this environment is the target's)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging is almost always installed; extras are then skipped
        name, _, marker = line.partition(";")
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", name)
        return match[1] if match and "extra" not in marker else None
    requirement = Requirement(line)
    if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
        return requirement.name
    return None


def _is_editable(dist: metadata.Distribution) -> bool:
    try:
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(direct_url.get("dir_info", {}).get("editable"))


def _entry(path: str, source: Path) -> Entry:
    mode = source.stat().st_mode
    return Entry(path, source, source.stat().st_size, executable=bool(mode & 0o111))


def distribution_entries(dist: metadata.Distribution) -> list[Entry]:
    """The files of an installed distribution, without caches, scripts outside site-packages or ``.pth`` hooks.

    An editable install's ``RECORD`` names only its hook, so its packages are taken from where they import.
    """
    name = dist.metadata["Name"]
    if dist.files is None:
        raise ConfigError(f"{name} has no RECORD of its files: reinstall it with pip")
    entries = []
    editable = _is_editable(dist)
    for file in dist.files:
        parts = file.parts
        if parts[0] == ".." or "__pycache__" in parts or file.suffix in {".pyc", ".pth"}:
            continue
        if editable and not parts[0].endswith(".dist-info"):
            continue
        if parts[-1] == "direct_url.json":  # the build machine's path
            continue
        source = Path(str(dist.locate_file(file)))
        if not source.is_file():
            raise ConfigError(f"{name} is incompletely installed ({file} is missing): reinstall it")
        entries.append(_entry(file.as_posix(), source))
    if editable:
        for top in (dist.read_text("top_level.txt") or "").split():
            entries.extend(_package_tree(top))
    return entries


def _package_tree(name: str) -> list[Entry]:
    spec = util.find_spec(name)
    if spec is None:
        raise ConfigError(f"the editable install's package {name} cannot be imported")
    if not spec.submodule_search_locations:
        origin = Path(str(spec.origin))
        return [_entry(origin.name, origin)]
    root = Path(next(iter(spec.submodule_search_locations)))
    entries = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for file in sorted(files):
            source = Path(directory) / file
            if source.suffix != ".pyc" and source.is_file():
                entries.append(_entry(f"{name}/{source.relative_to(root).as_posix()}", source))
    return entries


def _glibc_needed(platform_tag: str) -> tuple[int, int] | None:
    """The glibc a wheel's platform tag needs; None for pure-Python tags. Unknown tags raise ``ValueError``."""
    legacy = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12), "manylinux2014_x86_64": (2, 17)}
    if platform_tag == "any":
        return None
    if platform_tag in legacy:
        return legacy[platform_tag]
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform_tag)
    if match:
        return int(match[1]), int(match[2])
    raise ValueError(platform_tag)


def check_wheels(distributions: list[metadata.Distribution], target: Target) -> None:
    """Raise :class:`ConfigError` where a wheel cannot load on the runtime's OS (too new a glibc, not manylinux)."""
    for dist in distributions:
        tags = [line[4:].strip() for line in (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")]
        platforms = [p for tag in tags for p in tag.split("-")[-1].split(".")]
        if not platforms:
            continue
        try:
            needs = [_glibc_needed(p) for p in platforms]
        except ValueError as exc:
            raise ConfigError(
                f"{dist.metadata['Name']} is installed from a wheel for {exc}, which Lambda cannot load: "
                "install its manylinux wheel"
            ) from exc
        if None in needs:
            continue
        need = min(n for n in needs if n is not None)
        if need > target.glibc:
            raise ConfigError(
                f"{dist.metadata['Name']} {dist.version} is built for glibc {need[0]}.{need[1]} "
                f"({platforms[0]}), but Lambda's {target.runtime} runs {target.os_name} with glibc "
                f"{target.glibc[0]}.{target.glibc[1]}: package from Python 3.12 or 3.13 "
                "(Amazon Linux 2023), or pass --skip-glibc-check"
            )
