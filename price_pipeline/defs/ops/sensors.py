"""Alert sensors: failures grouped per wave, and thresholds on the seed's metrics, to the webhook
and/or e-mail.

* ``alert_on_failures`` — every tick (``PRICE_PIPELINE_ALERT_SENSOR_INTERVAL``, 120 s) looks at the
  runs that finished since the last one and sends **one** alert for all their failed runs and
  failed asset checks (a bad wave of hundreds of hospitals is one message, listing them), with
  each run's failure kind (internal / external). Canceled runs are not failures.
* ``alert_on_thresholds`` — every ``PRICE_PIPELINE_THRESHOLD_SENSOR_INTERVAL`` (600 s) computes the
  last 24 h's metrics (lib/ops/report.py) and sends one alert for the thresholds newly breached:
  a job's internal failure rate above ``PRICE_PIPELINE_ALERT_MAX_INTERNAL_FAILURE_RATE`` (0.01),
  the mean ingestion run above ``PRICE_PIPELINE_ALERT_MAX_MEAN_INGESTION_SECONDS`` (30), a mart
  whose freshness policy fails (the freshness daemon's state). A breach is alerted when it starts,
  and again only after it has cleared.

Channels come from the environment (:class:`price_pipeline.lib.ops.alerts.AlertConfig`); with none
configured the sensors only log. They live in the ``ingestion`` location and read the whole
instance, so each failure is reported once.
"""

import json
import time
from datetime import UTC, datetime

import dagster as dg

from price_pipeline.defs.ops.failed import failure_reason
from price_pipeline.lib.ops import report as report_lib
from price_pipeline.lib.ops.alerts import Alert, AlertConfig, deliver, grouped_alert
from price_pipeline.lib.ops.tags import PARTITION_TAG
from price_pipeline.settings import Settings

# Read when the code location loads (part of the sensors' definitions).
UI_URL = Settings.from_env().ui_url  # e.g. https://dagster.example.org, for links
ALERT_SENSOR_INTERVAL = Settings.from_env().alert_sensor_interval_seconds
THRESHOLD_SENSOR_INTERVAL = Settings.from_env().threshold_sensor_interval_seconds
CHECK_BATCH = 500
MART_PREFIX = "mart_"


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


