"""Rebuild analytics when ingestion has produced something new and has settled — or, at the
latest, ``PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES`` after the first change not yet built, even if
ingestion never settles (lib/ops/staleness.py)."""

import time

import dagster as dg

from price_pipeline.defs.analytics.jobs import build_analytics_job
from price_pipeline.lib.ops import staleness
from price_pipeline.lib.ops.tags import LAYER_TAG, PRIORITY_HIGH, PRIORITY_TAG, TRIGGER_TAG

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


def first_unseen_at(instance: dg.DagsterInstance, after_storage_id: int, keys=UPSTREAM) -> float | None:
    """Time of the oldest materialization of ``keys`` after the storage id (None: none)."""
    times = []
    for key in keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after_storage_id or None), limit=1, ascending=True
        ).records
        if records:
            times.append(records[0].timestamp)
    return min(times) if times else None


def max_wait_seconds() -> float:
    from price_pipeline.settings import Settings

    return Settings.from_env().analytics_max_wait_minutes * 60


def bounded_request(instance: dg.DagsterInstance, built_up_to: int, newest: int, busy: str | None, prefix: str,
                    keys=UPSTREAM) -> dg.RunRequest | dg.SkipReason:
    """A run request when settled or past the staleness bound (priority-tagged then, so that it is
    dequeued ahead of the ingestion queue), else the reason to wait."""
    decision = staleness.decide(first_unseen_at=first_unseen_at(instance, built_up_to, keys), busy=busy,
                                now=time.time(), max_wait_seconds=max_wait_seconds())
    if not decision.run:
        return dg.SkipReason(decision.why)
    tags = {TRIGGER_TAG: decision.why}
    if decision.why == staleness.BOUND:
        tags[PRIORITY_TAG] = str(PRIORITY_HIGH)
    return dg.RunRequest(run_key=f"{prefix}:{newest}", tags=tags)


def ingestion_in_flight(instance: dg.DagsterInstance) -> int:
    return sum(
        instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_STATUSES, tags={LAYER_TAG: layer}))
        for layer in ("ingestion", "catalog")
    )


@dg.sensor(
    job=build_analytics_job,
    minimum_interval_seconds=staleness.FOLLOWUP_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests one build_analytics run once new prices or hospitals exist and no ingestion "
    "or catalog run is queued or running, so a wave of hospital runs causes one dbt build; at the "
    "latest PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES (30) after the first unbuilt change, settled or not.",
)
def analytics_after_ingestion(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest upstream materialization already built."""
    built_up_to = int(context.cursor or 0)
    newest = latest_upstream_storage_id(context.instance)
    if newest <= built_up_to:
        return dg.SkipReason("no new prices or hospitals since the last analytics build")
    if not context.instance.get_asset_records([dg.AssetKey("prices")]):
        return dg.SkipReason("no hospital has prices yet")
    active = ingestion_in_flight(context.instance)
    request = bounded_request(context.instance, built_up_to, newest,
                              f"{active} ingestion/catalog runs queued or running" if active else None, "analytics")
    if isinstance(request, dg.SkipReason):
        return request
    return dg.SensorResult(run_requests=[request], cursor=str(newest))
