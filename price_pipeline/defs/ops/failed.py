"""The failed-hospitals view (the dead-letter queue), read from the Dagster instance.

A hospital is *failed* when the latest finished run of its partition failed or was canceled.
Its reason comes from that run's events: the step failure (with the ``failure_kind`` recorded by
``@classified``), else the failed blocking checks, else the run failure message. Nothing is
stored besides Dagster's own run history: a successful rerun takes the hospital off the list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import dagster as dg

from price_pipeline.defs.ops.retries import FAILURE_KIND, FAILURE_REASON
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops.classify import PERMANENT, classify_message
from price_pipeline.lib.ops.tags import PARTITION_TAG

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
PAGE = 500


@dataclass(frozen=True)
class FailedHospital:
    hospital_key: str
    run_id: str
    status: str
    failed_at: float | None
    failure_kind: str
    reason: str
    step: str | None = None
    job_name: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _metadata_text(metadata, key: str) -> str | None:
    value = (metadata or {}).get(key)
    if value is None:
        return None
    return str(getattr(value, "value", value))


def latest_finished_runs(instance: dg.DagsterInstance, *, max_runs: int = 50_000) -> dict[str, dg.RunRecord]:
    """{hospital key: record of the newest finished run of that partition}."""
    latest: dict[str, dg.RunRecord] = {}
    cursor = None
    seen = 0
    while seen < max_runs:
        records = instance.get_run_records(
            dg.RunsFilter(statuses=FINISHED), limit=PAGE, cursor=cursor
        )
        if not records:
            break
        for record in records:
            key = record.dagster_run.tags.get(PARTITION_TAG)
            if key and key not in latest:
                latest[key] = record
        seen += len(records)
        cursor = records[-1].dagster_run.run_id
        if len(records) < PAGE:
            break
    return latest


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            details = {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}
            out.append(
                f"check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} failed: "
                + ", ".join(f"{k}={v}" for k, v in details.items())[:400]
            )
    return out


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> tuple[str, str, str | None]:
    """(failure_kind, reason, step key) of a failed run, from its events. A failed blocking check
    is permanent (the data is wrong; retrying gives the same answer until the source changes)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        data = event.step_failure_data
        if data.error is not None and data.error.cls_name == "DagsterAssetCheckFailedError":
            checks = _failed_checks(instance, run_id)
            if checks:
                return PERMANENT, "; ".join(checks)[:500], event.step_key
        user = data.user_failure_data
        kind = _metadata_text(user.metadata if user else None, FAILURE_KIND)
        reason = _metadata_text(user.metadata if user else None, FAILURE_REASON) or (
            user.description if user and user.description else (data.error.message.strip() if data.error else "")
        )
        if kind is None:
            kind = classify_message(reason)
        return kind, reason.splitlines()[0][:500] if reason else "step failed", event.step_key
    checks = _failed_checks(instance, run_id)
    if checks:
        return PERMANENT, "; ".join(checks)[:500], None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE):
        message = entry.dagster_event.message or entry.user_message or "run failed"
        return classify_message(message), message.splitlines()[0][:500], None
    return classify_message(None), "run failed without a step failure (killed, canceled or lost worker)", None


def failed_hospitals(
    instance: dg.DagsterInstance, *, kind: str | None = None, only_current_partitions: bool = True
) -> list[FailedHospital]:
    """Hospitals whose latest finished run failed or was canceled, newest failure first."""
    current = set(instance.get_dynamic_partitions(hospital_partitions.name)) if only_current_partitions else None
    out = []
    for key, record in latest_finished_runs(instance).items():
        run = record.dagster_run
        if run.status == dg.DagsterRunStatus.SUCCESS or (current is not None and key not in current):
            continue
        if run.status == dg.DagsterRunStatus.CANCELED:
            found = ("canceled", "run was canceled", None)
        else:
            found = failure_reason(instance, run.run_id)
        if kind and found[0] != kind:
            continue
        out.append(
            FailedHospital(
                hospital_key=key,
                run_id=run.run_id,
                status=run.status.value,
                failed_at=record.end_time,
                failure_kind=found[0],
                reason=found[1],
                step=found[2],
                job_name=run.job_name,
            )
        )
    return sorted(out, key=lambda f: f.failed_at or 0, reverse=True)
