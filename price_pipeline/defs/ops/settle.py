"""The one rule of when the pipeline is busy, and of when a rebuild runs anyway (the staleness
bound), for every sensor that waits for ingestion to settle: ``analytics_after_ingestion``,
``quality_after_ingestion`` and ``expectations_after_prices``.

A sensor names the layers it waits for (run tag ``price_pipeline/layer``,
:mod:`price_pipeline.lib.ops.tags`) and, optionally, a quiet time after the last of their runs
ended; the words and the decision are :mod:`price_pipeline.lib.ops.staleness`'s. The analytics and
quality rebuilds share their whole tick too (:func:`rebuild_tick`).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence

import dagster as dg

from price_pipeline.lib.ops import (
    CATALOG,
    INGESTION,
    PRIORITY_HIGH,
    PRIORITY_TAG,
    TRIGGER_TAG,
    layer_tags,
    staleness,
)
from price_pipeline.settings import Settings

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# Not yet holding a run slot.
QUEUED_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
# What the rebuilds of everything downstream of prices wait for.
INGESTION_LAYERS = (INGESTION, CATALOG)


# The follow-up sensors' tick (PRICE_PIPELINE_FOLLOWUP_SENSOR_INTERVAL, lib/ops/staleness.py).
FOLLOWUP_INTERVAL_SECONDS = staleness.FOLLOWUP_INTERVAL_SECONDS


def _last_changed(instance: dg.DagsterInstance, layer: str) -> float | None:
    latest = instance.get_run_records(dg.RunsFilter(tags=layer_tags(layer)), limit=1, order_by="update_timestamp")
    changed = latest[0].update_timestamp if latest else None
    if changed is not None and changed.tzinfo is None:  # stored naive, in UTC
        changed = changed.replace(tzinfo=datetime.UTC)
    return changed.timestamp() if changed is not None else None


def pipeline_busy(instance: dg.DagsterInstance, layers: Sequence[str] = INGESTION_LAYERS, *,
                  quiet_seconds: float = 0.0, until_started: Sequence[str] = ()) -> str | None:
    """Why a sensor waiting for ``layers`` should wait (None: settled): a run of one of them is
    queued or running, or — with ``quiet_seconds`` — one changed state less than that ago; or a
    run of one of the ``until_started`` layers is still queued (once it has a run slot, it no
    longer holds the sensor back)."""
    active = {layer: instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_STATUSES, tags=layer_tags(layer)))
              for layer in layers}
    queued = {layer: instance.get_runs_count(dg.RunsFilter(statuses=QUEUED_STATUSES, tags=layer_tags(layer)))
              for layer in until_started}
    last_changed = {layer: _last_changed(instance, layer) for layer in layers} if quiet_seconds and not any(
        active.values()) else {}
    return staleness.busy_reason(active, last_changed, now=time.time(), quiet_seconds=quiet_seconds, queued=queued)


def max_wait_seconds() -> float:
    """``PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES`` in seconds, read per tick."""
    return Settings.from_env().analytics_max_wait_minutes * 60


def decide(first_unseen_at: float | None, busy: str | None) -> staleness.Decision:
    """Run now? Settled, or past the staleness bound (see :func:`staleness.decide`)."""
    return staleness.decide(first_unseen_at=first_unseen_at, busy=busy, now=time.time(),
                            max_wait_seconds=max_wait_seconds())


# What the analytics and quality rebuilds are downstream of.
UPSTREAM = (dg.AssetKey("prices"), dg.AssetKey("hospitals"))


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


def bounded_request(instance: dg.DagsterInstance, built_up_to: int, newest: int, busy: str | None, prefix: str,
                    keys=UPSTREAM) -> dg.RunRequest | dg.SkipReason:
    """A run request when settled or past the staleness bound (priority-tagged then, so that it is
    dequeued ahead of the ingestion queue), else the reason to wait."""
    decision = decide(first_unseen_at(instance, built_up_to, keys), busy)
    if not decision.run:
        return dg.SkipReason(decision.why)
    tags = {TRIGGER_TAG: decision.why}
    if decision.why == staleness.BOUND:
        tags[PRIORITY_TAG] = str(PRIORITY_HIGH)
    return dg.RunRequest(run_key=f"{prefix}:{newest}", tags=tags)


def rebuild_tick(context: dg.SensorEvaluationContext, *, prefix: str, nothing_new: str,
                 require_prices: bool = False) -> dg.SensorResult | dg.SkipReason:
    """One tick of a sensor that rebuilds everything downstream of prices and hospitals once
    ingestion settles (or at the staleness bound): one run request keyed ``<prefix>:<storage id>``.
    The cursor is the storage id of the newest upstream materialization already built."""
    built_up_to = int(context.cursor or 0)
    newest = latest_upstream_storage_id(context.instance)
    if newest <= built_up_to:
        return dg.SkipReason(nothing_new)
    if require_prices and not context.instance.get_asset_records([dg.AssetKey("prices")]):
        return dg.SkipReason("no hospital has prices yet")
    request = bounded_request(context.instance, built_up_to, newest, pipeline_busy(context.instance), prefix)
    if isinstance(request, dg.SkipReason):
        return request
    return dg.SensorResult(run_requests=[request], cursor=str(newest))
