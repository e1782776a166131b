"""Rebuild the table-wide quality outputs when ingestion has produced something new and settled,
or at the latest at the staleness bound (the rule of analytics_after_ingestion)."""

import dagster as dg

from price_pipeline.defs.analytics.sensors import (
    bounded_request,
    ingestion_in_flight,
    latest_upstream_storage_id,
)
from price_pipeline.defs.quality.jobs import check_quality_job
from price_pipeline.lib.ops import staleness


@dg.sensor(
    job=check_quality_job,
    minimum_interval_seconds=staleness.FOLLOWUP_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one check_quality run once new prices exist and no ingestion or catalog run "
    "is queued or running, or at the staleness bound (the same rule as analytics_after_ingestion).",
)
def quality_after_ingestion(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest upstream materialization already checked."""
    checked_up_to = int(context.cursor or 0)
    newest = latest_upstream_storage_id(context.instance)
    if newest <= checked_up_to:
        return dg.SkipReason("no new prices since the last quality run")
    active = ingestion_in_flight(context.instance)
    request = bounded_request(context.instance, checked_up_to, newest,
                              f"{active} ingestion/catalog runs queued or running" if active else None, "quality")
    if isinstance(request, dg.SkipReason):
        return request
    return dg.SensorResult(run_requests=[request], cursor=str(newest))
