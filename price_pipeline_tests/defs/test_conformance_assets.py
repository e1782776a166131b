"""conformance_reports for demo hospitals, the row-count hold-back, and the GX check in a run."""

from __future__ import annotations

import dataclasses
import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline_tests.defs.helpers import materialize_catalog
from price_pipeline_tests.defs.quality_helpers import (
    check,
    check_metadata,
    check_step,
    demo_hospital,
    failed_steps,
    metadata,
    run_hospital,
)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def catalog(instance, settings, demo_server):
    assert materialize_catalog(instance, settings).success
    hospitals = json.loads(LocalLake(settings.lake_url).get_bytes("catalog/hospital_catalog.json"))["hospitals"]
    return {h["name"]: h for h in hospitals}


def test_valid_hospital_gets_a_clean_report_and_expectations_pass(instance, settings, catalog):
    key, _ = demo_hospital(catalog, layout="csv_tall", version="3.0.0")
    result = run_hospital(instance, settings, key, gx=True)
    assert result.success
    md = metadata(result, "conformance_reports")
    assert md["valid"] is True and md["files_checked"] == 1 and md["errors"] == 0 and md["alerts"] == 0
    (file_md,) = md["files"]
    assert file_md["format"] == "csv_tall" and file_md["rules_version"] == "3.0.0" and file_md["valid"]
    assert check(result, "conformance_reports_files_conform").passed
    # every check passed, each evaluated in its asset's own step (no step of its own)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 8 and all(e.passed for e in evaluations)
    for name, asset in [("mrf_files_has_a_price_file", "mrf_files"), ("mrf_parsed_has_rows", "mrf_parsed"),
                        ("prices_schema_and_lineage_complete", "prices"),
                        ("conformance_reports_no_cms_alerts", "conformance_reports")]:
        assert check_step(result, name) == asset
    # the Great Expectations suite ran on the partition and passed
    gx = check(result, "prices_meet_expectations")
    gx_md = check_metadata(gx)
    assert gx.passed, gx_md["failed"]
    assert gx_md["expectations"] >= 10 and gx_md["rows_validated"] == metadata(result, "prices")["dagster/row_count"]

    lake = LocalLake(settings.lake_url)
    (row,) = pq.read_table(lake.uri(layout.conformance_table_key(key))).to_pylist()
    assert row["valid"] is True and row["errors"] == 0 and row["download_status"] == "ok"
    report = json.loads(lake.get_bytes(layout.conformance_report_key(key, row["file_sha256"])))
    assert report["valid"] is True and report["findings"] == []


def test_non_conformant_and_broken_hospitals_are_reported_but_prices_flow(instance, settings, catalog):
    key, _ = demo_hospital(catalog, layout="csv_tall", version="2.0.0")
    # default rules: the official command line's choice for a 2.x file (2.2.0), where it conforms
    result = run_hospital(instance, settings, key)
    md = metadata(result, "conformance_reports")
    assert md["valid"] is True and md["files"][0]["rules_version"] == "2.2.0"
    assert md["files"][0]["rules_selection"] == "major" and md["rules_applied"] == "2.2.0 (major)"
    # PRICE_PIPELINE_CMS_RULES=declared: the 2.0.0 rules, which it breaks (CMS errors, parses fine)
    result = run_hospital(instance, dataclasses.replace(settings, cms_rules="declared"), key)
    assert result.success  # conformance warns, it does not hold prices back
    md = metadata(result, "conformance_reports")
    assert md["valid"] is False and md["errors"] > 0 and md["errors_by_rule"] == {"cond_code_pair_missing": 6}
    assert md["files"][0]["rules_version"] == "2.0.0" and md["files"][0]["rules_selection"] == "declared"
    (row,) = pq.read_table(LocalLake(settings.lake_url).uri(layout.conformance_table_key(key))).to_pylist()
    assert (row["rules_version"], row["rules_selection"], row["valid"]) == ("2.0.0", "declared", False)
    first = md["files"][0]["first_findings"][0]
    assert first["rule"] == "cond_code_pair_missing" and first["row"] >= 4
    failed = check(result, "conformance_reports_files_conform")
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
    assert result.asset_materializations_for_node("prices")

    broken, _ = demo_hospital(catalog, expect="html_instead_of_data")
    result = run_hospital(instance, settings, broken)
    assert not result.success  # mrf_files_has_a_price_file blocks, as before
    blocked = check(result, "mrf_files_has_a_price_file")
    assert not blocked.passed and check_metadata(blocked)["conformance_recorded"] is True
    assert blocked.severity == dg.AssetCheckSeverity.ERROR and blocked.partition == broken
    # evaluated in mrf_files' step, which stores the materialization and then fails on the check
    assert check_step(result, "mrf_files_has_a_price_file") == "mrf_files"
    assert failed_steps(result) == {"mrf_files": "DagsterAssetCheckFailedError"}
    assert result.asset_materializations_for_node("mrf_files")
    # conformance_reports is skipped downstream of the blocking check, which recorded the summary
    assert not result.asset_materializations_for_node("conformance_reports")
    assert not result.asset_materializations_for_node("mrf_parsed")
    assert not result.asset_materializations_for_node("prices")
    lake = LocalLake(settings.lake_url)
    (row,) = pq.read_table(lake.uri(layout.conformance_table_key(broken))).to_pylist()
    assert row["download_status"] == "rejected" and row["valid"] is False
    assert row["rule_counts"] == [{"rule": "unreadable_file", "severity": "error", "count": 1}]


