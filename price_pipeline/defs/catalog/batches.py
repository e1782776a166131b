"""Batched ingestion run requests, and the re-run of a failed batch hospital by hospital.

See :mod:`price_pipeline.defs.ingestion.batching` for what a batched run does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import dagster as dg

from price_pipeline.defs.ingestion.batching import ingest_batch_size, range_run_key
from price_pipeline.defs.ingestion.jobs import ingest_hospital_job
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops.batches import plan_batches
from price_pipeline.lib.ops.tags import (
    HOST_TAG,
    NO_HOST,
    PRIORITY_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    batch_run_tags,
    hospital_run_tags,
)


def batched_ingestion_requests(
    order: Sequence[str],
    wanted: Sequence[str],
    host_of: Mapping[str, str],
    *,
    run_key_of: Callable[[str], str],
    tags_of: Callable[[str], dict[str, str]],
    trigger: str,
    max_size: int | None = None,
) -> list[dg.RunRequest]:
    """One ingestion run request per batch of consecutive same-host hospitals (a partition
    range), a single-partition request for a batch of one and for priority hospitals (they
    must not wait for a batch)."""
    max_size = max_size or ingest_batch_size()
    single_tags = {key: tags_of(key) for key in wanted}
    batchable = [k for k in wanted if PRIORITY_TAG not in single_tags[k]]
    requests = []
    for batch in plan_batches(order, batchable, host_of, max_size=max_size):
        if len(batch.keys) == 1:
            key = batch.first
            requests.append(dg.RunRequest(
                job_name=ingest_hospital_job.name, partition_key=key, run_key=run_key_of(key), tags=single_tags[key]
            ))
            continue
        requests.append(dg.RunRequest(
            job_name=ingest_hospital_job.name,
            run_key=range_run_key(f"batch:{batch.first}:{batch.last}", [run_key_of(k) for k in batch.keys]),
            tags=batch_run_tags(batch.first, batch.last, len(batch.keys), batch.host, trigger=trigger),
        ))
    requests.extend(
        dg.RunRequest(job_name=ingest_hospital_job.name, partition_key=k, run_key=run_key_of(k), tags=single_tags[k])
        for k in wanted
        if PRIORITY_TAG in single_tags[k]
    )
    return requests


def keys_in_range(instance: dg.DagsterInstance, start: str, end: str) -> list[str]:
    """The hospital partitions from ``start`` to ``end`` inclusive, in the partitions' order."""
    keys = list(instance.get_dynamic_partitions(hospital_partitions.name))
    if start not in keys or end not in keys:
        return [k for k in (start, end) if k in keys]
    i, j = keys.index(start), keys.index(end)
    return keys[i : j + 1]


def failed_in_run(instance: dg.DagsterInstance, run_id: str) -> set[str] | None:
    """The hospitals a failed batch run names as failing (its step failures' ``failed_hospitals``
    and its failed error-severity checks' ``failing_hospitals``), or None when a failure names
    none (a crash, a lost worker): then every hospital of the batch is suspect."""
    keys: set[str] = set()
    types = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
    for entry in instance.all_logs(run_id, of_type=types):
        event = entry.dagster_event
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            # a failed warning check (conformance findings, GX) fails nobody
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                named = (evaluation.metadata or {}).get("failing_hospitals")
                keys |= set(getattr(named, "value", None) or {})
            continue
        data = event.step_failure_data
        if data.error is not None and data.error.cls_name == "DagsterAssetCheckFailedError":
            continue  # a blocking check failed: its evaluation names the hospitals
        user = data.user_failure_data
        named = (user.metadata or {}).get("failed_hospitals") if user else None
        if not getattr(named, "value", None):
            return None
        keys |= set(named.value)
    return keys or None


@dg.run_failure_sensor(
    monitored_jobs=[ingest_hospital_job],
    request_job=ingest_hospital_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="When a batched ingestion run (a range of hospitals) fails, re-runs the hospitals it "
    "names as failing one by one and the rest as smaller batches, so only a failing hospital ends failed.",
)
def split_failed_batches(context: dg.RunFailureSensorContext):
    """Re-runs of a failed batch: each failing hospital alone (where its own retries, failure
    classification and failed-hospitals entry apply), the others again in batches of the
    consecutive hospitals between them; every hospital alone when the failure names none. The
    run keys make this once per failed run."""
    run = context.dagster_run
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if not start or not end:
        return dg.SkipReason(f"run {run.run_id} is not a batch")
    host = run.tags.get(HOST_TAG, NO_HOST)
    keys = keys_in_range(context.instance, start, end)
    failing = failed_in_run(context.instance, run.run_id)
    if failing is None or not failing & set(keys):
        failing = set(keys)
    requests = [
        dg.RunRequest(run_key=f"split:{run.run_id}:{key}", partition_key=key,
                      tags={**hospital_run_tags(key, trigger="batch_split"), HOST_TAG: host})
        for key in keys
        if key in failing
    ]
    for batch in plan_batches(keys, [k for k in keys if k not in failing], {}, max_size=ingest_batch_size()):
        if len(batch.keys) == 1:
            requests.append(dg.RunRequest(run_key=f"split:{run.run_id}:{batch.first}", partition_key=batch.first,
                                          tags={**hospital_run_tags(batch.first, trigger="batch_split"),
                                                HOST_TAG: host}))
        else:
            requests.append(dg.RunRequest(
                run_key=f"split:{run.run_id}:{batch.first}:{batch.last}",
                tags=batch_run_tags(batch.first, batch.last, len(batch.keys), host, trigger="batch_split"),
            ))
    return requests
