"""What a table asset holds, as Dagster metadata: its column schema and a preview of its first rows.

``dagster/column_schema`` is declared on the asset definition (so the UI shows a table's columns
before anything is materialised) and attached again to each materialization from the file or
relation actually written; ``preview`` is a Markdown table of the first rows (lib/lake/preview.py:
cells made inert, long text cut). Column descriptions come from one place per table: the Arrow
schemas' descriptions in lib/lake/schemas.py for the lake's Parquet tables, the dbt docs
(schema.yml, through the manifest) for the warehouse's models.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping

import dagster as dg
import duckdb
import pyarrow as pa

from price_pipeline.lib.lake import Column, Lake, connect_duckdb, describe, describe_arrow, preview_markdown

COLUMN_SCHEMA = "dagster/column_schema"
PREVIEW = "preview"


def table_schema(columns: Iterable[Column]) -> dg.TableSchema:
    """A Dagster column schema of described columns."""
    return dg.TableSchema(columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in columns])


def declared_schema(schema: pa.Schema, descriptions: Mapping[str, str] | None = None) -> dict:
    """Definition metadata of an asset that writes Parquet files of ``schema``."""
    return {COLUMN_SCHEMA: table_schema(describe_arrow(schema, descriptions))}


def table_metadata(con: duckdb.DuckDBPyConnection, relation_sql: str,
                   descriptions: Mapping[str, str] | None = None) -> dict:
    """``dagster/column_schema`` (descriptions included when given) and a ``preview`` table.

    Best effort: the data is already written when this runs, so a table that cannot be read back
    for display (an object store whose range reads DuckDB's httpfs refuses, a file replaced
    meanwhile) costs the preview, never the materialization. The schema declared on the asset
    definition still shows the columns; ``preview`` then says why it is missing.
    """
    try:
        return {
            COLUMN_SCHEMA: table_schema(describe(con, relation_sql, descriptions)),
            PREVIEW: dg.MetadataValue.md(preview_markdown(con, relation_sql)),
        }
    except (duckdb.Error, OSError) as e:
        reason = str(e).splitlines()[0][:300]
        dg.get_dagster_logger().warning(f"no schema or preview for {relation_sql}: {reason}")
        return {PREVIEW: dg.MetadataValue.text(f"preview not available: {reason}")}


def _parquet_source(path: str) -> str:
    # The lake's folders are named like hive partitions (hospital_key=<k>): DuckDB would add
    # them as a column the file does not have.
    return "read_parquet('" + path.replace("'", "''") + "', hive_partitioning = false)"


def _preview_connection(lake: Lake | None) -> duckdb.DuckDBPyConnection:
    con = connect_duckdb(lake) if lake is not None else duckdb.connect()
    # One thread: a LIMIT scan then decodes one row group at a time, so a preview of a 13 GB
    # file reads its footer and the start of its first row group, nothing more.
    con.execute("SET threads = 1")
    return con


# lake id -> (lake, its preview connection), while :func:`shared_preview_connections` is open
_SHARED_CONNECTIONS: contextvars.ContextVar[dict[int, tuple[Lake, duckdb.DuckDBPyConnection]] | None] = (
    contextvars.ContextVar("shared_preview_connections", default=None))


@contextlib.contextmanager
def shared_preview_connections() -> Iterator[None]:
    """Inside, :func:`parquet_table_metadata` of a lake reuses one preview connection.

    A batched ingestion run (defs/ingestion/batching.py) shows the schema and first rows of each
    hospital's table: a new DuckDB connection per table cost ~20 ms of CPU, more than the two
    tiny queries it ran. The connection only reads Parquet files named in each query (no cache
    of their contents is kept), so what it shows is what a fresh one would.
    """
    if _SHARED_CONNECTIONS.get() is not None:  # nested: the outer scope's connections serve
        yield
        return
    connections: dict[int, tuple[Lake, duckdb.DuckDBPyConnection]] = {}
    token = _SHARED_CONNECTIONS.set(connections)
    try:
        yield
    finally:
        _SHARED_CONNECTIONS.reset(token)
        for _, con in connections.values():
            con.close()


def parquet_table_metadata(path: str, descriptions: Mapping[str, str] | None = None, *,
                           lake: Lake | None = None) -> dict:
    """:func:`table_metadata` of one Parquet file: a local path, or a lake URI when ``lake`` is given."""
    shared = _SHARED_CONNECTIONS.get() if lake is not None else None
    if shared is None:
        con = _preview_connection(lake)
        try:
            return table_metadata(con, _parquet_source(path), descriptions)
        finally:
            con.close()
    if id(lake) not in shared:
        shared[id(lake)] = (lake, _preview_connection(lake))  # the lake kept: its id stays its own
    return table_metadata(shared[id(lake)][1], _parquet_source(path), descriptions)


def csv_table_metadata(path: str, descriptions: Mapping[str, str] | None = None) -> dict:
    """:func:`table_metadata` of a local CSV written by the exports (header row, comma, double
    quotes), every column read as text: the cells exactly as a spreadsheet receives them."""
    con = _preview_connection(None)
    try:
        source = ("read_csv('" + path.replace("'", "''") + "', header = true, all_varchar = true, "
                  "delim = ',', quote = '\"', escape = '\"')")
        return table_metadata(con, source, descriptions)
    finally:
        con.close()


def lake_table_metadata(lake: Lake, key: str, descriptions: Mapping[str, str] | None = None) -> dict:
    """:func:`table_metadata` of the Parquet file at ``key`` in the lake (local folder or S3);
    nothing when the step wrote no such file (e.g. a hospital whose file has no earlier version
    has no price changes)."""
    if not lake.exists(key):
        return {}
    return parquet_table_metadata(lake.uri(key), descriptions, lake=lake)
