"""Checks on each ingestion layer, per hospital partition.

Blocking checks stop the hospital's downstream steps when continuing would publish wrong or
empty data; warning checks report without stopping.
"""


import json

import dagster as dg
import duckdb

from price_pipeline.defs.ingestion.assets import mrf_files, mrf_parsed, prices
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib import ingest, layout
from price_pipeline.lib.schemas import PRICES_SCHEMA


@dg.asset_check(asset=mrf_files, partitions_def=hospital_partitions, blocking=True)
def mrf_files_has_a_price_file(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """At least one listed file downloaded as data (not an error page) and stored by sha256."""
    manifest = ingest.FilesManifest.from_json(
        price_pipeline.lake.get_bytes(layout.files_manifest_key(context.partition_key))
    )
    problems = [{"url": f.url, "status": f.status, "error": f.error} for f in manifest.files if f.status != "ok"]
    return dg.AssetCheckResult(
        passed=bool(manifest.ok_files),
        metadata={"files_ok": len(manifest.ok_files), "problems": dg.MetadataValue.json(problems[:20])},
    )


@dg.asset_check(asset=mrf_parsed, partitions_def=hospital_partitions, blocking=True)
def mrf_parsed_has_rows(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """Some current file parsed as a CMS MRF with at least one charge row."""
    versions = ingest.current_parsed_versions(context.partition_key, lake=price_pipeline.lake)
    rows = sum(v.summary.get("rows_parsed", 0) for v in versions if v.summary.get("ok"))
    unreadable = [
        {"file_sha256": v.file_sha256, "url": v.url, "findings": v.summary.get("findings", [])[:3]}
        for v in versions
        if not v.summary.get("ok")
    ]
    return dg.AssetCheckResult(
        passed=rows > 0,
        metadata={"rows": rows, "unreadable_files": dg.MetadataValue.json(unreadable)},
    )


@dg.asset_check(asset=mrf_parsed, partitions_def=hospital_partitions)
def mrf_parsed_has_no_error_findings(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """Warns when parsing recorded error-severity findings (the data still flows)."""
    versions = ingest.current_parsed_versions(context.partition_key, lake=price_pipeline.lake)
    errors = [f for v in versions for f in v.summary.get("findings", []) if f.get("severity") == "error"]
    return dg.AssetCheckResult(
        passed=not errors,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"error_findings": len(errors), "examples": dg.MetadataValue.json(errors[:10])},
    )


@dg.asset_check(asset=prices, partitions_def=hospital_partitions, blocking=True)
def prices_schema_and_lineage_complete(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """The prices file has the canonical schema, rows, and lineage (file sha256 plus source row or
    JSON path) on every row, so any number can be traced back to the hospital's bytes."""
    with price_pipeline.lake.local_copy(layout.prices_key(context.partition_key)) as path:
        con = duckdb.connect()
        try:
            relation = con.read_parquet(str(path))
            columns = relation.columns
            total, missing_lineage, missing_kind = con.execute(
                "SELECT count(*), "
                "count(*) FILTER (WHERE file_sha256 IS NULL OR (source_row IS NULL AND source_path IS NULL)), "
                "count(*) FILTER (WHERE charge_kind IS NULL OR hospital_key IS NULL) "
                "FROM read_parquet(?)",
                [str(path)],
            ).fetchone()
        finally:
            con.close()
    missing_columns = [name for name in PRICES_SCHEMA.names if name not in columns]
    return dg.AssetCheckResult(
        passed=total > 0 and not missing_columns and missing_lineage == 0 and missing_kind == 0,
        metadata={
            "rows": total,
            "rows_without_lineage": missing_lineage,
            "rows_without_kind": missing_kind,
            "missing_columns": json.dumps(missing_columns),
        },
    )
