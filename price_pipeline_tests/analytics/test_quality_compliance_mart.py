"""The compliance marts built by dbt from conformance reports in the lake."""

from __future__ import annotations

import datetime as dt

import duckdb

from price_pipeline.lib.quality.conformance import write_summary_table
from price_pipeline.lib.storage import LocalLake
from price_pipeline_tests.analytics.test_dbt_project import SHA_H1, SHA_H2, run_dbt, write_lake


def _row(hospital: str, sha: str | None, *, valid, errors=0, alerts=0, rules=(), status="ok") -> dict:
    return {
        "hospital_key": hospital, "file_sha256": sha, "url": f"https://{hospital}.example.org/mrf.csv",
        "download_status": status, "format": "csv_tall" if sha else None, "declared_version": "2.2.0",
        "rules_version": "2.2.0", "valid": valid, "errors": errors if valid is not None else None,
        "alerts": alerts if valid is not None else None,
        "rule_counts": [{"rule": r, "severity": s, "count": n} for r, s, n in rules],
        "top_rules": None, "rows_checked": 10, "findings_kept": 0, "findings_truncated": False,
        "report_key": None, "validated_at": dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
    }


def test_compliance_scorecard_and_rules(tmp_path):
    write_lake(tmp_path / "lake")
    lake = LocalLake(tmp_path / "lake")
    write_summary_table(lake, "h1", [_row("h1", SHA_H1, valid=True, alerts=2, rules=[("nine_nines", "alert", 2)])])
    write_summary_table(lake, "h2", [_row("h2", SHA_H2, valid=False, errors=7, rules=[
        ("cond_code_pair_missing", "error", 5), ("invalid_date", "error", 2)])])
    write_summary_table(lake, "h3", [_row("h3", None, valid=None, status="failed")])
    result = run_dbt(["build"], tmp=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select hospital_key, compliance_status, all_files_valid, current_file_valid, n_errors, n_alerts, "
            "top_rules, last_updated_on, template_version from mart_compliance_scorecard order by 1"
        ).fetchall()
        rules = con.execute("select rule, severity, n_hospitals, n_findings from mart_compliance_rules order by 1").fetchall()
    by_key = {r[0]: r[1:] for r in rows}
    assert by_key["h1"][:6] == ("conformant_with_alerts", True, True, 0, 2, "nine_nines:2")
    assert by_key["h1"][6:] == (dt.date(2024, 5, 1), "2.2.0")
    assert by_key["h2"][:6] == ("non_conformant", False, False, 7, 0, "cond_code_pair_missing:5, invalid_date:2")
    assert by_key["h3"][:2] == ("no_file", False)
    assert by_key["h4"][:2] == ("not_checked", None)
    assert rules == [
        ("cond_code_pair_missing", "error", 1, 5), ("invalid_date", "error", 1, 2), ("nine_nines", "alert", 1, 2)
    ]
