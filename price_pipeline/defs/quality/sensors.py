"""Rebuild the table-wide quality outputs when ingestion has produced something new and settled,
or at the latest at the staleness bound (the rule of analytics_after_ingestion)."""

import dagster as dg

from price_pipeline.defs.ops import settle
from price_pipeline.defs.quality.jobs import check_quality_job


@dg.sensor(
    job=check_quality_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one check_quality run once new prices exist and no ingestion or catalog run "
    "is queued or running, or at the staleness bound (the same rule as analytics_after_ingestion).",
)
def quality_after_ingestion(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest upstream materialization already checked."""
    return settle.rebuild_tick(context, prefix="quality", nothing_new="no new prices since the last quality run")
