"""Rebuild analytics when ingestion has produced something new and has settled — or, at the
latest, ``PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES`` after the first change not yet built, even if
ingestion never settles (the rule of defs/ops/settle.py)."""

import dagster as dg

from price_pipeline.defs.analytics.jobs import build_analytics_job
from price_pipeline.defs.ops import settle


@dg.sensor(
    job=build_analytics_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one build_analytics run once new prices or hospitals exist and no ingestion "
    "or catalog run is queued or running, so a wave of hospital runs causes one dbt build; at the "
    "latest PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES (30) after the first unbuilt change, settled or not.",
)
def analytics_after_ingestion(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest upstream materialization already built."""
    return settle.rebuild_tick(context, prefix="analytics", require_prices=True,
                               nothing_new="no new prices or hospitals since the last analytics build")
