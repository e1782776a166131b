"""Analytics tables published to the lake as Parquet, for readers without the warehouse file.

The DuckDB warehouse is the dbt engine's working copy: one file on one machine (in production, on
a container's disk), locked while dbt writes it. After each build every published table is copied
to the lake (local folder or S3) as an immutable snapshot named by the build's UTC time, then to a
stable ``latest`` path, and last a small manifest names the build's snapshots, so that DuckDB,
pandas, Spark or Athena read the marts straight from the lake::

    marts/<name>/built_at=<YYYYmmddTHHMMSSZ>/<name>.parquet   kept, one per build
    marts/<name>/latest/<name>.parquet                        the newest build's copy
    marts/_latest.json                                        {"built_at", "tables": {name: {...}}}

Every object is written atomically by the lake (never a partial file). A reader that needs one
consistent set across tables reads the manifest and then its snapshot keys; ``latest`` paths are
for the common case of one table at a time.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from price_pipeline.lib.analytics.exports import (
    ExportFilters,
    export_relation,
    order_clause,
    quote_identifier,
)
from price_pipeline.lib.lake.layout import MARTS_MANIFEST_KEY, mart_latest_key, mart_snapshot_key
from price_pipeline.lib.lake.storage import Lake, connect_duckdb

BUILT_AT_FORMAT = "%Y%m%dT%H%M%SZ"


def build_stamp(now: dt.datetime | None = None) -> str:
    """The UTC time of a build as it appears in snapshot keys (sortable, no ``:``)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime(BUILT_AT_FORMAT)


def publish_tables(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    relations: dict[str, str],
    scratch: Path,
    *,
    built_at: str | None = None,
    keys: dict[str, list[str]] | None = None,
) -> dict:
    """Copy each ``name -> warehouse relation`` to the lake; returns the manifest that was written.

    Rows are written in the order of the relation's key in ``keys`` (relation -> columns; every
    column otherwise), so the same data gives the same bytes in every build. Relations missing from the warehouse are left out (and listed under ``missing``), so a partial
    dbt build publishes what it built and says what it did not.
    """
    built_at = built_at or build_stamp()
    present = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()}
    tables: dict[str, dict] = {}
    missing: list[str] = []
    scratch.mkdir(parents=True, exist_ok=True)
    for name, relation in sorted(relations.items()):
        if relation not in present:
            missing.append(name)
            continue
        local = scratch / f"{name}.parquet"
        relation_sql = quote_identifier(relation)
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()]  # noqa: S608
        order = order_clause(columns, (keys or {}).get(relation))
        con.execute(f"COPY (SELECT * FROM {relation_sql} {order}) TO ? (FORMAT parquet, COMPRESSION zstd)",  # noqa: S608
                    [str(local)])
        rows = con.execute(f"SELECT count(*) FROM {quote_identifier(relation)}").fetchone()[0]  # noqa: S608
        snapshot = mart_snapshot_key(name, built_at)
        lake.put_file(local, snapshot)
        tables[name] = {"rows": rows, "bytes": local.stat().st_size, "snapshot": snapshot,
                        "latest": mart_latest_key(name)}
    # Latest copies only after every snapshot exists, the manifest last: a reader following the
    # manifest never finds a key that is not there yet.
    for name, entry in tables.items():
        lake.put_file(scratch / f"{name}.parquet", entry["latest"])
    manifest = {"built_at": built_at, "tables": tables, "missing": missing}
    lake.put_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode(), MARTS_MANIFEST_KEY)
    return manifest


def read_manifest(lake: Lake) -> dict | None:
    """The newest build's manifest, or None when nothing was published yet."""
    if not lake.exists(MARTS_MANIFEST_KEY):
        return None
    return json.loads(lake.get_bytes(MARTS_MANIFEST_KEY))


class NothingPublishedError(LookupError):
    """The lake holds no published marts yet (``build_analytics`` has not run against it)."""


def _parquet_source(lake: Lake, key: str) -> str:
    return "read_parquet(" + "'" + lake.uri(key).replace("'", "''") + "')"


def export_published(
    lake: Lake,
    out_dir: Path,
    filters: ExportFilters,
    *,
    formats: tuple[str, ...] = ("csv",),
    names: list[str] | None = None,
) -> dict[str, dict]:
    """Extracts of the newest published build, filtered, written to a local folder.

    Reads the snapshots the manifest names (one consistent build, whatever is published while this
    runs) and applies :class:`ExportFilters` as the ``exports`` asset does; a table that cannot
    honour a filter is reported as ``{"skipped": reason}``. CSV files are formula-safe and checked.
    """
    manifest = read_manifest(lake)
    if manifest is None:
        raise NothingPublishedError(f"no published marts in {lake.uri('marts')}: run build_analytics first")
    tables = manifest["tables"]
    unknown = sorted(set(names or ()) - set(tables))
    if unknown:
        raise KeyError(f"not published: {', '.join(unknown)} (published: {', '.join(sorted(tables))})")
    selected = names or sorted(tables)
    con = connect_duckdb(lake)
    try:
        hospitals = _parquet_source(lake, tables["hospitals"]["snapshot"]) if "hospitals" in tables else None
        results: dict[str, dict] = {}
        for name in selected:
            source = _parquet_source(lake, tables[name]["snapshot"])
            columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}  # noqa: S608
            where = filters.where(columns, hospitals)
            if where is None:
                results[name] = {"skipped": f"no column for filters {filters.as_dict()}"}
                continue
            results[name] = export_relation(con, source, out_dir, name, where=where, formats=formats)
        return results
    finally:
        con.close()
