"""Wide files with many payer|plan groups, and content-not-extension detection."""

from __future__ import annotations

import csv
import io
import shutil

from ..conftest import CMS


def _wide_text(n_groups: int, n_rows: int) -> tuple[str, list[tuple[str, str]]]:
    groups = [(f'Payer "{g}", Inc.', f"Plan {g} (HMO, \"Gold\")") for g in range(n_groups)]
    head = ["description", "code|1", "code|1|type", "setting", "standard_charge|gross"]
    for payer, plan in groups:
        head += [f"standard_charge|{payer}|{plan}|negotiated_dollar", f"standard_charge|{payer}|{plan}|methodology"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["hospital_name", "last_updated_on", "version"])
    w.writerow(["Many Groups Hospital", "2025-01-01", "3.0.0"])
    w.writerow(head)
    for r in range(n_rows):
        row = [f"Item {r}", str(70000 + r), "CPT", "outpatient", "100"]
        for g in range(n_groups):
            row += ([f"{r + g}.5", "fee schedule"] if (r + g) % 3 == 0 else ["", ""])
        w.writerow(row)
    return buf.getvalue(), groups


def test_wide_with_1000_groups(parse, tmp_path):
    text, groups = _wide_text(1000, 30)
    p = tmp_path / "wide1000.csv"
    p.write_text(text)
    s, rows = parse(p)
    assert s.ok and s.format == "csv_wide" and s.rows_quarantined == 0
    expected = {(r + 4, *groups[g]): r + g + 0.5 for r in range(30) for g in range(1000) if (r + g) % 3 == 0}
    got = {(x["source_row"], x["payer_name"], x["plan_name"]): x["negotiated_dollar"] for x in rows}
    assert got == expected  # payer/plan names recovered exactly (quotes, commas, parentheses)
    assert all(x["gross_charge"] == 100 and x["methodology"] == "fee schedule" for x in rows)


def test_content_not_extension(parse, tmp_path):
    j = tmp_path / "prices.txt"
    shutil.copy(CMS / "V3.0.0_JSON_Format_Example.json", j)
    s, rows = parse(j)
    assert s.ok and s.format == "json" and rows
    c = tmp_path / "prices.csv"
    shutil.copy(CMS / "V3.0.0_Tall_CSV_Format_Example.csv", c)
    h = tmp_path / "prices.json"
    h.write_bytes(c.read_bytes())
    s2, rows2 = parse(h)
    assert s2.ok and s2.format == "csv_tall" and len(rows2) == 45
