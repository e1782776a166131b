"""Column schema and first-rows preview of a table, as Dagster materialization metadata."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import duckdb

from price_pipeline.lib.lake import describe, preview_markdown


def table_metadata(con: duckdb.DuckDBPyConnection, relation_sql: str,
                   descriptions: Mapping[str, str] | None = None) -> dict:
    """``dagster/column_schema`` (dbt descriptions included when given) and a ``preview`` table."""
    columns = describe(con, relation_sql, descriptions)
    schema = dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in columns])
    return {
        "dagster/column_schema": schema,
        "preview": dg.MetadataValue.md(preview_markdown(con, relation_sql)),
    }


def parquet_table_metadata(path: str, descriptions: Mapping[str, str] | None = None) -> dict:
    """:func:`table_metadata` of a local Parquet file."""
    con = duckdb.connect()
    try:
        return table_metadata(con, f"read_parquet('{path.replace(chr(39), chr(39) * 2)}')", descriptions)
    finally:
        con.close()
