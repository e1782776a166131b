"""Rebuild the table-wide quality outputs when ingestion has produced something new and settled."""

import dagster as dg

from price_pipeline.defs.analytics.sensors import ingestion_in_flight, latest_upstream_storage_id
from price_pipeline.defs.quality.jobs import check_quality_job


@dg.sensor(
    job=check_quality_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one check_quality run once new prices exist and no ingestion or catalog run "
    "is queued or running (the same settle rule as analytics_after_ingestion).",
)
def quality_after_ingestion(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest upstream materialization already checked."""
    checked_up_to = int(context.cursor or 0)
    newest = latest_upstream_storage_id(context.instance)
    if newest <= checked_up_to:
        return dg.SkipReason("no new prices since the last quality run")
    active = ingestion_in_flight(context.instance)
    if active:
        return dg.SkipReason(f"waiting for {active} ingestion/catalog runs to finish")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"quality:{newest}")], cursor=str(newest))