def run_failure_item(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict:
    """One failed run as an item of a grouped alert."""
    kind, reason, where = failure_reason(instance, run.run_id)
    hospital = run.tags.get(PARTITION_TAG)
    return {
        "type": "run_failure", "run_id": run.run_id, "job_name": run.job_name, "hospital_key": hospital,
        "failure_kind": kind, "asset": where, "reason": reason, "url": _ui_link(f"/runs/{run.run_id}"),
        "line": f"{run.job_name}{' ' + hospital if hospital else ''}: {kind}: {reason}"[:300],
    }


def check_failure_item(entry: dg.EventLogEntry) -> dict | None:
    """One failed asset check as an item of a grouped alert (None when it passed)."""
    evaluation = entry.dagster_event.event_specific_data
    if evaluation is None or evaluation.passed:
        return None
    asset = evaluation.asset_key.to_user_string()
    partition = getattr(evaluation, "partition", None) or entry.dagster_event.partition
    severity = "warning" if evaluation.severity == dg.AssetCheckSeverity.WARN else "error"
    return {
        "type": "check_failure", "run_id": entry.run_id, "asset_key": asset, "check_name": evaluation.check_name,
        "hospital_key": partition, "severity": severity,
        "line": f"check {evaluation.check_name} on {asset}{' ' + partition if partition else ''} ({severity})",
    }


def _min_severity() -> str:
    return Settings.from_env().alert_check_severity


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def finished_runs_since(instance: dg.DagsterInstance, cursor: dict) -> list[dg.RunRecord]:
    """Runs that finished after the cursor, oldest first (works on every event log storage, run
    sharded SQLite included, because it reads check evaluations run by run)."""
    after = datetime.fromtimestamp(cursor.get("ts", 0), tz=UTC)
    records = instance.get_run_records(dg.RunsFilter(statuses=FINISHED, updated_after=after), limit=CHECK_BATCH)
    seen = set(cursor.get("ids", []))
    return sorted((r for r in records if r.dagster_run.run_id not in seen), key=lambda r: r.update_timestamp)


def wave_alert(instance: dg.DagsterInstance, records: list[dg.RunRecord]) -> Alert | None:
    """One alert for the failed runs and failed checks among the finished runs (None: nothing)."""
    runs, checks = [], []
    for record in records:
        run = record.dagster_run
        if run.status == dg.DagsterRunStatus.FAILURE:
            runs.append(run_failure_item(instance, run))
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            item = check_failure_item(entry)
            if item is not None and (item["severity"] == "error" or _min_severity() != "error"):
                checks.append(item)
    if not runs and not checks:
        return None
    internal = sum(1 for r in runs if r["failure_kind"] == "internal")
    external = sum(1 for r in runs if r["failure_kind"] == "external")
    jobs = sorted({r["job_name"] for r in runs})
    title = f"{len(runs)} failed runs ({internal} internal, {external} external), {len(checks)} failed checks"
    summary = (f"{len(records)} runs finished since the last alert; failed runs of {', '.join(jobs) or 'no job'}"
               + ("; failed hospitals are listed by `price-pipeline failed-hospitals`" if runs else ""))
    severity = "error" if runs or any(c["severity"] == "error" for c in checks) else "warning"
    return grouped_alert("failures", title, [*runs, *checks], severity=severity, summary=summary,
                         url=_ui_link("/runs?q[]=status%3AFAILURE"), internal=internal, external=external,
                         failed_runs=len(runs), failed_checks=len(checks))


@dg.sensor(
    name="alert_on_failures",
    minimum_interval_seconds=ALERT_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends one alert per wave: every run that failed (any job, any location) and every failed "
    "asset check among the runs that finished since the last tick, with each failure's kind (internal / "
    "external). The cursor is the update time of the last run looked at.",
)
def alert_on_failures(context: dg.SensorEvaluationContext):
    instance = context.instance
    if context.cursor is None:
        # first tick: start from now, never alert on history
        context.update_cursor(json.dumps({"ts": time.time(), "ids": []}))
        return dg.SkipReason("started watching finished runs")
    cursor = json.loads(context.cursor)
    records = finished_runs_since(instance, cursor)
    if not records:
        return dg.SkipReason("no newly finished runs")
    alert = wave_alert(instance, records)
    if alert is not None:
        _send(context, alert)
    last = records[-1].update_timestamp.timestamp()
    ids = [r.dagster_run.run_id for r in records if r.update_timestamp.timestamp() >= last]
    context.update_cursor(json.dumps({"ts": last, "ids": ids}))
    return dg.SkipReason(f"{len(records)} finished runs looked at: {alert.title if alert else 'no failures'}")


def stale_marts(instance: dg.DagsterInstance) -> list[str]:
    """Marts whose freshness policy the freshness daemon last found failing."""
    from dagster._core.definitions.freshness import FreshnessState

    keys = [k for k in instance.get_asset_keys() if k.path[-1].startswith(MART_PREFIX)]
    records = instance.get_freshness_state_records(keys) if keys else {}
    return sorted(k.to_user_string() for k, r in records.items() if r.freshness_state == FreshnessState.FAIL)


def thresholds_from_env() -> report_lib.Thresholds:
    settings = Settings.from_env()
    return report_lib.Thresholds(
        max_internal_failure_rate=settings.alert_max_internal_failure_rate,
        max_mean_ingestion_seconds=settings.alert_max_mean_ingestion_seconds,
    )


def current_breaches(instance: dg.DagsterInstance) -> list[dict]:
    from price_pipeline.defs.ops.assets import collect_runs

    runs = collect_runs(instance, time.time() - report_lib.DAY)
    return report_lib.breaches(report_lib.job_metrics(runs), stale_marts(instance), thresholds_from_env())


@dg.sensor(
    name="alert_on_thresholds",
    minimum_interval_seconds=THRESHOLD_SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends one alert for the thresholds newly breached over the last 24 h: a job's internal failure "
    "rate above 1 %, the mean ingestion run above 30 s, a mart whose freshness policy fails. The cursor holds "
    "the breaches already alerted; one that clears is alerted again when it returns.",
)
def alert_on_thresholds(context: dg.SensorEvaluationContext):
    alerted = set(json.loads(context.cursor or "[]"))
    found = current_breaches(context.instance)
    new = [b for b in found if b["id"] not in alerted]
    context.update_cursor(json.dumps(sorted(b["id"] for b in found)))
    if not new:
        return dg.SkipReason(f"{len(found)} thresholds breached, none new")
    _send(context, grouped_alert("thresholds", f"{len(new)} thresholds breached", new,
                                 summary="; ".join(b["line"] for b in new)[:500], url=_ui_link("/assets/ops_report"),
                                 still_breached=len(found)))
    return dg.SkipReason(f"alerted {len(new)} new breaches")
