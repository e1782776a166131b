"""Spreadsheet-safe exports."""

from __future__ import annotations

import duckdb

from price_pipeline.lib.analytics.exports import export_relation, quote_identifier


def test_quote_identifier_survives_hostile_names():
    con = duckdb.connect()
    name = 'we"ird; DROP TABLE x; --'
    con.execute(f"CREATE TABLE t ({quote_identifier(name)} INTEGER)")
    assert con.execute("SELECT column_name FROM information_schema.columns").fetchone()[0] == name


def test_csv_export_neutralises_formulas_but_parquet_keeps_values(tmp_path):
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE m AS SELECT * FROM (VALUES ('=HYPERLINK(\"x\")', -5.0), ('+1', 1.0), ('@SUM(A1)', 2.0),"
        " ('-2', 3.0), ('plain', 4.0)) v(description, amount)"
    )
    result = export_relation(con, quote_identifier("m"), tmp_path, "m", key=["amount"])
    assert result["rows"] == 5
    text = (tmp_path / "m.csv").read_text().splitlines()
    assert text[1].startswith("\"'=HYPERLINK") and text[2].startswith("'+1") and text[3].startswith("'@SUM")
    assert text[4].startswith("'-2") and text[5].startswith("plain") and text[1].endswith(",-5.0")
    raw = con.execute("SELECT description FROM read_parquet(?)", [str(tmp_path / "m.parquet")]).fetchall()
    assert raw[0][0] == '=HYPERLINK("x")'
