"""The Great Expectations suite on each hospital's prices, as a non-blocking asset check.

Great Expectations is imported inside the check (through
:func:`price_pipeline.lib.quality.expectations.run_price_expectations`), never at module load:
the ingestion code location loads without it, and only a run that executes this check pays the
import (several seconds). The check warns (it does not block): the blocking checks of ``prices``
(schema, lineage) are cheap and decide whether data moves on; this one reports anomalies.
"""

import dagster as dg

from price_pipeline.defs.ingestion.assets import prices
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib import layout


@dg.asset_check(asset=prices, partitions_def=hospital_partitions)
def prices_meet_expectations(
    context: dg.AssetCheckExecutionContext, price_pipeline: PricePipelineResource
) -> dg.AssetCheckResult:
    """Great Expectations suite on the hospital's prices: nulls, allowed values, amount and
    percentage ranges, minimum <= maximum and p10 <= median <= p90 (warning)."""
    from price_pipeline.lib.quality.expectations import run_price_expectations

    with price_pipeline.lake.local_copy(layout.prices_key(context.partition_key)) as path:
        outcome = run_price_expectations(path)
    failed = [r for r in outcome["results"] if not r["success"]]
    return dg.AssetCheckResult(
        passed=outcome["success"],
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "expectations": len(outcome["results"]),
            "failed_expectations": len(failed),
            "rows": outcome["rows"],
            "rows_validated": outcome["rows_validated"],
            "sampled": outcome["sampled"],
            "failed": dg.MetadataValue.json(failed),
            "results": dg.MetadataValue.md(
                "\n".join(
                    ["| suite | expectation | column(s) | ok | unexpected |", "| --- | --- | --- | --- | ---: |"]
                    + [
                        f"| {r['suite']} | `{r['expectation']}` | "
                        f"{r['kwargs'].get('column') or r['kwargs'].get('column_A', '') + ' >= ' + r['kwargs'].get('column_B', '')} | "
                        f"{'yes' if r['success'] else '**no**'} | {r['unexpected_count'] or 0} |"
                        for r in outcome["results"]
                    ]
                )
            ),
        },
    )


# Off the hospital's ingestion run: the GX import would add seconds to each of thousands of
# ingest_hospital runs. A low-priority run per new prices materialization validates the partition
# instead (dagster/partition limits keep it from overlapping that hospital's ingestion).
check_price_expectations_job = dg.define_asset_job(
    name="check_price_expectations",
    selection=dg.AssetSelection.checks(prices_meet_expectations),
    partitions_def=hospital_partitions,
    executor_def=dg.in_process_executor,
    description="Great Expectations suite on one hospital's prices (warning check).",
    tags={"price_pipeline/layer": "quality", "dagster/priority": "-1"},
)

EXPECTATIONS_BATCH = 200  # prices materializations handled per sensor tick


@dg.sensor(
    job=check_price_expectations_job,
    minimum_interval_seconds=30,
    # Stopped by default: in Dagster 1.13 a job that selects only a partitioned asset check has no
    # partitions definition, so the daemon rejects the partitioned run requests this sensor makes
    # (its function is tested directly). Until that is reworked, run the GX check from the UI
    # with the prices partition, or start this sensor once the job targets a partitioned asset.
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a check_price_expectations run for each hospital whose prices were materialized.",
)
def expectations_after_prices(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest prices materialization already requested."""
    after = int(context.cursor or 0)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=prices.key, after_storage_id=after or None),
        limit=EXPECTATIONS_BATCH,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new prices materializations")
    newest: dict[str, int] = {}
    for record in records:
        if record.partition_key:
            newest[record.partition_key] = record.storage_id
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"expectations:{key}:{storage_id}", partition_key=key)
            for key, storage_id in sorted(newest.items())
        ],
        cursor=str(records[-1].storage_id),
    )
