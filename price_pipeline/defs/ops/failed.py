"""The failed-hospitals view (the dead-letter queue) per asset partition, read from the Dagster
instance.

An item is one hospital's ingestion asset, or one blocking check on it. It is listed while its
last attempt failed: a step of that asset failed (a failed blocking check fails the step of the
asset it checks, and is listed as the check), or the run stopped before the asset was built
(canceled, or a lost worker). It leaves the view only when that asset is materialized again (for
a check: when the check passes again) — a later successful run of another job or another asset
of the same hospital does not hide it. Each item carries the failure kind (internal / external /
canceled, :mod:`price_pipeline.lib.ops.classify`), the first and latest failure time, the number
of attempts since the last success and the latest reason. Nothing is stored besides Dagster's own
run and event history; the bookkeeping is :mod:`price_pipeline.lib.ops.deadletter`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from price_pipeline.defs.ops.retries import FAILURE_KIND, FAILURE_ORIGIN, FAILURE_REASON
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops import (
    CANCELED,
    INGESTION_ASSET_NAMES,
    INTERNAL,
    PARTITION_TAG,
    TRANSIENT,
    DeadLetter,
    Outcome,
    check_failure_reason,
    check_origin,
    classify_message,
    dead_letter_hospitals,
    dead_letters,
    origin_from_message,
)

BAD_ENDINGS = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
PAGE = 500
RUN_EVENTS = {
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.RUN_FAILURE,
}
ASSET_NAMES = set(INGESTION_ASSET_NAMES)


def _metadata_text(metadata, key: str) -> str | None:
    value = (metadata or {}).get(key)
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _failed_check_outcomes(records, step_key: str, default_partition: str | None, base: dict) -> list[Outcome]:
    """The failed blocking (ERROR) checks evaluated by one step of a run, one outcome per check
    and hospital. A batched run (a partition range) reports each check once, combined: its
    evaluation has no partition and names the failing hospitals, each with its own check
    metadata (``combine_check_results``), so each of them is listed as its own run would be."""
    out = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR or event.step_key != step_key:
            continue
        asset = evaluation.asset_key.to_user_string()
        if asset not in ASSET_NAMES:
            continue
        partition = getattr(evaluation, "partition", None) or default_partition
        if partition:
            by_hospital = {partition: {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}}
        else:
            named = (evaluation.metadata or {}).get("failing_hospitals")
            by_hospital = getattr(named, "value", None) or {}
        for hospital, metadata in sorted(by_hospital.items()):
            out.append(Outcome(hospital_key=hospital, asset=asset, check=evaluation.check_name, ok=False,
                               failure_kind=check_origin(evaluation.check_name),
                               reason=check_failure_reason(evaluation.check_name, asset, metadata or {}), **base))
    return out


def _step_failure_reason(event) -> tuple[str, bool, str]:
    """(origin, transient, reason) of a STEP_FAILURE event."""
    data = event.step_failure_data
    user = data.user_failure_data
    metadata = user.metadata if user else None
    reason = _metadata_text(metadata, FAILURE_REASON) or (
        user.description if user and user.description else (data.error.message.strip() if data.error else "")
    )
    reason = reason.splitlines()[0][:500] if reason else "step failed"
    origin = _metadata_text(metadata, FAILURE_ORIGIN) or origin_from_message(reason)
    kind = _metadata_text(metadata, FAILURE_KIND) or classify_message(reason)
    return origin, kind == TRANSIENT, reason


def _skip_run_shard_schema_checks(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> None:
    """Read the runs' event files without Dagster's per-file schema check.

    On the embedded instance (SQLite) each run's events are a database file of their own, and the
    first time a process opens one Dagster checks its schema revision, loading every alembic
    migration script (~0.1 s, more on a loaded machine): at 6,100 hospitals with 139 failed runs
    that was 17 s of a 20 s ``failed-hospitals``. A run's file that exists was created and stamped
    by the process that wrote the run's events, and the check would only stamp a file lacking a
    revision, never migrate one, so reading an existing file needs no check. Dagster records the
    files it has checked in a set on the storage; PostgreSQL (one events table) has none.
    ``test_dead_letter.py`` fails if the installed Dagster stops honouring it."""
    storage = instance.event_log_storage
    checked = getattr(storage, "_initialized_dbs", None)
    path_for_shard = getattr(storage, "path_for_shard", None)
    if isinstance(checked, set) and callable(path_for_shard):
        checked.update(run_id for run_id in run_ids if os.path.exists(path_for_shard(run_id)))


def run_outcomes(instance: dg.DagsterInstance, record: dg.RunRecord) -> list[Outcome]:
    """The failures of one failed or canceled run, per asset partition it planned."""
    run = record.dagster_run
    _skip_run_shard_schema_checks(instance, [run.run_id])
    records = list(instance.get_records_for_run(run.run_id, of_type=RUN_EVENTS).records)
    planned: dict[str, set[str]] = defaultdict(set)  # asset -> partitions
    step_assets: dict[str, set[str]] = defaultdict(set)  # step key -> assets
    built: set[tuple[str, str]] = set()
    for r in records:
        event = r.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            data = event.event_specific_data
            asset = data.asset_key.to_user_string()
            if asset not in ASSET_NAMES:
                continue
            if data.partition:
                planned[asset].add(data.partition)
            elif data.partitions_subset is not None:
                planned[asset].update(data.partitions_subset.get_partition_keys())
            elif run.tags.get(PARTITION_TAG):
                planned[asset].add(run.tags[PARTITION_TAG])
            if event.step_key:
                step_assets[event.step_key].add(asset)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            m = event.event_specific_data.materialization
            built.add((m.asset_key.to_user_string(), m.partition or ""))
    at = record.end_time or record.update_timestamp.timestamp()
    canceled = run.status == dg.DagsterRunStatus.CANCELED
    out: list[Outcome] = []
    failed_steps = [r for r in records if r.event_log_entry.dagster_event is not None
                    and r.event_log_entry.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE]
    for r in failed_steps:
        event = r.event_log_entry.dagster_event
        base = {"at": r.timestamp, "run_id": run.run_id, "job_name": run.job_name}
        # a failed blocking check fails its own step (a separate check) or its asset's step
        # (a check defined on the asset): listed as the check, on the asset it checks
        if event.step_failure_data.error is not None and (
                event.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"):
            found = _failed_check_outcomes(records, event.step_key, run.tags.get(PARTITION_TAG), base)
            if found:
                out += found
                continue
        origin, transient, reason = _step_failure_reason(event)
        for asset in sorted(step_assets.get(event.step_key) or ({event.step_key} & ASSET_NAMES)):
            for partition in sorted(planned.get(asset, set())):
                out.append(Outcome(hospital_key=partition, asset=asset, ok=False,
                                   failure_kind=CANCELED if canceled else origin,
                                   transient=transient, reason=reason, **base))
    if not failed_steps:
        # no step failed: the run was canceled, or died (lost worker, run monitor): every planned
        # asset partition it did not build is left undone
        message = "run was canceled" if canceled else next(
            ((r.event_log_entry.dagster_event.message or "run failed").splitlines()[0][:500] for r in records
             if r.event_log_entry.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE),
            "run failed without a step failure (lost worker or run monitor)")
        for asset, partitions in sorted(planned.items()):
            for partition in sorted(partitions):
                if (asset, partition) not in built:
                    out.append(Outcome(hospital_key=partition, asset=asset, at=at, ok=False,
                                       failure_kind=CANCELED if canceled else INTERNAL, reason=message,
                                       run_id=run.run_id, job_name=run.job_name))
    return out


def failure_outcomes(instance: dg.DagsterInstance, *, max_runs: int = 50_000) -> list[Outcome]:
    """Failures of every failed or canceled run (newest ``max_runs``)."""
    out: list[Outcome] = []
    cursor, seen = None, 0
    while seen < max_runs:
        records = instance.get_run_records(dg.RunsFilter(statuses=BAD_ENDINGS), limit=PAGE, cursor=cursor)
        for record in records:
            out += run_outcomes(instance, record)
        seen += len(records)
        if len(records) < PAGE:
            break
        cursor = records[-1].dagster_run.run_id
    return out


def success_outcomes(instance: dg.DagsterInstance, failures: list[Outcome]) -> list[Outcome]:
    """The newest success of each failed item after its first failure: a materialization of the
    asset, or a passed evaluation of the check."""
    first: dict[tuple[str, str, str | None], float] = {}
    for f in failures:
        item = (f.hospital_key, f.asset, f.check)
        first[item] = min(first.get(item, f.at), f.at)
    out: list[Outcome] = []
    by_asset: dict[str, dict[str, float]] = defaultdict(dict)
    for (hospital, asset, check), at in first.items():
        if check is None:
            by_asset[asset][hospital] = at
            continue
        check_key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        passed = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=1, status={AssetCheckExecutionRecordStatus.SUCCEEDED},
            partition_filter=PartitionKeyFilter(key=hospital),
        )
        if passed and passed[0].event is not None and passed[0].event.timestamp >= at:
            out.append(Outcome(hospital_key=hospital, asset=asset, check=check, at=passed[0].event.timestamp, ok=True))
    for asset, first_by_hospital in by_asset.items():
        keys = sorted(first_by_hospital)
        for i in range(0, len(keys), PAGE):
            chunk = keys[i: i + PAGE]
            after = min(first_by_hospital[k] for k in chunk)
            newest: dict[str, float] = {}
            cursor = None
            while True:
                result = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=chunk,
                                          after_timestamp=after),
                    limit=PAGE, cursor=cursor,
                )
                for record in result.records:
                    if record.partition_key:
                        newest[record.partition_key] = max(newest.get(record.partition_key, 0.0), record.timestamp)
                if not result.has_more:
                    break
                cursor = result.cursor
            out += [Outcome(hospital_key=k, asset=asset, at=t, ok=True) for k, t in newest.items()]
    return out


def failed_items(
    instance: dg.DagsterInstance, *, kind: str | None = None, only_current_partitions: bool = True
) -> list[DeadLetter]:
    """Every open item (see module doc), newest failure first; ``kind`` keeps one failure kind."""
    failures = failure_outcomes(instance)
    items = dead_letters([*failures, *success_outcomes(instance, failures)])
    if only_current_partitions:
        current = set(instance.get_dynamic_partitions(hospital_partitions.name))
        items = [i for i in items if i.hospital_key in current]
    return [i for i in items if kind is None or i.failure_kind == kind]


def failed_hospitals(instance: dg.DagsterInstance, **kwargs) -> list[str]:
    """The hospitals with at least one open item, newest failure first."""
    return dead_letter_hospitals(failed_items(instance, **kwargs))


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> tuple[str, str, str | None]:
    """(failure kind, reason, asset) of one failed run, for its alert: the first failed item."""
    record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)), None)
    if record is None:
        return INTERNAL, "run not found", None
    outcomes = run_outcomes(instance, record)
    if outcomes:
        first = outcomes[0]
        return first.failure_kind or INTERNAL, first.reason, first.asset + (f":{first.check}" if first.check else "")
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        origin, _, reason = _step_failure_reason(entry.dagster_event)
        return origin, reason, entry.dagster_event.step_key
    message = next((e.dagster_event.message for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
                    if e.dagster_event and e.dagster_event.message), "run failed")
    return origin_from_message(message), message.splitlines()[0][:500], None
