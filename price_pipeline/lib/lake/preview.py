"""What a table holds, for people browsing assets: its columns (with descriptions) and first rows.

Plain data and Markdown only; the Dagster layer turns them into ``dagster/column_schema`` and a
preview in each materialization, so a user sees a table's shape without opening a file.

A preview shows hospital-supplied text in a Markdown renderer and invites copying into a
spreadsheet, so every cell is made inert: Markdown and HTML syntax is escaped (no links, images,
tags or broken table rows), and a cell a spreadsheet would run as a formula gets a leading
apostrophe, by the same rule as the CSV exports (lib/analytics/exports.py).
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lake package imports without DuckDB and Arrow; callers pass them
    import duckdb
    import pyarrow as pa

PREVIEW_ROWS = 5
# A preview is a glimpse, not a copy: long hospital text is cut so the UI stays readable.
PREVIEW_CELL_CHARS = 60
# The characters that start a formula once leading separators and invisible characters are
# skipped (ASCII and full-width), as FORMULA_PREFIX_PATTERN in lib/analytics/exports.py.
_FORMULA_STARTS = frozenset("=+-@＝＋－＠")
# RE2's \pZ and \pC: separators, control, format, private use, surrogates (RE2 has no Cn).
_SKIPPED_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs"})
# Markdown syntax a cell must not carry: links and images ([ ] !), code (`), the table's own
# delimiter (|) and the escape character itself (\). HTML is escaped separately.
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`|[]!*_~"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str | None = None


def describe(con: duckdb.DuckDBPyConnection, relation_sql: str,
             descriptions: Mapping[str, str] | None = None) -> list[Column]:
    """Columns of a relation in order, with their DuckDB types and any known descriptions."""
    descriptions = descriptions or {}
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()  # noqa: S608
    return [Column(name, column_type, descriptions.get(name) or None) for name, column_type, *_ in rows]


def describe_arrow(schema: pa.Schema, descriptions: Mapping[str, str] | None = None) -> list[Column]:
    """Columns of an Arrow schema with the DuckDB type names :func:`describe` gives for a Parquet
    file of that schema, so a table's declared and materialised columns read the same."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    try:
        # Built from nulls, not schema.empty_table(): that goes through pandas-backed conversion
        # and would import pandas (~0.4 CPU-s) into every run process that declares a schema.
        empty = pa.Table.from_arrays([pa.nulls(0, field.type) for field in schema], schema=schema)
        con.register("declared", empty)
        return describe(con, "declared", descriptions)
    finally:
        con.close()


def first_rows(con: duckdb.DuckDBPyConnection, relation_sql: str, limit: int = PREVIEW_ROWS) -> tuple[list[str], list]:
    """Column names and the first ``limit`` rows of a relation (in the relation's own order)."""
    cursor = con.execute(f"SELECT * FROM {relation_sql} LIMIT {int(limit)}")  # noqa: S608
    return [d[0] for d in cursor.description], cursor.fetchall()


def runs_as_formula(text: str) -> bool:
    """True when a spreadsheet would run ``text`` as a formula (the CSV exports' rule, in Python):
    it starts with a tab, CR or LF, or with ``= + - @`` (or their full-width forms) after any
    separators and control, format or private-use characters."""
    if text[:1] in ("\t", "\r", "\n"):
        return True
    for char in text:
        if char in _FORMULA_STARTS:
            return True
        if unicodedata.category(char) not in _SKIPPED_CATEGORIES:
            return False
    return False


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and runs_as_formula(text):
        text = "'" + text
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    # No HTML, no Markdown syntax, no table breaks, no line breaks.
    text = html.escape(text, quote=False).translate(_MARKDOWN_SPECIAL)
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table of ``rows`` (cells made inert and cut to a readable width)."""
    lines = ["| " + " | ".join(_header(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _header(name: str) -> str:
    # Column names are ours (schemas, dbt models): escaped like cells, but snake_case stays
    # readable in the raw Markdown (an underscore inside a word is not emphasis).
    return _cell(name).replace("\\_", "_")


def preview_markdown(con: duckdb.DuckDBPyConnection, relation_sql: str, limit: int = PREVIEW_ROWS) -> str:
    """The first rows of a relation as a Markdown table ("(no rows)" for an empty relation)."""
    columns, rows = first_rows(con, relation_sql, limit)
    if not rows:
        return "(no rows)"
    return markdown_table(columns, rows)
