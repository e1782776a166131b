"""defs/ imports the library's stage packages by their public names only (``from
price_pipeline.lib.parse import parse_hospital_files``), never a module inside them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "price_pipeline"
STAGES = ("discovery", "fetch", "parse", "validate", "prices", "quality", "analytics", "lake")


def library_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("price_pipeline.lib"):
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("price_pipeline.lib")]
    return found


def test_defs_import_only_the_stage_packages_public_names():
    offenders = []
    for path in sorted([*(ROOT / "defs").rglob("*.py"), ROOT / "definitions.py"]):
        for line, module, names in library_imports(path):
            parts = module.split(".")
            if module == "price_pipeline.lib":  # `from price_pipeline.lib import ingest` names a module
                offenders += [f"{path.relative_to(ROOT)}:{line}: {module}.{n}" for n in names
                              if n not in ("ops", "registry")]
                continue
            if len(parts) < 3 or parts[2] not in STAGES:
                continue  # ops/ and the registry are not stage packages
            where = f"{path.relative_to(ROOT)}:{line}"
            if len(parts) != 3 or not names:
                offenders.append(f"{where}: {module} (a module inside the package)")
                continue
            public = set(getattr(importlib.import_module(module), "__all__", ()))
            offenders += [f"{where}: {module}.{n} (not in __all__)" for n in names if n not in public]
    assert offenders == []


def test_the_scan_sees_a_module_import(tmp_path):
    sample = tmp_path / "assets.py"
    sample.write_text("from price_pipeline.lib import layout\nfrom price_pipeline.lib.parse.versions import x\n")
    assert [(m, n) for _, m, n in library_imports(sample)] == [
        ("price_pipeline.lib", ["layout"]), ("price_pipeline.lib.parse.versions", ["x"])]
