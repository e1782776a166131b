"""Checks on each ingestion layer, per hospital partition.

Blocking checks stop the hospital's downstream steps when continuing would publish wrong or
empty data; warning checks report without stopping.
"""


import json

import dagster as dg
import duckdb

from price_pipeline.defs.ingestion.assets import mrf_files, mrf_parsed, prices
from price_pipeline.defs.ingestion.batching import per_hospital_check
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.fetch import FilesManifest
from price_pipeline.lib.lake import PRICES_SCHEMA, layout
from price_pipeline.lib.ops.tags import ACCEPT_ROW_DROP_TAG
from price_pipeline.lib.parse import current_parsed_versions
from price_pipeline.lib.quality import MIN_ROW_RATIO, row_count_collapsed


@dg.asset_check(asset=mrf_files, partitions_def=hospital_partitions, blocking=True)
@per_hospital_check
def mrf_files_has_a_price_file(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """At least one listed file downloaded as data (not an error page) and stored by sha256.

    When it fails, the hospital's steps downstream (conformance_reports included) are skipped;
    ``mrf_files`` has then already recorded the conformance summary of the rejected/failed files
    (``conformance_recorded``), so the compliance marts show the hospital as serving no
    conformant file instead of not checked. The check itself only reads."""
    manifest = FilesManifest.from_json(
        price_pipeline.lake.get_bytes(layout.files_manifest_key(context.partition_key))
    )
    problems = [{"url": f.url, "status": f.status, "error": f.error} for f in manifest.files if f.status != "ok"]
    return dg.AssetCheckResult(
        passed=bool(manifest.ok_files),
        metadata={
            "files_ok": len(manifest.ok_files),
            "problems": dg.MetadataValue.json(problems[:20]),
            "conformance_recorded": not manifest.ok_files,
        },
    )


@dg.asset_check(asset=mrf_parsed, partitions_def=hospital_partitions, blocking=True)
@per_hospital_check
def mrf_parsed_has_rows(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """Some current file parsed as a CMS MRF with at least one charge row."""
    versions = current_parsed_versions(context.partition_key, lake=price_pipeline.lake)
    rows = sum(v.summary.rows_parsed for v in versions if v.summary.ok)
    unreadable = [
        {"file_sha256": v.file_sha256, "url": v.url, "findings": [f.as_dict() for f in v.summary.findings[:3]]}
        for v in versions
        if not v.summary.ok
    ]
    reason = no_rows_reason(rows, unreadable)
    return dg.AssetCheckResult(
        passed=rows > 0,
        description=reason,
        metadata={"rows": rows, "unreadable_files": dg.MetadataValue.json(unreadable),
                  **({"reason": reason} if reason else {})},
    )


def no_rows_reason(rows: int, unreadable: list) -> str | None:
    """Why a hospital has no charge rows, in words (None when it has some)."""
    if rows > 0:
        return None
    if unreadable:
        return f"no current file could be parsed ({len(unreadable)} unreadable)"
    return "header present, no data rows"


def _row_count(record) -> int | None:
    value = record.asset_materialization.metadata.get("dagster/row_count") if record else None
    return None if value is None else int(value.value)


def published_parsed_row_count(instance: dg.DagsterInstance, hospital_key: str) -> int | None:
    """Rows of the parsed version behind the hospital's currently published prices.

    That is the newest ``mrf_parsed`` materialization older than the newest ``prices``
    materialization of the partition (None when prices were never published).
    """
    latest_prices = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=prices.key, asset_partitions=[hospital_key]), limit=1
    ).records
    if not latest_prices:
        return None
    feeding = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=mrf_parsed.key, asset_partitions=[hospital_key], before_storage_id=latest_prices[0].storage_id
        ),
        limit=1,
    ).records
    return _row_count(feeding[0]) if feeding else None


@dg.asset_check(asset=mrf_parsed, partitions_def=hospital_partitions, blocking=True)
@per_hospital_check
def mrf_parsed_row_count_not_collapsed(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """Holds back a new parse with less than half the rows of the version behind the published
    prices: the step fails, ``prices`` is not rebuilt, and the previous prices stay published
    until the drop is explained (rerun with the run tag ``price_pipeline/accept_row_drop=true``
    to publish a legitimately smaller file)."""
    key = context.partition_key
    versions = current_parsed_versions(key, lake=price_pipeline.lake)
    current = sum(v.summary.rows_parsed for v in versions)  # as mrf_parsed's dagster/row_count
    previous = published_parsed_row_count(context.instance, key)
    collapsed = row_count_collapsed(previous, current)
    accepted = collapsed and context.run.tags.get(ACCEPT_ROW_DROP_TAG, "").lower() == "true"
    return dg.AssetCheckResult(
        passed=not collapsed or accepted,
        metadata={
            "rows": current,
            "published_rows": previous,
            "ratio": round(current / previous, 4) if previous else None,
            "min_ratio": MIN_ROW_RATIO,
            "held_back": collapsed and not accepted,
            "accepted_by_tag": accepted,
        },
        description=(
            f"{current} rows is less than {MIN_ROW_RATIO:.0%} of the {previous} rows behind the published "
            "prices: the new version is held back" if collapsed and not accepted else None
        ),
    )


@dg.asset_check(asset=mrf_parsed, partitions_def=hospital_partitions)
@per_hospital_check
def mrf_parsed_has_no_error_findings(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """Warns when parsing recorded error-severity findings (the data still flows)."""
    versions = current_parsed_versions(context.partition_key, lake=price_pipeline.lake)
    errors = [f.as_dict() for v in versions for f in v.summary.findings if f.severity == "error"]
    return dg.AssetCheckResult(
        passed=not errors,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"error_findings": len(errors), "examples": dg.MetadataValue.json(errors[:10])},
    )


@dg.asset_check(asset=prices, partitions_def=hospital_partitions, blocking=True)
@per_hospital_check
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
