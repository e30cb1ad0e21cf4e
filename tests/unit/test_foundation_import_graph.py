"""The import graph of the repository's packages has no circle, and foundation/ keeps its layers.

Every module of ``fabric/``, ``foundation/`` and ``cli/`` (import name ``foundation_cli``) is parsed with
:mod:`ast`; every import counts -- at module level, inside functions and under ``if TYPE_CHECKING`` -- since
a deferred import is still a dependency and is how circles usually hide. ``from pkg import name`` is an
edge to the submodule ``pkg.name`` when that is a module, else to ``pkg`` itself (its ``__init__``).
The implicit import of parent packages is not an edge (every submodule would otherwise form a circle
with its package's ``__init__``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from tests.support import REPO

PACKAGES = {"fabric": REPO / "fabric", "foundation": REPO / "foundation", "foundation_cli": REPO / "cli"}

# foundation/'s layers, bottom first: a module may import only modules of strictly lower layers. The
# services share one layer, so none of them imports another; only the composition module knows them all.
FOUNDATION_LAYERS: list[set[str]] = [
    {"_ports"},                                              # interfaces + the default-telemetry hook
    {"_errors"},                                             # the Error record and exception tree
    {"_clock", "_utils"},                                    # leaves used by everything
    {"_error_context", "_registry"},                         # free-standing 1.x helpers
    {"_service", "_graceful"},                               # the actor base, the degradation helpers
    {"_telemetry", "_events", "_config", "_infrastructure"},  # the services
    {"_app"},                                                # the one composition module
    {"_distribution"},                                       # attaches a fabric node to an app
    {"__init__"},                                            # the public facade
]


def _modules() -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the three packages."""
    found: dict[str, Path] = {}
    for pkg, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([pkg, *parts])] = path
    return found


def _imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (file ``path``) imports."""
    known = set(known)
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in known:  # `import a.b.c` of a non-module attribute path
                    target = target.rpartition(".")[0]
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    out.add(sub)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def _graph(prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    modules = _modules()
    chosen = {m: p for m, p in modules.items() if m.split(".")[0] in prefixes}
    return {m: _imports(m, p, chosen) for m, p in chosen.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete circle ``[a, b, ..., a]`` per strongly connected component (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    sccs.append(sorted(comp))
    return [_circle_in(graph, comp) for comp in sccs]


def _circle_in(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest circle through the first module of a strongly connected component (BFS)."""
    members = set(comp)
    start = comp[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parents:
                    parents[child] = node
                    nxt.append(child)
        frontier = nxt
    return comp  # unreachable for a real SCC


def _report(cycles: list[list[str]]) -> str:
    return "import circles:\n" + "\n".join("  " + " -> ".join(c) for c in cycles)


def test_cycle_finder_reports_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"x": {"y"}, "y": set()}) == []


def test_import_resolution_counts_deferred_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n    from . import c\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (pkg / "c.py").write_text("from pkg import A\n")
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    assert _imports("pkg", pkg / "__init__.py", known) == {"pkg.a"}
    assert _imports("pkg.a", pkg / "a.py", known) == {"pkg.b", "pkg.c"}
    assert _imports("pkg.b", pkg / "b.py", known) == {"pkg.a"}
    assert _imports("pkg.c", pkg / "c.py", known) == {"pkg"}


def test_foundation_has_no_import_cycle() -> None:
    graph = _graph(("foundation",))
    assert len(graph) >= 10
    cycles = _cycles(graph)
    assert cycles == [], _report(cycles)


def test_fabric_and_cli_have_no_import_cycle() -> None:
    graph = _graph(("fabric", "foundation", "foundation_cli"))
    cycles = _cycles(graph)
    assert cycles == [], _report(cycles)


def test_foundation_modules_only_import_lower_layers() -> None:
    layer_of = {f"foundation.{m}" if m != "__init__" else "foundation": i
                for i, layer in enumerate(FOUNDATION_LAYERS) for m in layer}
    graph = _graph(("foundation",))
    assert set(graph) == set(layer_of), "place every foundation module in FOUNDATION_LAYERS"
    wrong = sorted(f"{m} (layer {layer_of[m]}) imports {t} (layer {layer_of[t]})"
                   for m, targets in graph.items() for t in targets if layer_of[t] >= layer_of[m])
    assert wrong == []


def test_only_the_facade_and_distribution_import_the_composition_module() -> None:
    graph = _graph(("foundation",))
    importers = sorted(m for m, targets in graph.items() if "foundation._app" in targets)
    assert importers == ["foundation", "foundation._distribution"]
    # services never reach for the package facade (that is how the old loop through _app closed)
    assert sorted(m for m, targets in graph.items() if "foundation" in targets) == []
