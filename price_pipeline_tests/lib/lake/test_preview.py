"""A table preview shows hospital text inert: no Markdown/HTML, no formulas, no broken rows."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.analytics.exports import formula_condition
from price_pipeline.lib.lake.preview import (
    PREVIEW_CELL_CHARS,
    describe,
    describe_arrow,
    markdown_table,
    runs_as_formula,
)
from price_pipeline.lib.lake.schemas import (
    PARSED_SCHEMA,
    PRICE_CHANGES_SCHEMA,
    PRICE_VERSIONS_SCHEMA,
    PRICES_SCHEMA,
)

SAMPLES = [
    "=1+2", "+1", "-x", "@SUM(A1)", "＝1", "＋1", "－1", "＠x", " =1", "\u00a0=1", "\u200b=1", "\ufeff=HYPERLINK()",
    "\x01=1", "\ue000=1", "\U000e0001=1", "\tplain", "\rplain", "\nplain", "plain", "a=1", "", " ", "1-2",
    "\u2028=1", "\u0378=1", "x\t", "(=1)",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_python_formula_rule_is_the_csv_exports_rule(text):
    con = duckdb.connect()
    (sql_says,) = con.execute(f"SELECT {formula_condition('?::VARCHAR')}", [text]).fetchone()
    con.close()
    assert runs_as_formula(text) is bool(sql_says)


def _row_cells(table: str) -> list[str]:
    """The cells of the single data row of a one-row table, split on unescaped pipes."""
    line = table.splitlines()[2]
    cells, cell, escaped = [], "", False
    for char in line[1:-1]:
        if char == "|" and not escaped:
            cells.append(cell)
            cell = ""
        else:
            cell += char
        escaped = char == "\\" and not escaped
    return [*cells, cell]


def test_cells_are_inert_and_the_table_keeps_its_shape():
    hostile = ["ends with a backslash\\", "[click](javascript:alert(1))", "![x](http://tracker/p.png)",
               "<img src=x onerror=alert(1)>", "a|b", "line\nbreak\rcr\u2028ls", "`code`", "=HYPERLINK(\"x\")",
               "w" * 200, None, -5.0]
    table = markdown_table([f"c{i}" for i in range(len(hostile))], [hostile])
    assert len(table.splitlines()) == 3
    cells = _row_cells(table)
    assert len(cells) == len(hostile)  # no pipe or trailing backslash broke the row
    assert cells[0].strip() == "ends with a backslash\\\\"
    assert "](" not in table.replace("\\](", "") and "![" not in table.replace("\\!\\[", "")
    assert "<img" not in table and "&lt;img" in table
    assert cells[7].strip().startswith("'=HYPERLINK")  # neutralised as in the CSV exports
    assert len(cells[8].strip()) == PREVIEW_CELL_CHARS and cells[8].strip().endswith("…")
    assert cells[9] == "  " and cells[10].strip() == "-5.0"  # NULL empty; a negative number is a number


@pytest.mark.parametrize("schema", [PARSED_SCHEMA, PRICES_SCHEMA, PRICE_CHANGES_SCHEMA, PRICE_VERSIONS_SCHEMA])
def test_declared_types_are_what_duckdb_reads_from_the_parquet(schema, tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist([], schema=schema), path)
    con = duckdb.connect()
    try:
        read = describe(con, f"read_parquet('{path}')")
    finally:
        con.close()
    assert describe_arrow(schema) == read


def test_declaring_a_schema_does_not_import_pandas():
    """Every table asset declares its columns when the code location loads; an empty Arrow table
    built by ``schema.empty_table()`` imported pandas there (~0.4 CPU-s in every run process)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from price_pipeline.lib.lake.preview import describe_arrow\n"
        "from price_pipeline.lib.lake.schemas import PARSED_SCHEMA, PRICES_SCHEMA\n"
        "assert describe_arrow(PRICES_SCHEMA) and describe_arrow(PARSED_SCHEMA)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
