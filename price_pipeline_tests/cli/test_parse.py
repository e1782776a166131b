"""``price-pipeline parse``: one JSON line per file, exit 0 with findings, non-zero on tool failure."""

from __future__ import annotations

import json
import subprocess
import sys

from price_pipeline.cli import main
from price_pipeline_tests.lib.conftest import BROKEN, CMS


def test_parse_prints_one_line_per_file(tmp_path, capsys):
    files = [CMS / "V3.0.0_Tall_CSV_Format_Example.csv", BROKEN / "html_page.csv", BROKEN / "dirty_numbers.csv"]
    rc = main(["parse", *map(str, files), "--out", str(tmp_path / "out")])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["file"] for x in lines] == [str(f) for f in files]
    first = lines[0]
    assert {"file", "format", "version", "encoding", "rows_parsed", "rows_quarantined", "findings"} <= set(first)
    assert (first["format"], first["version"], first["encoding"], first["rows_parsed"]) == ("csv_tall", "3.0.0", "utf-8", 45)
    assert lines[1]["ok"] is False and lines[1]["findings"][0]["rule"] == "html_instead_of_data"
    assert {f["rule"] for f in lines[2]["findings"]} == {"non_numeric_amount", "nine_nines_placeholder"}
    assert (tmp_path / "out" / "V3.0.0_Tall_CSV_Format_Example.csv.parquet").exists()


def test_missing_file_is_a_tool_failure(tmp_path, capsys):
    rc = main(["parse", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert rc != 0
    assert "error" in json.loads(capsys.readouterr().out)


def test_module_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "price_pipeline.cli", "parse", str(CMS / "V3.0.0_JSON_Format_Example.json"),
                        "--out", str(tmp_path)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["format"] == "json"
