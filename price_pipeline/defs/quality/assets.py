"""Table-wide quality over every hospital: anomaly checks in SQL and the quarantine table.

Both assets read the lake only (DuckDB over the per-hospital Parquet files, through
:func:`price_pipeline.lib.lake.storage.connect_duckdb` for S3) and never the warehouse, so they do not
need the ``duckdb_warehouse`` pool and run beside the dbt build.
"""

import os
import tempfile

import dagster as dg
import pyarrow.parquet as pq

from price_pipeline.defs.ops.retries import timed
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.defs.table_metadata import declared_schema, lake_table_metadata
from price_pipeline.lib.lake import PRICES_SCHEMA, connect_duckdb, layout
from price_pipeline.lib.quality import (
    QUARANTINE_SCHEMA,
    TABLE_CHECKS,
    build_quarantine,
    run_table_checks,
    summarize_quarantine,
)

PRICES = dg.AssetKey("prices")
QUALITY_CHECK_NAMES = tuple(TABLE_CHECKS)


def _prices_uris(lake) -> list[str]:
    return [lake.uri(k) for k in lake.list_keys(layout.PRICES_PREFIX) if layout.is_prices_key(k)]


def _publish(lake, table, key: str) -> int:
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        lake.put_file(tmp, key)
        return os.path.getsize(tmp)
    finally:
        os.unlink(tmp)


@dg.asset(
    deps=[PRICES],
    group_name="quality",
    kinds={"duckdb", "parquet"},
    owners=["team:analytics"],
    check_specs=[
        dg.AssetCheckSpec(name, asset="price_anomalies", description=description)
        for name, description in TABLE_CHECKS.items()
    ],
)
@timed
def price_anomalies(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """Table-wide checks in SQL over every hospital's prices (duplicates, placeholder values,
    negotiated above gross, extreme outliers per code across hospitals by robust z-score, amounts
    above the extreme_amount_ceiling setting with the items listed); the
    flagged rows with lineage are written to ``quality/price_anomalies.parquet``. Each check
    warns with its count and up to 10 examples."""
    lake = price_pipeline.lake
    uris = _prices_uris(lake)
    con = connect_duckdb(lake)
    try:
        if uris:
            con.read_parquet(uris, union_by_name=True).create_view("prices_files")
        else:  # no hospital has prices yet: the same columns, no rows
            con.from_arrow(PRICES_SCHEMA.empty_table()).create_view("prices_files")
        results, flagged = run_table_checks(
            con, "prices_files", extreme_amount_ceiling=price_pipeline.settings.extreme_amount_ceiling
        )
    finally:
        con.close()
    size = _publish(lake, flagged, layout.PRICE_ANOMALIES_KEY)
    check_results = [
        dg.AssetCheckResult(
            check_name=r.name,
            passed=r.passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "flagged_rows": r.flagged,
                "rows_checked": r.stats.get("rows_checked", 0),
                "hospitals_checked": r.stats.get("hospitals_checked", 0),
                "by_hospital": dg.MetadataValue.json(r.stats.get("by_hospital", {})),
                "examples": dg.MetadataValue.json(r.examples),
                **({"items": dg.MetadataValue.json(r.stats["items"]), "ceiling": r.stats["ceiling"]}
                   if "items" in r.stats else {}),
            },
        )
        for r in results
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": flagged.num_rows,
            "flagged_by_check": dg.MetadataValue.json({r.name: r.flagged for r in results}),
            "prices_files": len(uris),
            "bytes": size,
            "lake_key": dg.MetadataValue.path(lake.uri(layout.PRICE_ANOMALIES_KEY)),
            **lake_table_metadata(lake, layout.PRICE_ANOMALIES_KEY),
        },
        check_results=check_results,
    )


@dg.asset(
    deps=[PRICES],
    group_name="quality",
    kinds={"duckdb", "parquet"},
    owners=["team:analytics"],
    metadata=declared_schema(QUARANTINE_SCHEMA),
)
@timed
def quarantine(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """Every current failure of every hospital in one table, ``quality/quarantine.parquet``: files
    that failed to download or were rejected, files that could not be parsed, and rows the parser
    quarantined, each with its reason and where the evidence is kept. A rerun that fixes a
    hospital removes its entries (``price-pipeline quarantine`` lists it)."""
    lake = price_pipeline.lake
    table = build_quarantine(lake)
    size = _publish(lake, table, layout.QUARANTINE_KEY)
    summary = summarize_quarantine(table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "by_kind": dg.MetadataValue.json(summary["by_kind"]),
            "by_hospital": dg.MetadataValue.json(summary["by_hospital"]),
            "examples": dg.MetadataValue.json(
                [{k: v for k, v in r.items() if v is not None} for r in table.slice(0, 10).to_pylist()]
            ),
            "bytes": size,
            "lake_key": dg.MetadataValue.path(lake.uri(layout.QUARANTINE_KEY)),
            **lake_table_metadata(lake, layout.QUARANTINE_KEY),
        }
    )