def test_findings_are_capped_but_counts_complete(settings, tmp_path):
    from price_pipeline.lib.fetch.files import FileOutcome, FilesManifest
    from price_pipeline.lib.lake.layout import raw_key
    from price_pipeline.lib.quality import conformance

    lake = LocalLake(settings.lake_url)
    header = (
        "hospital_name,last_updated_on,version,hospital_location,hospital_address,license_number|CA,"
        "to the best of its knowledge and belief, the hospital has included all applicable standard charge "
        "information in accordance with the requirements of 45 CFR 180.50\n"
    )
    body = "description,setting\n" + "x,nowhere\n" * 500
    data = (header + "H,2024-01-01,3.0.0,L,A,1,true\n" + body).encode()
    key = raw_key("f" * 64, "csv")
    lake.put_bytes(data, key)
    manifest = FilesManifest("h-many", [FileOutcome(url="http://x/f.csv", status="ok", sha256="f" * 64, raw_key=key)])
    lake.put_bytes(manifest.to_json(), layout.files_manifest_key("h-many"))
    result = conformance.validate_hospital("h-many", lake=lake, max_findings=5)
    (report,) = result.reports
    assert report["errors"] > 5 and len(report["findings"]) == 5 and report["findings_truncated"]
    assert len(lake.get_bytes(layout.conformance_report_key("h-many", "f" * 64))) < 20_000


def test_a_version_with_less_than_half_the_rows_is_held_back(instance, settings, catalog, demo_server):
    key, name = demo_hospital(catalog, layout="csv_tall", version="3.0.0")
    lake = LocalLake(settings.lake_url)
    first = run_hospital(instance, settings, key)
    assert first.success
    published = lake.get_bytes(layout.prices_key(key))
    rows_before = metadata(first, "mrf_parsed")["dagster/row_count"]

    original = demo_server.file_bytes(name)
    lines = original.decode("utf-8").splitlines(keepends=True)
    try:
        demo_server.set_file(name, "".join(lines[:5]).encode())  # header rows + two data rows
        second = run_hospital(instance, settings, key)
        assert not second.success
        held = check(second, "mrf_parsed_row_count_not_collapsed")
        held_md = check_metadata(held)
        assert not held.passed and held_md["held_back"] is True
        assert held_md["published_rows"] == rows_before and held_md["rows"] < rows_before / 2
        # the new parse is recorded, its own step fails on the check, prices is not rebuilt
        assert check_step(second, "mrf_parsed_row_count_not_collapsed") == "mrf_parsed"
        assert failed_steps(second) == {"mrf_parsed": "DagsterAssetCheckFailedError"}
        assert second.asset_materializations_for_node("mrf_parsed")
        assert check(second, "mrf_parsed_has_rows").passed  # the step's other checks still report
        assert not second.asset_materializations_for_node("prices")
        assert lake.get_bytes(layout.prices_key(key)) == published  # the previous prices stay published

        # a plain rerun keeps holding it back; the operator's tag releases it
        assert not check(run_hospital(instance, settings, key), "mrf_parsed_row_count_not_collapsed").passed
        accepted = run_hospital(instance, settings, key, tags={"price_pipeline/accept_row_drop": "true"})
        assert accepted.success
        assert check_metadata(check(accepted, "mrf_parsed_row_count_not_collapsed"))["accepted_by_tag"] is True
        assert lake.get_bytes(layout.prices_key(key)) != published
    finally:
        demo_server.set_file(name, original)


