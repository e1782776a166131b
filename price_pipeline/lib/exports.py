"""Analyst-ready extracts of warehouse tables: Parquet as is, CSV made safe for spreadsheets.

A cell that starts with ``=``, ``+``, ``-`` or ``@`` is run as a formula by Excel and
LibreOffice when the CSV is opened (CSV/formula injection), and so is one where invisible
characters come first: spaces (ASCII or Unicode), a tab, CR or LF, a byte order mark (U+FEFF),
zero-width or other control/format characters. Full-width ``＝＋－＠`` count too. Hospital-
supplied text reaches these files, so in CSV extracts such cells get a leading apostrophe, as do
cells starting with a tab, CR or LF. Every column that is not a number, date/time or boolean is
treated as text (VARCHAR, ENUM, UUID, lists, structs and maps are written as their text form);
numbers are left alone, since a negative amount is a number, not a formula.

:func:`count_formula_cells` is the same rule applied to a written CSV (the
``csv_exports_are_formula_safe`` check): it counts the cells that would run as a formula.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

# RE2 (DuckDB) syntax. \pZ: Unicode separators (spaces, NBSP, line/paragraph separators);
# \pC: control, format (U+FEFF, zero-width), private-use and unassigned characters.
FORMULA_PREFIX_PATTERN = r"^(?:[\t\r\n]|[\pZ\pC]*[=+\-@＝＋－＠])"
# A plain number as DuckDB writes numeric columns ("-5.0", "1e+20", "-inf"): a column holding only
# these is a number column when a written CSV is checked.
NUMBER_PATTERN = r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)$"
# DuckDB types whose text form is a number, date/time or boolean (everything else is text).
_NON_TEXT_TYPE = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|VARINT|BIGNUM"
    r"|FLOAT|REAL|DOUBLE|DECIMAL(\(\d+,\s*\d+\))?|DATE|TIME|TIME WITH TIME ZONE|TIMESTAMP.*|INTERVAL)$",
    re.IGNORECASE,
)


def quote_identifier(name: str) -> str:
    """A SQL identifier quoted for DuckDB, whatever characters the name holds."""
    return '"' + name.replace('"', '""') + '"'


def is_text_type(column_type: str) -> bool:
    """True for DuckDB types whose CSV form can carry hospital text (not numbers, dates, booleans)."""
    return _NON_TEXT_TYPE.match(column_type.strip()) is None


def formula_condition(expression: str) -> str:
    """SQL that is true when the VARCHAR ``expression`` would be run as a formula by a spreadsheet."""
    return f"regexp_matches({expression}, '{FORMULA_PREFIX_PATTERN}')"


def neutralised_select(con: duckdb.DuckDBPyConnection, relation_sql: str) -> str:
    """SELECT over ``relation_sql`` with every text-like column formula-neutralised (as VARCHAR)."""
    described = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()  # noqa: S608
    columns = []
    for name, column_type, *_ in described:
        ident = quote_identifier(name)
        if is_text_type(column_type):
            text = f"CAST({ident} AS VARCHAR)"
            columns.append(f"CASE WHEN {formula_condition(text)} THEN '''' || {text} ELSE {text} END AS {ident}")
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


def count_formula_cells(con: duckdb.DuckDBPyConnection, csv_path: str | Path) -> int:
    """Rows of a written CSV with at least one cell a spreadsheet would run as a formula.

    Same prefix rule as :func:`neutralised_select`. A CSV no longer says which column was a
    number, so a column whose every cell is a plain number (``-5``, ``1e+20``) is taken as a
    number column and not counted, exactly as the export leaves number columns alone.
    """
    # The dialect is given, not sniffed: a sniffer can mis-read a file full of quoted line breaks.
    source = "read_csv(?, all_varchar=true, header=true, delim=',', quote='\"', escape='\"')"
    columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}", [str(csv_path)]).fetchall()]  # noqa: S608
    if not columns:
        return 0
    number_flags = ", ".join(
        f"bool_and({quote_identifier(c)} IS NULL OR regexp_matches({quote_identifier(c)}, '{NUMBER_PATTERN}', 'i'))"
        for c in columns
    )
    numeric = con.execute(f"SELECT {number_flags} FROM {source}", [str(csv_path)]).fetchone()  # noqa: S608
    text_columns = [c for c, is_number in zip(columns, numeric, strict=True) if not is_number]
    if not text_columns:
        return 0
    condition = " OR ".join(formula_condition(quote_identifier(c)) for c in text_columns)
    return con.execute(f"SELECT count(*) FROM {source} WHERE {condition}", [str(csv_path)]).fetchone()[0]  # noqa: S608
