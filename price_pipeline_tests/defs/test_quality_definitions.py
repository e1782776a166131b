"""The quality assets and checks are registered where they belong, at no import cost to ingestion."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from price_pipeline import definitions


def test_ingestion_location_imports_neither_great_expectations_nor_dbt():
    code = (
        "import sys; from price_pipeline.definitions import ingestion; ingestion(); "
        "print(sorted({m.split('.')[0] for m in sys.modules "
        "if m.startswith(('great_expectations', 'dagster_dbt', 'dbt.'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_quality_assets_checks_and_jobs_are_registered():
    ingestion = definitions.ingestion()
    graph = ingestion.resolve_asset_graph()
    assert graph.get(dg.AssetKey("conformance_reports")).partitions_def is not None
    checks = {k.name for k in graph.asset_check_keys}
    assert {
        "conformance_reports_files_conform",
        "conformance_reports_no_cms_alerts",
        "prices_meet_expectations",
        "mrf_parsed_row_count_not_collapsed",
    } <= checks
    job = ingestion.resolve_job_def("ingest_hospital")
    assert dg.AssetKey("conformance_reports") in job.asset_layer.asset_graph.get_all_asset_keys()

    analytics = definitions.analytics()
    agraph = analytics.resolve_asset_graph()
    for key in ("price_anomalies", "quarantine"):
        assert agraph.get(dg.AssetKey(key)).group_name == "quality"
    assert {"duplicate_prices", "placeholder_values", "negotiated_above_gross", "extreme_outliers"} <= {
        k.name for k in agraph.asset_check_keys
    }
    # the compliance marts read the conformance reports asset
    scorecard = agraph.get(dg.AssetKey("mart_compliance_scorecard"))
    assert scorecard is not None
    staging = agraph.get(dg.AssetKey("stg_compliance_reports"))
    assert dg.AssetKey("conformance_reports") in staging.parent_keys
    analytics.resolve_job_def("check_quality")
    assert {s.name for s in analytics.sensors} >= {"quality_after_ingestion"}


def test_expectations_run_off_the_ingestion_run_and_a_sensor_requests_them():
    from price_pipeline.defs.ingestion.expectations import expectations_after_prices

    ingestion = definitions.ingestion()
    gx_check = dg.AssetCheckKey(dg.AssetKey("prices"), "prices_meet_expectations")
    def checks_of(job_name: str) -> set:
        return set(ingestion.resolve_job_def(job_name).asset_layer.asset_graph.asset_check_keys)

    ingest_checks = checks_of("ingest_hospital")
    assert gx_check not in ingest_checks
    assert dg.AssetCheckKey(dg.AssetKey("prices"), "prices_schema_and_lineage_complete") in ingest_checks
    assert checks_of("check_price_expectations") == {gx_check}

    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(expectations_after_prices(context), dg.SkipReason)
        for key in ("h1", "h2", "h1"):
            instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition=key))
        result = expectations_after_prices(dg.build_sensor_context(instance=instance))
        assert sorted(r.partition_key for r in result.run_requests) == ["h1", "h2"]
        again = expectations_after_prices(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)
