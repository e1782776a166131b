"""A small code location for the staleness-bound daemon test: a continuous trickle of ingestion
runs (a sensor requests one every tick) against the real ``analytics_after_ingestion`` sensor and
the real ``build_analytics`` job definition, whose selection (the analytics and exports groups)
resolves here to one stand-in mart."""

import time

import dagster as dg

from price_pipeline.defs.analytics.jobs import build_analytics_job
from price_pipeline.defs.analytics.sensors import analytics_after_ingestion
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops.tags import LAYER_TAG

# Bounded (the trickle stops by itself), but long enough to outlast the bound on a slow machine:
# with 40 runs a fast queue drained before the analytics sensor's first tick (the test then
# proved nothing). The test ends at the analytics request, so the rest never runs.
TRICKLE_RUNS = 200


@dg.asset(name="prices", partitions_def=hospital_partitions, group_name="ingestion")
def prices_stand_in() -> None:
    """Stands in for a hospital's prices: takes a moment, like a real ingestion run."""
    time.sleep(2)


@dg.asset(name="hospitals", group_name="catalog")
def hospitals_stand_in() -> None:
    """The catalog (never materialized here)."""


@dg.asset(name="mart_prices", group_name="analytics")
def mart_stand_in() -> None:
    """Stands in for the dbt marts the analytics build rebuilds."""


ingest = dg.define_asset_job("ingest_hospital", selection=[prices_stand_in], partitions_def=hospital_partitions,
                             tags={LAYER_TAG: "ingestion"})


@dg.sensor(job=ingest, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def trickle(context: dg.SensorEvaluationContext):
    """One new hospital's ingestion run per tick, TRICKLE_RUNS in all."""
    n = int(context.cursor or 0)
    if n >= TRICKLE_RUNS:
        return dg.SkipReason("trickle over")
    key = f"t-{n:03d}"
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key)],
        dynamic_partitions_requests=[hospital_partitions.build_add_request([key])],
        cursor=str(n + 1),
    )


defs = dg.Definitions(
    assets=[prices_stand_in, hospitals_stand_in, mart_stand_in],
    jobs=[ingest, build_analytics_job],
    sensors=[trickle, analytics_after_ingestion],
    executor=dg.in_process_executor,
)
