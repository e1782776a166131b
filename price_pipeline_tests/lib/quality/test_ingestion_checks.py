"""The ingestion checks' logic on its own (no Dagster): each check's pass and fail paths."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.fetch import FileOutcome, FilesManifest
from price_pipeline.lib.lake import PRICES_SCHEMA
from price_pipeline.lib.parse import ParsedVersion
from price_pipeline.lib.parse.mrf import ParseSummary
from price_pipeline.lib.parse.mrf.findings import Finding
from price_pipeline.lib.quality import ingestion_checks as checks


def version(rows: int, *, ok: bool = True, findings: list[Finding] | None = None, sha: str = "a" * 64):
    summary = ParseSummary(source="http://h/f.csv", ok=ok, format="csv_tall", version="3.0.0", encoding="utf-8",
                           compression=None, rows_parsed=rows, rows_quarantined=0, header={},
                           findings=findings or [])
    return ParsedVersion(sha, "http://h/f.csv", f"parsed/{sha}.parquet", summary)


def test_has_a_price_file():
    html = FileOutcome(url="http://h/page", status="rejected", error="an HTML page, not a price file")
    failed = checks.mrf_files_has_a_price_file(FilesManifest("h", [html]))
    assert not failed.passed and failed.metadata["files_ok"] == 0 and failed.metadata["conformance_recorded"]
    assert failed.metadata["problems"] == [{"url": "http://h/page", "status": "rejected",
                                            "error": "an HTML page, not a price file"}]
    ok = FileOutcome(url="http://h/f.csv", status="ok", sha256="a" * 64, raw_key="raw/aa/a.csv")
    passed = checks.mrf_files_has_a_price_file(FilesManifest("h", [ok, html]))
    assert passed.passed and passed.metadata["files_ok"] == 1 and not passed.metadata["conformance_recorded"]


def test_has_rows_and_its_reason():
    assert checks.mrf_parsed_has_rows([version(3)]).passed and checks.mrf_parsed_has_rows([version(3)]).description is None
    header_only = checks.mrf_parsed_has_rows([version(0)])
    assert not header_only.passed and header_only.description == "header present, no data rows"
    broken = version(5, ok=False, findings=[Finding("not_an_mrf", "error", "no CMS header")], sha="b" * 64)
    unreadable = checks.mrf_parsed_has_rows([broken])
    # rows of an unreadable file do not count
    assert not unreadable.passed and unreadable.metadata["rows"] == 0
    assert unreadable.metadata["reason"] == "no current file could be parsed (1 unreadable)"
    assert unreadable.metadata["unreadable_files"][0]["findings"][0]["rule"] == "not_an_mrf"


def test_row_count_not_collapsed():
    never_published = checks.mrf_parsed_row_count_not_collapsed([version(1)], None, drop_accepted=False)
    assert never_published.passed and never_published.metadata["ratio"] is None
    assert checks.mrf_parsed_row_count_not_collapsed([version(50)], 100, drop_accepted=False).passed  # exactly half
    held = checks.mrf_parsed_row_count_not_collapsed([version(49)], 100, drop_accepted=False)
    assert not held.passed and held.metadata["held_back"] and held.metadata["ratio"] == 0.49
    assert "held back" in held.description
    accepted = checks.mrf_parsed_row_count_not_collapsed([version(49)], 100, drop_accepted=True)
    assert accepted.passed and accepted.metadata["accepted_by_tag"] and not accepted.metadata["held_back"]


def test_no_error_findings():
    warning = Finding("odd_spacing", "warning", "extra spaces")
    assert checks.mrf_parsed_has_no_error_findings([version(3, findings=[warning])]).passed
    error = Finding("non_numeric_amount", "error", "'abc' is not a number", row=7, column="standard_charge")
    failed = checks.mrf_parsed_has_no_error_findings([version(3, findings=[warning, error])])
    assert not failed.passed and failed.metadata["error_findings"] == 1
    assert failed.metadata["examples"][0]["row"] == 7


def _prices_file(path, rows: list[dict]):
    columns = {name: [r.get(name) for r in rows] for name in PRICES_SCHEMA.names}
    pq.write_table(pa.table(columns, schema=PRICES_SCHEMA), path)
    return path


def test_prices_schema_and_lineage(tmp_path):
    good = {"hospital_key": "h", "file_sha256": "a" * 64, "source_row": 4, "charge_kind": "gross"}
    passed = checks.prices_schema_and_lineage_complete(_prices_file(tmp_path / "good.parquet", [good]))
    assert passed.passed and passed.metadata["rows"] == 1 and passed.metadata["missing_columns"] == "[]"
    no_lineage = {**good, "source_row": None}  # neither a source row nor a JSON path
    failed = checks.prices_schema_and_lineage_complete(_prices_file(tmp_path / "bad.parquet", [good, no_lineage]))
    assert not failed.passed and failed.metadata["rows_without_lineage"] == 1
    assert not checks.prices_schema_and_lineage_complete(_prices_file(tmp_path / "empty.parquet", [])).passed
    # a file without the lineage columns is reported as failing, not a crash of the step
    pq.write_table(pa.table({"hospital_key": ["h"]}), tmp_path / "narrow.parquet")
    narrow = checks.prices_schema_and_lineage_complete(tmp_path / "narrow.parquet")
    assert not narrow.passed and narrow.metadata["rows"] == 1 and narrow.metadata["rows_without_lineage"] is None
    assert {"file_sha256", "source_row", "charge_kind"} <= set(json.loads(narrow.metadata["missing_columns"]))


def test_prices_lineage_reads_the_files_own_hospital_in_the_lakes_partition_folder(tmp_path):
    """The published file lives in ``prices/hospital_key=<k>/``: a row without a hospital must fail
    the check, not be filled in from the folder name as a hive partition value."""
    from price_pipeline.lib.lake import LocalLake, connect_duckdb, layout

    lake = LocalLake(tmp_path / "lake")
    good = {"hospital_key": "h", "file_sha256": "a" * 64, "source_row": 4, "charge_kind": "gross"}
    local = _prices_file(tmp_path / "prices.parquet", [good, {**good, "hospital_key": None}])
    lake.put_file(local, layout.prices_key("h"))
    for con in (None, connect_duckdb(lake)):  # a path of its own, and the lake's URI with the lake's connection
        outcome = checks.prices_schema_and_lineage_complete(lake.uri(layout.prices_key("h")), con)
        assert not outcome.passed and outcome.metadata["rows_without_kind"] == 1


def test_prices_lineage_is_checked_on_s3_without_downloading_the_file(tmp_path, moto_s3, monkeypatch):
    import boto3

    from price_pipeline.lib.lake import connect_duckdb, layout
    from price_pipeline.lib.lake.storage import S3Lake

    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket="lineage")
    lake = S3Lake("s3://lineage/lake", endpoint_url=moto_s3)
    monkeypatch.setattr(S3Lake, "local_copy", lambda *a, **k: (_ for _ in ()).throw(AssertionError("downloaded")))
    good = {"hospital_key": "h", "file_sha256": "a" * 64, "source_path": "$.items[0]", "charge_kind": "gross"}
    for key, rows, passed in (("h", [good] * 3, True), ("bad", [good, {**good, "file_sha256": None}], False)):
        lake.put_file(_prices_file(tmp_path / f"{key}.parquet", rows), layout.prices_key(key))
        con = connect_duckdb(lake)
        try:
            outcome = checks.prices_schema_and_lineage_complete(lake.uri(layout.prices_key(key)), con)
        finally:
            con.close()
        assert outcome.passed is passed and outcome.metadata["rows"] == len(rows)
        assert outcome.metadata["rows_without_lineage"] == (0 if passed else 1)


def test_files_conform_and_no_cms_alerts():
    clean = {"url": "http://h/a.csv", "valid": True, "errors_by_rule": {}, "alerts_by_rule": {}, "findings": []}
    assert checks.conformance_reports_files_conform([clean]).passed and checks.conformance_reports_no_cms_alerts([clean]).passed
    assert not checks.conformance_reports_files_conform([]).passed  # nothing validated is not conformance
    broken = {"url": "http://h/b.csv", "valid": False, "download_status": "ok",
              "errors_by_rule": {"cond_code_pair_missing": 2}, "alerts_by_rule": {"nine_nines": 1},
              "findings": [{"rule": "cond_code_pair_missing", "severity": "error", "row": 4},
                           {"rule": "nine_nines", "severity": "alert", "row": 9}]}
    failed = checks.conformance_reports_files_conform([clean, broken])
    assert not failed.passed and failed.metadata["non_conformant_files"] == 1
    assert failed.metadata["examples"][0]["first_errors"] == [broken["findings"][0]]
    alerts = checks.conformance_reports_no_cms_alerts([clean, broken, broken])
    assert not alerts.passed and alerts.metadata["alerts"] == 2 and alerts.metadata["alerts_by_rule"] == {"nine_nines": 2}
    assert alerts.metadata["examples"][0]["row"] == 9
