"""Price history per hospital: what changed between the newest file version and the previous one."""


import dagster as dg

from price_pipeline.defs.ingestion.assets import ONE_HOSPITAL_PER_RUN, prices
from price_pipeline.defs.ingestion.batching import per_hospital
from price_pipeline.defs.ops.retries import LAKE_RETRY, classified
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.defs.table_metadata import declared_schema, lake_table_metadata
from price_pipeline.lib.lake import PRICE_CHANGES_DESCRIPTIONS, PRICE_CHANGES_SCHEMA, layout
from price_pipeline.lib.prices import compute_price_changes


@dg.asset(
    deps=[prices],
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"duckdb", "parquet"},
    retry_policy=LAKE_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:analytics"],
    metadata=declared_schema(PRICE_CHANGES_SCHEMA, PRICE_CHANGES_DESCRIPTIONS),
)
@per_hospital
@classified
def price_changes(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """How the hospital's prices moved: its newest file version compared with the version it replaced.

    Rows are matched on the natural key (item description, codes, setting, billing class,
    modifiers, drug unit, payer, plan, charge kind) and written to
    ``price_changes/hospital_key=<key>/changes.parquet`` as ``added``, ``removed`` or
    ``changed`` (old and new amount / percentage / text, the change and its ratio). Unchanged
    rows are only counted. With a single version the file is empty.
    """
    key = context.partition_key
    with price_pipeline.scratch_dir("price_changes") as scratch:
        result = compute_price_changes(key, lake=price_pipeline.lake, scratch_dir=scratch)
    counts = result.counts
    lake = price_pipeline.lake
    changes_key = layout.price_changes_key(key)
    return dg.MaterializeResult(
        metadata={
            **lake_table_metadata(lake, changes_key, PRICE_CHANGES_DESCRIPTIONS),
            "dagster/row_count": counts["added"] + counts["removed"] + counts["changed"],
            "rows_added": counts["added"],
            "rows_removed": counts["removed"],
            "rows_changed": counts["changed"],
            "rows_unchanged": counts["unchanged"],
            "has_previous_version": result.old_file_sha256 is not None,
            "new_file_sha256": result.new_file_sha256 or "",
            "old_file_sha256": result.old_file_sha256 or "",
            "bytes": result.bytes,
            "lake_key": dg.MetadataValue.path(lake.uri(changes_key)),
        }
    )
