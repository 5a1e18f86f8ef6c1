"""Backend URLs: the scheme picks a backend class, imported lazily so optional dependencies stay optional.

Each family keeps its own :class:`Registry` of ``scheme -> "module:Class"`` (``storage.BACKENDS``,
``brokers.BACKENDS``, ``jobs.BACKENDS``) and opens a URL with the class's ``from_url``; this module holds only
what they share: reading a URL's scheme (or its path, for the embedded backends) and the lazy import with its
hints (a misspelt scheme gets "did you mean", a missing optional dependency the extra to install).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from videoconverter.errors import ConfigError, UnknownBackendError

BackendT = TypeVar("BackendT")


def scheme_of(url: str) -> str:
    scheme, sep, _rest = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(f"{url!r} is not a backend URL: expected SCHEME://..., e.g. sqlite://vc-data/broker.db")
    return scheme.lower()


def path_from_url(url: str) -> Path:
    """``sqlite:///abs/path.db`` or ``file://relative/folder`` -> the Path after ``SCHEME://``."""
    scheme = scheme_of(url)
    path = url.partition("://")[2]
    if not path:
        raise ConfigError(f"expected a URL like {scheme}://PATH, got {url!r}")
    return Path(path)


def resolve(kind: str, backends: Mapping[str, str], url: str, extras: Mapping[str, str] | None = None) -> Any:
    """The class that ``backends`` registers for ``url``'s scheme, imported now.

    ``kind`` names the family in messages; ``extras`` names the pip extra of a scheme whose dependencies are not
    installed by default, where it is not the scheme's own name. Raises ConfigError: UnknownBackendError for a
    scheme with no backend, or the extra to install when the backend's module cannot be imported.
    """
    scheme = scheme_of(url)
    target = backends.get(scheme)
    if target is None:
        close = difflib.get_close_matches(scheme, backends, n=1)
        hint = f" Did you mean {close[0]}://?" if close else ""
        raise UnknownBackendError(
            f"no {kind} backend for {scheme}:// (available: {', '.join(s + '://' for s in backends)}).{hint}"
        )
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = (extras or {}).get(scheme, scheme)
        raise ConfigError(
            f"the {scheme}:// {kind} backend needs a package that is not installed: {exc.name}. "
            f"Install the matching extra: pip install 'videoconverter[{extra}]'"
        ) from exc
    return getattr(module, attribute)


class Registry(Generic[BackendT]):
    """One family's backends by URL scheme; ``kind`` names the family in messages.

    ``backends`` maps a scheme (or a tuple of schemes that open the same class) to ``"module:Class"``, followed by
    ``" [extra]"`` where the class needs the pip extra ``videoconverter[extra]`` (as entry points write it).
    """

    def __init__(self, kind: str, backends: Mapping[str | tuple[str, ...], str]) -> None:
        self.kind = kind
        self.targets: dict[str, str] = {}  # scheme -> "module:Class"
        self.extras: dict[str, str] = {}  # scheme -> the pip extra its class needs
        for schemes, entry in backends.items():
            target, _, extra = entry.partition(" [")
            for scheme in (schemes,) if isinstance(schemes, str) else schemes:
                self.targets[scheme] = target
                if extra:
                    self.extras[scheme] = extra.rstrip("]")

    def backend_class(self, url: str) -> type[BackendT]:
        """The class ``url``'s scheme names, imported now (see :func:`resolve` for what it raises)."""
        return cast("type[BackendT]", resolve(self.kind, self.targets, url, self.extras))
