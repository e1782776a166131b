"""Analyst-ready extracts of warehouse tables: Parquet as is, CSV made safe for spreadsheets.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel and LibreOffice when the CSV is opened (CSV/formula injection). Hospital-
supplied text reaches these files, so such cells get a leading apostrophe in CSV extracts.
Numbers are left alone: only text columns can carry a formula.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

FORMULA_PREFIX_PATTERN = r"^[=+\-@\t\r]"


def quote_identifier(name: str) -> str:
    """A SQL identifier quoted for DuckDB, whatever characters the name holds."""
    return '"' + name.replace('"', '""') + '"'


def neutralised_select(con: duckdb.DuckDBPyConnection, relation_sql: str) -> str:
    """SELECT over ``relation_sql`` with every text column formula-neutralised."""
    described = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()  # noqa: S608
    columns = []
    for name, column_type, *_ in described:
        ident = quote_identifier(name)
        if column_type.upper() in ("VARCHAR", "TEXT", "STRING"):
            columns.append(
                f"CASE WHEN regexp_matches({ident}, '{FORMULA_PREFIX_PATTERN}') "
                f"THEN '''' || {ident} ELSE {ident} END AS {ident}"
            )
        else:
            columns.append(ident)
    return f"SELECT {', '.join(columns)} FROM {relation_sql}"  # noqa: S608


def export_relation(
    con: duckdb.DuckDBPyConnection, relation_sql: str, out_dir: Path, name: str
) -> dict[str, int]:
    """Write ``<name>.parquet`` and ``<name>.csv`` for a relation; returns row and byte counts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet_path = out_dir / f"{name}.parquet"
    csv_path = out_dir / f"{name}.csv"
    con.execute(f"COPY (SELECT * FROM {relation_sql}) TO ? (FORMAT parquet, COMPRESSION zstd)", [str(parquet_path)])  # noqa: S608
    con.execute(f"COPY ({neutralised_select(con, relation_sql)}) TO ? (FORMAT csv, HEADER true)", [str(csv_path)])
    rows = con.execute(f"SELECT count(*) FROM {relation_sql}").fetchone()[0]  # noqa: S608
    return {"rows": rows, "parquet_bytes": parquet_path.stat().st_size, "csv_bytes": csv_path.stat().st_size}
