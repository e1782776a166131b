"""Alert sensors: every failed run and every failed asset check, to the webhook and/or e-mail.

Channels come from the environment (:class:`price_pipeline.lib.ops.alerts.AlertConfig`); with none
configured the sensors only log. They live in the ``ingestion`` location and watch every code
location, so each failure is reported once.
"""


import os

import dagster as dg

from price_pipeline.defs.ops.failed import failure_reason
from price_pipeline.lib.ops.alerts import Alert, AlertConfig, deliver
from price_pipeline.lib.ops.tags import PARTITION_TAG

UI_URL = os.environ.get("PRICE_PIPELINE_UI_URL", "")  # e.g. https://dagster.example.org, for links
CHECK_SENSOR_INTERVAL = int(os.environ.get("PRICE_PIPELINE_ALERT_SENSOR_INTERVAL", "30"))
CHECK_BATCH = 200


def _ui_link(path: str) -> str | None:
    return f"{UI_URL.rstrip('/')}{path}" if UI_URL else None


def _send(context, alert: Alert) -> None:
    config = AlertConfig.from_env()
    if not config.enabled:
        context.log.info(f"alert (no channel configured): {alert.title}")
        return
    for result in deliver(alert, config):
        log = context.log.info if result.ok else context.log.error
        log(f"alert {alert.kind} via {result.channel}: {'delivered' if result.ok else 'NOT delivered'} ({result.detail})")


def run_failure_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str | None = None) -> Alert:
    kind, reason, step = failure_reason(instance, run.run_id)
    hospital = run.tags.get(PARTITION_TAG)
    where = f" for hospital {hospital}" if hospital else ""
    return Alert(
        kind="run_failure",
        title=f"run of {run.job_name}{where} failed ({kind})",
        summary=reason or message or "run failed",
        hospital_key=hospital,
        run_id=run.run_id,
        job_name=run.job_name,
        failure_kind=kind,
        url=_ui_link(f"/runs/{run.run_id}"),
        details={"step": step, "tags": {k: v for k, v in run.tags.items() if not k.startswith(".")}},
    )


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=CHECK_SENSOR_INTERVAL,
    description="Sends every failed run (any job, any location) to the alert webhook and e-mail, with the "
    "hospital, the failing step and whether the failure is transient or permanent.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext):
    _send(context, run_failure_alert(context.instance, context.dagster_run, context.failure_event.message))


def check_failure_alert(entry: dg.EventLogEntry) -> Alert | None:
    evaluation = entry.dagster_event.event_specific_data
    if evaluation is None or evaluation.passed:
        return None
    asset = evaluation.asset_key.to_user_string()
    severity = "warning" if evaluation.severity == dg.AssetCheckSeverity.WARN else "error"
    partition = getattr(evaluation, "partition", None) or entry.dagster_event.partition
    where = f" for hospital {partition}" if partition else ""
    details = {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}
    return Alert(
        kind="check_failure",
        severity=severity,
        title=f"check {evaluation.check_name} on {asset}{where} failed",
        summary=evaluation.description or f"{evaluation.check_name} did not pass",
        hospital_key=partition,
        run_id=entry.run_id,
        asset_key=asset,
        check_name=evaluation.check_name,
        url=_ui_link(f"/runs/{entry.run_id}"),
        details=details,
    )


def _min_severity() -> str:
    return os.environ.get("PRICE_PIPELINE_ALERT_CHECK_SEVERITY", "warning").lower()


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def finished_runs_since(instance: dg.DagsterInstance, cursor: dict) -> list[dg.RunRecord]:
    """Runs that finished after the cursor, oldest first (works on every event log storage, run
    sharded SQLite included, because it reads check evaluations run by run)."""
    from datetime import UTC, datetime

    after = datetime.fromtimestamp(cursor.get("ts", 0), tz=UTC)
    records = instance.get_run_records(dg.RunsFilter(statuses=FINISHED, updated_after=after), limit=CHECK_BATCH)
    seen = set(cursor.get("ids", []))
    return sorted((r for r in records if r.dagster_run.run_id not in seen), key=lambda r: r.update_timestamp)


@dg.sensor(
    name="alert_on_check_failure",
    minimum_interval_seconds=CHECK_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends every failed asset check (blocking or warning) of every finished run to the alert "
    "webhook and e-mail. The cursor is the update time of the last run looked at.",
)
def alert_on_check_failure(context: dg.SensorEvaluationContext):
    import json
    import time

    instance = context.instance
    if context.cursor is None:
        # first tick: start from now, never alert on history
        context.update_cursor(json.dumps({"ts": time.time(), "ids": []}))
        return dg.SkipReason("started watching check evaluations")
    cursor = json.loads(context.cursor)
    records = finished_runs_since(instance, cursor)
    if not records:
        return dg.SkipReason("no newly finished runs")
    sent = 0
    for run_record in records:
        for entry in instance.all_logs(run_record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            alert = check_failure_alert(entry)
            if alert is not None and (alert.severity == "error" or _min_severity() != "error"):
                _send(context, alert)
                sent += 1
    last = records[-1].update_timestamp.timestamp()
    ids = [r.dagster_run.run_id for r in records if r.update_timestamp.timestamp() >= last]
    context.update_cursor(json.dumps({"ts": last, "ids": ids}))
    return dg.SkipReason(f"{len(records)} finished runs looked at, {sent} check failures alerted")
