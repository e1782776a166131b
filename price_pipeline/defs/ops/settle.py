"""The one rule of when the pipeline is busy, and of when a rebuild runs anyway (the staleness
bound), for every sensor that waits for ingestion to settle: ``analytics_after_ingestion``,
``quality_after_ingestion`` and ``expectations_after_prices``.

A sensor names the layers it waits for (run tag ``price_pipeline/layer``,
:mod:`price_pipeline.lib.ops.tags`) and, optionally, a quiet time after the last of their runs
ended; the words and the decision are :mod:`price_pipeline.lib.ops.staleness`'s.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence

import dagster as dg

from price_pipeline.lib.ops import staleness
from price_pipeline.lib.ops.tags import CATALOG, INGESTION, layer_tags
from price_pipeline.settings import Settings

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# What the rebuilds of everything downstream of prices wait for.
INGESTION_LAYERS = (INGESTION, CATALOG)


def _last_changed(instance: dg.DagsterInstance, layer: str) -> float | None:
    latest = instance.get_run_records(dg.RunsFilter(tags=layer_tags(layer)), limit=1, order_by="update_timestamp")
    changed = latest[0].update_timestamp if latest else None
    if changed is not None and changed.tzinfo is None:  # stored naive, in UTC
        changed = changed.replace(tzinfo=datetime.UTC)
    return changed.timestamp() if changed is not None else None


def pipeline_busy(instance: dg.DagsterInstance, layers: Sequence[str] = INGESTION_LAYERS, *,
                  quiet_seconds: float = 0.0) -> str | None:
    """Why a sensor waiting for ``layers`` should wait (None: settled): a run of one of them is
    queued or running, or — with ``quiet_seconds`` — one changed state less than that ago."""
    active = {layer: instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_STATUSES, tags=layer_tags(layer)))
              for layer in layers}
    last_changed = {layer: _last_changed(instance, layer) for layer in layers} if quiet_seconds and not any(
        active.values()) else {}
    return staleness.busy_reason(active, last_changed, now=time.time(), quiet_seconds=quiet_seconds)


def max_wait_seconds() -> float:
    """``PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES`` in seconds, read per tick."""
    return Settings.from_env().analytics_max_wait_minutes * 60


def decide(first_unseen_at: float | None, busy: str | None) -> staleness.Decision:
    """Run now? Settled, or past the staleness bound (see :func:`staleness.decide`)."""
    return staleness.decide(first_unseen_at=first_unseen_at, busy=busy, now=time.time(),
                            max_wait_seconds=max_wait_seconds())
