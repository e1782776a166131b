"""The code locations load, validate, and every asset is documented, grouped and typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from price_pipeline import definitions
from price_pipeline.settings import PROJECT_ROOT

EXPECTED_ASSETS = {"hospital_catalog", "hospitals", "mrf_files", "mrf_parsed", "prices", "exports"}


def test_dagster_definitions_validate_cli():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ingestion_location_does_not_import_dbt():
    code = (
        "import sys; from price_pipeline.definitions import ingestion; ingestion(); "
        "print(any(m.startswith(('dagster_dbt', 'dbt.')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_every_asset_has_docstring_group_and_kinds():
    defs = definitions.all_definitions()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys >= EXPECTED_ASSETS
    assert {"stg_prices", "mart_price_distribution"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assert node.group_name and node.group_name != "default", key
        assert node.description, key
        assert node.kinds, key
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def}
    assert partitioned == {
        "mrf_files", "mrf_parsed", "prices", "price_changes", "conformance_reports", "prices_expectations",
    }
    dg.Definitions.validate_loadable(defs)
