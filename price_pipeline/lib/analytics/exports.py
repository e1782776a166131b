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

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

# RE2 (DuckDB) syntax. \pZ: Unicode separators (spaces, NBSP, line/paragraph separators);
# \pC: control, format (U+FEFF, zero-width) and private-use characters (RE2's \pC has no
# unassigned code points; lib/lake/preview.py applies the same rule in Python).
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


def neutralised_select(con: duckdb.DuckDBPyConnection, relation_sql: str, params: list | tuple = ()) -> str:
    """SELECT over ``relation_sql`` with every text-like column formula-neutralised (as VARCHAR).

    ``params`` are the values of any ``?`` in ``relation_sql`` (needed to describe it).
    """
    described = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}", list(params)).fetchall()  # noqa: S608
    columns = []
    for name, column_type, *_ in described:
        ident = quote_identifier(name)
        if is_text_type(column_type):
            text = f"CAST({ident} AS VARCHAR)"
            columns.append(f"CASE WHEN {formula_condition(text)} THEN '''' || {text} ELSE {text} END AS {ident}")
        else:
            columns.append(ident)
    return f"SELECT {', '.join(columns)} FROM {relation_sql}"  # noqa: S608


def natural_keys(manifest: dict) -> dict[str, list[str]]:
    """Model name -> the columns that identify one of its rows, read from its dbt tests.

    The grain a model's ``unique_combination_of_columns`` test names (or the first of its
    ``column_rules`` test's ``unique_combinations``), else its first documented column with a
    ``unique`` test (or named ``unique`` by its ``column_rules`` test): dbt checks on every build that these columns are a key, so
    ordering by them is a total order, decided in schema.yml next to the model's docs.
    """
    nodes = manifest.get("nodes", {})
    combinations: dict[str, list[str]] = {}
    unique_columns: dict[str, set[str]] = {}
    for node in sorted(nodes.values(), key=lambda n: n.get("unique_id", "")):
        test = node.get("test_metadata") or {}
        model = node.get("attached_node") or ""
        if node.get("resource_type") != "test" or model not in nodes:
            continue
        kwargs = test.get("kwargs") or {}
        name = test.get("name")
        if name == "unique_combination_of_columns" and kwargs.get("combination_of_columns"):
            combinations.setdefault(model, list(kwargs["combination_of_columns"]))
        elif name == "unique" and kwargs.get("column_name"):
            unique_columns.setdefault(model, set()).add(kwargs["column_name"])
        elif name == "column_rules":  # macros/test_column_rules.sql
            if kwargs.get("unique_combinations"):
                combinations.setdefault(model, list(kwargs["unique_combinations"][0]))
            if kwargs.get("unique"):
                unique_columns.setdefault(model, set()).update(kwargs["unique"])
    keys: dict[str, list[str]] = {}
    for model, columns in unique_columns.items():
        documented = [c for c in nodes[model].get("columns", {}) if c in columns]
        keys[nodes[model]["name"]] = (documented or sorted(columns))[:1]
    return {**keys, **{nodes[model]["name"]: columns for model, columns in combinations.items()}}


def order_clause(columns: set[str] | list[str], key: list[str] | tuple[str, ...] | None) -> str:
    """``ORDER BY`` the key when the relation has all its columns, else ``ORDER BY ALL`` (every
    column left to right): either way a total order, so the same rows always give the same bytes."""
    if key and set(key) <= set(columns):
        return "ORDER BY " + ", ".join(quote_identifier(c) for c in key)
    return "ORDER BY ALL"


class UnsafeExportError(ValueError):
    """A written CSV extract still holds cells a spreadsheet would run as formulas; never published."""


