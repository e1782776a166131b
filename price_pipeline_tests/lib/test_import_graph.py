"""The library's modules import each other without cycles, deferred (function-level) imports
included: a cycle hidden in a function body is still two modules that cannot be read apart."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "price_pipeline" / "lib"


def _module_name(path: Path, root: Path) -> str:
    parts = ["price_pipeline", *path.relative_to(root.parent).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = LIB) -> dict[str, set[str]]:
    """Module -> the library modules it imports (``from x import y`` counts y when y is a module)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_edges_only(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exports its own modules; a module importing its package's public
    # names is the usual Python layout, not a cycle between two pieces of logic.
    return {m: {t for t in ts if not (m.startswith(t + ".") or t.startswith(m + "."))} for m, ts in graph.items()}


def test_library_modules_have_no_import_cycle():
    assert cycles(_package_edges_only(import_graph())) == []


def test_the_cycle_finder_sees_a_deferred_import(tmp_path):
    pkg = tmp_path / "lib"
    (pkg / "mrf").mkdir(parents=True)
    (pkg / "mrf" / "__init__.py").write_text("")
    (pkg / "mrf" / "a.py").write_text("from .b import x\n")
    (pkg / "mrf" / "b.py").write_text("def f():\n    from .a import y\n")
    graph = _package_edges_only(import_graph(pkg))
    assert cycles(graph) == [["price_pipeline.lib.mrf.a", "price_pipeline.lib.mrf.b"]]
