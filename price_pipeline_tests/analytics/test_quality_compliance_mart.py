"""The compliance marts built by dbt from conformance reports in the lake."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.quality.conformance import write_summary_table
from price_pipeline_tests.analytics.test_dbt_project import SHA_H1, SHA_H2, run_dbt, write_lake


def _row(hospital: str, sha: str | None, *, valid, errors=0, alerts=0, rules=(), status="ok",
         rules_version="2.2.0", selection="major") -> dict:
    return {
        "hospital_key": hospital, "file_sha256": sha, "url": f"https://{hospital}.example.org/mrf.csv",
        "download_status": status, "format": "csv_tall" if sha else None, "declared_version": "2.2.0",
        "rules_version": rules_version if sha else None, "rules_selection": selection if sha else None,
        "valid": valid, "errors": errors if valid is not None else None,
        "alerts": alerts if valid is not None else None,
        "rule_counts": [{"rule": r, "severity": s, "count": n} for r, s, n in rules],
        "top_rules": None, "rows_checked": 10, "findings_kept": 0, "findings_truncated": False,
        "report_key": None, "validated_at": dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
    }


def _add_hospital_without_prices(lake_dir, key: str) -> None:
    path = lake_dir / "catalog" / "hospitals.parquet"
    table = pq.read_table(path)
    extra = {name: [table.column(name)[0].as_py()] for name in table.column_names}
    extra.update(hospital_key=[key], ccn=["100006"], name=["Hospital Six"], status=["active"])
    pq.write_table(pa.concat_tables([table, pa.table(extra, schema=table.schema)]), path)


def test_compliance_scorecard_and_rules(tmp_path):
    write_lake(tmp_path / "lake")
    lake = LocalLake(tmp_path / "lake")
    write_summary_table(lake, "h1", [_row("h1", SHA_H1, valid=True, alerts=2, rules=[("nine_nines", "alert", 2)])])
    write_summary_table(lake, "h2", [_row("h2", SHA_H2, valid=False, errors=7, rules=[
        ("cond_code_pair_missing", "error", 5), ("invalid_date", "error", 2)], rules_version="3.0.0",
        selection="in-force@2026-12-07")])
    write_summary_table(lake, "h3", [_row("h3", None, valid=None, status="failed")])
    # h6 lists one file with a header and no data rows: no prices, and the file fails (min_rows)
    _add_hospital_without_prices(tmp_path / "lake", "h6")
    write_summary_table(lake, "h6", [_row("h6", "6" * 63 + "a", valid=False, errors=1, rules=[("min_rows", "error", 1)],
                                          rules_version="3.0.0")])
    result = run_dbt(["build"], tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select hospital_key, compliance_status, all_files_valid, current_file_valid, n_errors, n_alerts, "
            "top_rules, last_updated_on, template_version from mart_compliance_scorecard order by 1"
        ).fetchall()
        rules = con.execute("select rule, severity, n_hospitals, n_findings from mart_compliance_rules order by 1").fetchall()
        applied = dict((r[0], r[1:]) for r in con.execute(
            "select hospital_key, current_file_rules_version, rules_versions, rules_selections "
            "from mart_compliance_scorecard").fetchall())
    by_key = {r[0]: r[1:] for r in rows}
    # which CMS rules were applied is carried per hospital and for its current file
    assert applied["h1"] == ("2.2.0", "2.2.0", "major")
    assert applied["h2"] == ("3.0.0", "3.0.0", "in-force@2026-12-07")
    assert applied["h3"] == (None, None, None)
    # a header-only file: no prices, yet the scorecard says the current file fails (not NULL)
    assert by_key["h6"][:5] == ("non_conformant", False, False, 1, 0)
    assert by_key["h1"][:6] == ("conformant_with_alerts", True, True, 0, 2, "nine_nines:2")
    assert by_key["h1"][6:] == (dt.date(2024, 5, 1), "2.2.0")
    assert by_key["h2"][:6] == ("non_conformant", False, False, 7, 0, "cond_code_pair_missing:5, invalid_date:2")
    assert by_key["h3"][:2] == ("no_file", False)
    assert by_key["h4"][:2] == ("not_checked", None)
    assert rules == [
        ("cond_code_pair_missing", "error", 1, 5), ("invalid_date", "error", 1, 2), ("min_rows", "error", 1, 1),
        ("nine_nines", "alert", 1, 2),
    ]
