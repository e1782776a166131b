"""The layout owns every lake key: no other module of the package spells one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from price_pipeline.lib.lake import layout

PACKAGE = Path(__file__).resolve().parents[3] / "price_pipeline"
# Dataset folders and file names of the lake (see layout's docstring).
KEY_TEXT = re.compile(
    r"hospital_key=|file_sha256=|built_at="
    r"|^(raw|manifests|parsed|prices|prices_history|price_changes|conformance|quality|catalog|exports|marts)/"
    r"|/(rows|quarantine|prices|versions|changes|report|hospitals|price_anomalies)\.parquet$"
    r"|/(summary|current|mrf_files|hospital_catalog|_latest)\.json$"
)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def spelled_keys(path: Path) -> list[str]:
    """String constants of a module (f-string parts included, docstrings not) that spell a key."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    return [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        and KEY_TEXT.search(node.value)
    ]


def test_no_module_but_layout_spells_a_lake_key():
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "lib" / "lake" / "layout.py" and "demo" not in path.relative_to(PACKAGE).parts
        for hit in spelled_keys(path)
    ]
    # (scratch files may share a key's file name: "prices.parquet" alone is no key)
    assert found == []


def test_the_detector_sees_a_spelled_key(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Docs may name parsed/<k>/rows.parquet."""\nKEY = f"{prefix}/summary.json"\n')
    assert spelled_keys(sample) == ["sample.py:2: '/summary.json'"]


def test_per_hospital_keys_name_their_hospital():
    for key in (layout.files_manifest_key("h-1"), layout.parsed_rows_key("h-1", "ab"), layout.prices_key("h-1"),
                layout.price_versions_key("h-1"), layout.conformance_table_key("h-1")):
        assert layout.hospital_key_of(key) == "h-1"
    assert layout.hospital_key_of(layout.HOSPITALS_KEY) is None
    assert layout.is_prices_key(layout.prices_key("h-1"))
    assert not layout.is_prices_key("prices/hospital_key=h-1/prices.parquet.tmp")
    assert not layout.is_prices_key(layout.prices_history_key("h-1", "ab"))
    assert layout.files_manifest_key("h").startswith(layout.FILES_MANIFESTS_PREFIX)
    assert layout.prices_key("h").startswith(layout.PRICES_PREFIX)
