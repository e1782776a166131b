"""``price-pipeline validate``: output shape, exit codes, zip and gzip input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import zipfile

from price_pipeline.cli import main
from price_pipeline.lib.validate import validate_file

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "validate")
KEYS = {"file", "format", "version", "valid", "errors", "alerts", "errors_by_rule", "alerts_by_rule", "findings",
        "findings_truncated", "rows_checked", "seconds"}


def test_cli_output_shape_subprocess():
    bad = os.path.join(FIX, "csv_pct_without_count.csv")
    good = os.path.join(FIX, "V3.0.0_JSON_Format_Example.json")
    p = subprocess.run([sys.executable, "-m", "price_pipeline.cli", "validate", bad, good, "--max-errors", "2"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr  # non-conformant files are not tool failures
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert len(lines) == 2
    for rep in lines:
        assert set(rep) >= KEYS
        for f in rep["findings"]:
            assert {"rule", "message", "row", "column", "path"} <= set(f)
    assert lines[0]["valid"] is False and lines[0]["errors"] == 4 and len(lines[0]["findings"]) == 2
    assert lines[0]["findings_truncated"] is True and lines[0]["format"] == "csv_tall"
    assert lines[1]["valid"] is True and lines[1]["format"] == "json" and lines[1]["version"] == "3.0.0"


def test_cli_missing_file_is_tool_failure(capsys):
    assert main(["validate", "/nonexistent/file.csv"]) == 2
    assert "error" in json.loads(capsys.readouterr().out.splitlines()[0])


def test_zip_and_gzip(tmp_path):
    src = os.path.join(FIX, "csv_negative_amount.csv")
    gz = tmp_path / "a.csv.gz"
    with open(src, "rb") as f, gzip.open(gz, "wb") as g:
        shutil.copyfileobj(f, g)
    zp = tmp_path / "b.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(FIX, "V3.0.0_JSON_Format_Example.json"), "mrf.json")
    rg = validate_file(gz)
    assert rg.compression == "gzip" and not rg.valid and rg.errors_by_rule == {"invalid_number": 1}
    rz = validate_file(zp)
    assert rz.compression == "zip" and rz.valid and rz.format == "json"


def test_unreadable_content(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("<html><body>not found</body></html>")
    r = validate_file(p)
    assert not r.valid and "unreadable_file" in r.errors_by_rule
    d = r.as_dict()
    json.dumps(d)
