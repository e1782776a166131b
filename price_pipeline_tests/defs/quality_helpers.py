"""Helpers for the quality and conformance tests: one hospital run with the quality checks too."""

from __future__ import annotations

import json

import dagster as dg

from price_pipeline.defs.ingestion import assets as ingestion_assets
from price_pipeline.defs.ingestion import conformance, expectations
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline_tests.defs.helpers import resources_for


def run_hospital(instance, settings, key: str, *, gx: bool = False, tags: dict | None = None):
    """mrf_files, conformance_reports, mrf_parsed and prices of one hospital, with every check
    (each evaluated in its asset's step; and ``prices_expectations`` with its Great Expectations check only when ``gx``); never
    raises on a failed step."""
    if key not in instance.get_dynamic_partitions(hospital_partitions.name):
        instance.add_dynamic_partitions(hospital_partitions.name, [key])
    return dg.materialize(
        [
            ingestion_assets.mrf_files,
            conformance.conformance_reports,
            ingestion_assets.mrf_parsed,
            ingestion_assets.prices,
            *([expectations.prices_expectations] if gx else []),
        ],
        partition_key=key,
        instance=instance,
        resources=resources_for(settings),
        tags=tags,
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation


def check_step(result: dg.ExecuteInProcessResult, name: str) -> str:
    """The step that evaluated the check ``name`` (its asset's own step, since the checks are
    check_specs of their assets)."""
    (step,) = {e.step_key for e in result.all_events
               if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and e.asset_check_evaluation_data.check_name == name}
    return step


def failed_steps(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """{step key: error class} of every failed step."""
    return {e.step_key: e.step_failure_data.error.cls_name for e in result.all_events
            if e.event_type == dg.DagsterEventType.STEP_FAILURE}


def check_metadata(evaluation: dg.AssetCheckEvaluation) -> dict:
    return {k: v.value for k, v in evaluation.metadata.items()}


def demo_hospital(catalog_hospitals: dict, *, layout: str | None = None, version: str | None = None,
                  expect: str = "ok") -> tuple[str, str]:
    """(hospital key, served file name) of the first demo hospital matching layout/version/expect."""
    from price_pipeline.demo.server import DATA_DIR

    for h in json.loads((DATA_DIR / "catalog.json").read_text())["hospitals"]:
        info = h.get("demo", {})
        if info.get("expect", "ok") != expect:
            continue
        if layout and info.get("layout") != layout or version and info.get("cms_version") != version:
            continue
        return catalog_hospitals[h["name"]]["hospital_key"], h["files"][0]["name"]
    raise KeyError((layout, version, expect))
