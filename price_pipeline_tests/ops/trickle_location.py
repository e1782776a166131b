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

# Bounded (the trickle stops by itself), but long enough to outlast the bound on a slow machine.
# The test ends at the analytics request, so the rest never runs.
TRICKLE_RUNS = 200
# Runs kept waiting in the queue. One run per tick was not enough: under load the daemon ticked
# the sensor less often than the queue drained, ingestion settled between ticks, and the test
# proved nothing (CI, stop 22). With a standing backlog the pipeline is never idle: draining it
# takes BACKLOG runs x (run time + launch) / 2 slots, well above a tick even on a loaded machine.
BACKLOG = 6
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


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
    """New hospitals' ingestion runs, topping the queue up to BACKLOG waiting runs each tick,
    TRICKLE_RUNS in all."""
    n = int(context.cursor or 0)
    if n >= TRICKLE_RUNS:
        return dg.SkipReason("trickle over")
    waiting = context.instance.get_runs_count(dg.RunsFilter(job_name=ingest.name, statuses=WAITING))
    keys = [f"t-{i:03d}" for i in range(n, min(TRICKLE_RUNS, n + max(0, BACKLOG - waiting)))]
    if not keys:
        return dg.SkipReason(f"{waiting} runs waiting")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=key) for key in keys],
        dynamic_partitions_requests=[hospital_partitions.build_add_request(keys)],
        cursor=str(n + len(keys)),
    )


defs = dg.Definitions(
    assets=[prices_stand_in, hospitals_stand_in, mart_stand_in],
    jobs=[ingest, build_analytics_job],
    sensors=[trickle, analytics_after_ingestion],
    executor=dg.in_process_executor,
)
