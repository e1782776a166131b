"""What a table holds, for people browsing assets: its columns (with descriptions) and first rows.

Plain data and Markdown only; the Dagster layer turns them into ``dagster/column_schema`` and a
preview in each materialization, so a user sees a table's shape without opening a file.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the lake package imports without DuckDB; callers pass a connection
    import duckdb

PREVIEW_ROWS = 5
# A preview is a glimpse, not a copy: long hospital text is cut so the UI stays readable.
PREVIEW_CELL_CHARS = 60


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


def first_rows(con: duckdb.DuckDBPyConnection, relation_sql: str, limit: int = PREVIEW_ROWS) -> tuple[list[str], list]:
    """Column names and the first ``limit`` rows of a relation (in the relation's own order)."""
    cursor = con.execute(f"SELECT * FROM {relation_sql} LIMIT {int(limit)}")  # noqa: S608
    return [d[0] for d in cursor.description], cursor.fetchall()


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    # Hospital text is shown in a Markdown renderer: no HTML, no table breaks, no line breaks.
    return html.escape(text, quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ").replace("`", "\\`")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table of ``rows`` (cells escaped and cut to a readable width)."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def preview_markdown(con: duckdb.DuckDBPyConnection, relation_sql: str, limit: int = PREVIEW_ROWS) -> str:
    """The first rows of a relation as a Markdown table ("(no rows)" for an empty relation)."""
    columns, rows = first_rows(con, relation_sql, limit)
    if not rows:
        return "(no rows)"
    return markdown_table(columns, rows)
