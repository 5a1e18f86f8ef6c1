"""The package's import graph, read from the source with ``ast``: no cycle, and no import that runs upwards.

The layers list what each part may build on: a module may import from its own layer's units and from the
layers below, never from above. Imports inside functions count too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "videoconverter"
ROOT = Path(__file__).resolve().parents[2] / "src" / PACKAGE

#: Lowest first. A unit is a top-level module or a subpackage of ``videoconverter``.
LAYERS: list[set[str]] = [
    {"__init__", "errors"},
    {"processes", "progress", "sqlite_db", "logs", "validation", "events", "renditions", "registry", "telemetry"}
    | {"web_settings"},  # the [web] table: read by config, far below the web package
    {"aws", "transcode"},  # low-level clients; the pure FFmpeg side
    {"storage", "brokers", "jobs"},  # the three backend families
    # job events; the receive loop, settle and back-off every consumer shares; workers' state folders and leases
    {"notifications", "consumer", "recovery"},
    {"config"},
    {"ingest", "publish"},
    {"pipeline"},
    # a job's lease kept alive; sidecar captions joining their video's output; deliveries that need no conversion
    {"heartbeat", "sidecars", "redelivery"},
    {"chunking", "worker", "pool", "dead_letters"},  # a rendition's worker, the steps of a split job it runs,
    # and the pool worker that serves several renditions
    {"fleet", "serverless", "web"},
    {"cli"},
    {"__main__"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> Iterator[str]:
    """Every module of the package that ``path`` imports (``from a import b`` names ``a.b`` when it is one)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if candidate in known else node.module


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    known = set(paths)
    return {name: {m for m in imported_modules(path, known) if m != name} for name, path in paths.items()}


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> int:
    for index, units in enumerate(LAYERS):
        if unit(module) in units:
            return index
    raise AssertionError(f"{module}: its unit {unit(module)!r} is in no layer of tests/unit/test_layers.py")


def test_every_module_belongs_to_a_layer() -> None:
    for module in graph():
        layer_of(module)


def test_no_import_runs_upwards() -> None:
    upward = sorted(
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )
    assert upward == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("from videoconverter.config import Config\nimport videoconverter.cli.main\n")
    found = set(imported_modules(source, {"videoconverter.config", "videoconverter.cli.main"}))
    assert found == {"videoconverter.config", "videoconverter.cli.main"}
    assert layer_of("videoconverter.config") > layer_of("videoconverter.transcode.probe")
