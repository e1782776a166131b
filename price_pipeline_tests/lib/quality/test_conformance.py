"""lib.quality.conformance: the per-hospital reports behind conformance_reports (no Dagster)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.fetch.files import FileOutcome, FilesManifest
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.quality import conformance
from price_pipeline.settings import Settings

CMS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "cms")


def _hospital(tmp_path, files: dict[str, bytes | None]) -> LocalLake:
    """A lake whose manifest lists ``files`` (url -> bytes; None: the download failed)."""
    lake = LocalLake(tmp_path / "lake")
    outcomes = []
    for url, data in files.items():
        if data is None:
            outcomes.append(FileOutcome(url=url, status="failed", error="HTTP 404", error_kind="http"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        key = f"raw/{sha[:2]}/{sha}.csv"
        lake.put_bytes(data, key)
        outcomes.append(FileOutcome(url=url, status="ok", sha256=sha, size=len(data), raw_key=key))
    lake.put_bytes(FilesManifest("h1", outcomes).to_json(), layout.files_manifest_key("h1"))
    return lake


def test_rules_selection_reaches_reports_and_the_cache_follows_it(tmp_path):
    with open(os.path.join(CMS, "V2.0.0_Tall_CSV_Format_Example.csv"), "rb") as f:
        lake = _hospital(tmp_path, {"https://h1.example.org/mrf.csv": f.read()})
    (r,) = conformance.validate_hospital("h1", lake=lake).reports
    assert (r["rules_version"], r["rules_selection"], r["valid"]) == ("2.2.0", "major", True)
    (r,) = conformance.validate_hospital("h1", lake=lake, rules="declared").reports  # not the cached report
    assert (r["rules_version"], r["rules_selection"], r["valid"]) == ("2.0.0", "declared", False)
    (r,) = conformance.validate_hospital("h1", lake=lake, rules="in-force", as_of=dt.date(2026, 4, 2)).reports
    assert (r["rules_version"], r["rules_selection"], r["valid"]) == ("3.0.0", "in-force@2026-04-02", False)
    # in force on another day with the same rules: the stored report is reused
    (again,) = conformance.validate_hospital("h1", lake=lake, rules="in-force", as_of=dt.date(2026, 9, 1)).reports
    assert again["validated_at"] == r["validated_at"]
    (row,) = pq.read_table(lake.uri(layout.conformance_table_key("h1"))).to_pylist()
    assert (row["rules_version"], row["rules_selection"]) == ("3.0.0", "in-force@2026-04-02")


def test_every_file_not_accepted_carries_a_finding(tmp_path):
    with open(os.path.join(CMS, "V3.0.0_Tall_CSV_Format_Example.csv"), "rb") as f:
        header_only = b"\n".join(f.read().replace(b"\r\n", b"\n").split(b"\n")[:3]) + b"\n"
    lake = _hospital(tmp_path, {"https://h1.example.org/a.csv": header_only, "https://h1.example.org/b.csv": None,
                                "https://h1.example.org/c.csv": b"<html>not found</html>"})
    result = conformance.validate_hospital("h1", lake=lake)
    for report in result.reports:
        assert report["valid"] is not True
        assert report["findings"], report["url"]
    header, failed, html = result.reports
    assert header["errors_by_rule"] == {"min_rows": 1} and header["format"] == "csv_tall"
    assert failed["valid"] is None and failed["findings"][0]["rule"] == "download_failed"
    assert "HTTP 404" in failed["findings"][0]["message"]
    assert html["errors_by_rule"] == {"unreadable_file": 1}
    stored = json.loads(lake.get_bytes(header["report_key"]))
    assert stored["findings"][0]["rule"] == "min_rows"


def test_rule_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PRICE_PIPELINE_CMS_RULES", "in-force")
    monkeypatch.setenv("PRICE_PIPELINE_CMS_RULES_AS_OF", "2025-02-01")
    s = Settings.from_env()
    assert conformance.rules_from_settings(s) == {"rules": "in-force", "as_of": dt.date(2025, 2, 1)}
    monkeypatch.delenv("PRICE_PIPELINE_CMS_RULES_AS_OF")
    monkeypatch.setenv("PRICE_PIPELINE_CMS_RULES", "major")
    assert conformance.rules_from_settings(Settings.from_env()) == {"rules": "major", "as_of": None}
    monkeypatch.setenv("PRICE_PIPELINE_CMS_RULES", "newest")
    with pytest.raises(ValueError, match="PRICE_PIPELINE_CMS_RULES"):
        Settings.from_env()
    monkeypatch.setenv("PRICE_PIPELINE_CMS_RULES", "in-force")
    monkeypatch.setenv("PRICE_PIPELINE_CMS_RULES_AS_OF", "1 April")
    with pytest.raises(ValueError, match="AS_OF"):
        Settings.from_env()


def test_summary_table_is_the_rows_as_written_without_pandas():
    """summary_table (Arrow's JSON reader, so that the conformance step does not import pandas)
    gives exactly the table pa.Table.from_pylist builds: nulls, nested rule counts, quotes and
    non-ASCII text, timestamps to the microsecond; and an empty table of the schema for no rows."""
    import subprocess
    import sys

    import pyarrow as pa

    now = dt.datetime(2026, 12, 7, 11, 8, 9, 123456, tzinfo=dt.UTC)
    validated = {"file_sha256": "a" * 64, "url": 'https://h.example/"q" é\\n/x.csv', "download_status": "ok",
                 "format": "csv", "version": "3.0.0", "rules_version": "3.0.0", "rules_selection": "major",
                 "valid": False, "errors": 3, "alerts": 1, "errors_by_rule": {"required": 2, "allowed_value": 1},
                 "alerts_by_rule": {"nine_nines": 1}, "rows_checked": 12, "findings": [{}, {}],
                 "findings_truncated": True, "report_key": "conformance/h/a.json"}
    failed = {"url": "https://h.example/gone.csv", "download_status": "failed"}
    rows = [conformance._summary_row("h", validated, now), conformance._summary_row("h", failed, now)]
    got = conformance.summary_table(rows)
    assert got.equals(pa.Table.from_pylist(rows, schema=conformance.REPORT_SCHEMA))
    assert got.column("rule_counts")[0].as_py()[0] == {"rule": "required", "severity": "error", "count": 2}
    assert conformance.summary_table([]).equals(conformance.REPORT_SCHEMA.empty_table())
    code = ("import datetime as dt, sys\nfrom price_pipeline.lib.quality import conformance\n"
            "now = dt.datetime.now(dt.UTC)\n"
            "t = conformance.summary_table([conformance._summary_row('h', {'url': 'u', 'valid': True}, now)])\n"
            "print(t.num_rows, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "False"]