@dataclass(frozen=True)
class ExportFilters:
    """Which rows an extract keeps: any of the listed hospitals, states, codes and payer classes.

    An empty list does not filter. A relation is filtered on the columns it has (``hospital_key``,
    ``state``, ``code`` or else ``primary_code``, ``payer_class``); a state filter reaches a relation without a ``state``
    column through its ``hospital_key`` and the hospitals relation. A relation that cannot honour
    a requested filter is not exported at all: an unfiltered file under a filtered name would
    mislead whoever opens it.
    """

    hospitals: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    payer_classes: tuple[str, ...] = ()

    @classmethod
    def of(cls, hospitals=(), states=(), codes=(), payer_classes=()) -> ExportFilters:
        """Filters from any iterables of strings; states are upper-cased, blanks dropped."""

        def clean(values, upper=False):
            out = sorted({v.strip().upper() if upper else v.strip() for v in values or () if v and v.strip()})
            return tuple(out)

        return cls(clean(hospitals), clean(states, upper=True), clean(codes), clean(payer_classes))

    def is_empty(self) -> bool:
        return not (self.hospitals or self.states or self.codes or self.payer_classes)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items() if v}

    def slug(self) -> str:
        """A short, stable folder name for these filters (readable prefix plus a hash of all values)."""
        parts = [f"{k}-{'+'.join(v)}" for k, v in self.as_dict().items()]
        readable = re.sub(r"[^A-Za-z0-9_.+-]", "_", "_".join(parts))[:60]
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{readable}_{digest}"

    def where(self, columns: set[str], hospitals_relation: str | None) -> tuple[str, list] | None:
        """SQL condition and its parameters for a relation with ``columns``; None if it cannot be applied.

        The condition is ``TRUE`` when nothing is filtered.
        """
        conditions: list[str] = []
        params: list = []
        for values, candidates in ((self.hospitals, ("hospital_key",)), (self.codes, ("code", "primary_code")),
                                   (self.payer_classes, ("payer_class",))):
            if not values:
                continue
            column = next((c for c in candidates if c in columns), None)
            if column is None:
                return None
            conditions.append(f"list_contains(?::VARCHAR[], CAST({quote_identifier(column)} AS VARCHAR))")
            params.append(list(values))
        if self.states:
            if "state" in columns:
                conditions.append("list_contains(?::VARCHAR[], upper(CAST(\"state\" AS VARCHAR)))")
            elif "hospital_key" in columns and hospitals_relation:
                conditions.append(
                    f"hospital_key IN (SELECT hospital_key FROM {hospitals_relation} "  # noqa: S608
                    "WHERE list_contains(?::VARCHAR[], upper(CAST(state AS VARCHAR))))"
                )
            else:
                return None
            params.append(list(self.states))
        return (" AND ".join(conditions) or "TRUE"), params


def export_relation(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    out_dir: Path,
    name: str,
    *,
    where: tuple[str, list] = ("TRUE", []),
    formats: tuple[str, ...] = ("parquet", "csv"),
    key: list[str] | tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Write ``<name>.parquet`` and/or ``<name>.csv`` for the rows of a relation that match ``where``.

    Rows are written in the order of ``key`` (:func:`order_clause`), so two builds of the same
    data give byte-identical files whatever order the warehouse holds them in. The CSV is read back with :func:`count_formula_cells` before this returns, so an extract that a
    spreadsheet would run code from raises :class:`UnsafeExportError` instead of being published.
    Returns row and byte counts.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    condition, params = where
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]  # noqa: S608
    selected = f"(SELECT * FROM {relation_sql} WHERE {condition} {order_clause(columns, key)})"  # noqa: S608
    result = {"rows": con.execute(f"SELECT count(*) FROM {selected}", params).fetchone()[0],  # noqa: S608
              "parquet_bytes": 0, "csv_bytes": 0}
    if "parquet" in formats:
        parquet_path = out_dir / f"{name}.parquet"
        con.execute(f"COPY {selected} TO ? (FORMAT parquet, COMPRESSION zstd)", [*params, str(parquet_path)])
        result["parquet_bytes"] = parquet_path.stat().st_size
    if "csv" in formats:
        csv_path = out_dir / f"{name}.csv"
        con.execute(f"COPY ({neutralised_select(con, selected, params)}) TO ? (FORMAT csv, HEADER true)",
                    [*params, str(csv_path)])
        assert_formula_safe(csv_path)
        result["csv_bytes"] = csv_path.stat().st_size
    return result


def assert_formula_safe(csv_path: str | Path) -> None:
    """Raise :class:`UnsafeExportError` when a written CSV has a cell a spreadsheet would run."""
    check = duckdb.connect()
    try:
        unsafe_rows = count_formula_cells(check, csv_path)
    finally:
        check.close()
    if unsafe_rows:
        raise UnsafeExportError(f"{Path(csv_path).name}: {unsafe_rows} row(s) would run as spreadsheet formulas")


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
