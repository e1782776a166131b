"""Rebuild analytics when ingestion has produced something new and has settled."""

import dagster as dg

from price_pipeline.defs.analytics.jobs import build_analytics_job
from price_pipeline.lib.ops.tags import LAYER_TAG

UPSTREAM = (dg.AssetKey("prices"), dg.AssetKey("hospitals"))
ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def latest_upstream_storage_id(instance: dg.DagsterInstance) -> int:
    """Storage id of the newest materialization of any hospital's prices or of hospitals."""
    latest = 0
    for record in instance.get_asset_records(list(UPSTREAM)):
        last = record.asset_entry.last_materialization_record
        if last is not None:
            latest = max(latest, last.storage_id)
    return latest


def ingestion_in_flight(instance: dg.DagsterInstance) -> int:
    return sum(
        instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_STATUSES, tags={LAYER_TAG: layer}))
        for layer in ("ingestion", "catalog")
    )


@dg.sensor(
    job=build_analytics_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one build_analytics run once new prices or hospitals exist and no ingestion "
    "or catalog run is queued or running, so a wave of hospital runs causes one dbt build.",
)
def analytics_after_ingestion(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest upstream materialization already built."""
    built_up_to = int(context.cursor or 0)
    newest = latest_upstream_storage_id(context.instance)
    if newest <= built_up_to:
        return dg.SkipReason("no new prices or hospitals since the last analytics build")
    active = ingestion_in_flight(context.instance)
    if active:
        return dg.SkipReason(f"waiting for {active} ingestion/catalog runs to finish")
    if not context.instance.get_asset_records([dg.AssetKey("prices")]):
        return dg.SkipReason("no hospital has prices yet")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"analytics:{newest}")],
        cursor=str(newest),
    )