def _started_children(monkeypatch) -> list:
    """Every child process the run starts (lib.quality.background.start_child, observed)."""
    from price_pipeline.lib.quality import background

    started: list = []
    real = background.start_child

    def observed(hospital_key, params):
        ok = real(hospital_key, params)
        started.extend(p for p in background.running_children(hospital_key) if p not in started)
        return ok

    monkeypatch.setattr(background, "start_child", observed)
    return started


def _step_order(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]


def _logged(instance, result, text: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if text in (e.user_message or "")]


def _stored_report(settings, key: str) -> dict:
    lake = LocalLake(settings.lake_url)
    (row,) = pq.read_table(lake.uri(layout.conformance_table_key(key))).to_pylist()
    report = json.loads(lake.get_bytes(layout.conformance_report_key(key, row["file_sha256"])))
    return {k: v for k, v in report.items() if k not in ("seconds", "validated_at")}


@pytest.mark.parametrize("layout_", ["csv_tall", "csv_wide", "json"])
def test_a_big_file_is_validated_beside_the_parse_and_its_child_is_gone_after_the_step(
        instance, settings, catalog, monkeypatch, layout_):
    from price_pipeline.lib.quality import background, validate_hospital

    key, _ = demo_hospital(catalog, layout=layout_, version="3.0.0")
    started = _started_children(monkeypatch)
    # every file counts as big here (the demo files are kilobytes)
    result = run_hospital(instance, dataclasses.replace(settings, conformance_background_min_bytes=1), key)
    assert result.success
    (child,) = started
    assert child.poll() is not None and not background.running_children()
    assert _logged(instance, result, "started in the background")
    assert _logged(instance, result, "background validation of") and "used" in _logged(
        instance, result, "background validation of")[0]
    # the conformance step ran after parsing and normalisation, while the child worked
    assert _step_order(result)[-1] == "conformance_reports"
    by_child = _stored_report(settings, key)
    validate_hospital(key, lake=LocalLake(settings.lake_url), reuse=False)  # inline, as before
    assert _stored_report(settings, key) == by_child


def test_conformance_still_runs_and_takes_the_child_when_parsing_fails(instance, settings, catalog, monkeypatch):
    from price_pipeline.defs.ingestion import assets as ingestion_assets
    from price_pipeline.lib.quality import background

    key, _ = demo_hospital(catalog, layout="csv_tall", version="3.0.0")
    started = _started_children(monkeypatch)

    def broken_parser(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(ingestion_assets, "parse_hospital_files", broken_parser)
    result = run_hospital(instance, dataclasses.replace(settings, conformance_background_min_bytes=1), key)
    assert "mrf_parsed" in failed_steps(result)
    md = metadata(result, "conformance_reports")
    assert md["valid"] is True and md["files_checked"] == 1
    assert "used" in _logged(instance, result, "background validation of")[0]
    (child,) = started
    assert child.poll() is not None and not background.running_children()


def test_no_child_without_the_conformance_step_in_the_run_or_for_small_files(instance, settings, catalog,
                                                                             monkeypatch):
    from price_pipeline_tests.defs.helpers import materialize_hospital

    key, _ = demo_hospital(catalog, layout="csv_tall", version="3.0.0")
    started = _started_children(monkeypatch)
    # mrf_files, mrf_parsed and prices only: nothing would collect the child
    assert materialize_hospital(instance, dataclasses.replace(settings, conformance_background_min_bytes=1),
                                key).success
    # the default threshold (64 MiB): a demo file of kilobytes is validated inline
    assert run_hospital(instance, settings, key).success
    assert started == []
