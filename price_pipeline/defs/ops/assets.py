"""The ``ops_report`` asset: the seed's success metrics (per job: internal / external failure
rates with cancels apart, mean / p50 / p95 run time, queue wait; hospitals per hour; coverage),
per-day outcomes, backlog and the slowest hospitals, computed from the Dagster instance's run and
event history. The headline numbers are also the materialization's metadata, which the UI plots
over the hourly materializations."""


import json
import time

import dagster as dg

from price_pipeline.defs.ops.failed import failed_hospitals, failure_reason
from price_pipeline.defs.ops.retries import timed
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.ops import report as report_lib
from price_pipeline.lib.ops.tags import LAYER_TAG, OPS, PARTITION_TAG, layer_tags

OPS_REPORT_KEY = "ops/ops_report.json"
MEASURED_ASSETS = ("mrf_files", "mrf_parsed", "prices")
RUN_PAGE = 1000


class OpsReportConfig(dg.Config):
    days: int = 14
    top_slowest: int = 10


def _number(metadata, key):
    value = metadata.get(key)
    value = getattr(value, "value", value)
    return value if isinstance(value, int | float) else None


def collect_runs(instance: dg.DagsterInstance, since: float) -> list[report_lib.RunSample]:
    from datetime import UTC, datetime

    samples, cursor = [], None
    created_after = datetime.fromtimestamp(since, tz=UTC)
    while True:
        records = instance.get_run_records(dg.RunsFilter(created_after=created_after), limit=RUN_PAGE, cursor=cursor)
        for r in records:
            run = r.dagster_run
            samples.append(
                report_lib.RunSample(
                    run_id=run.run_id,
                    job_name=run.job_name,
                    status=run.status.value,
                    created_at=r.create_timestamp.timestamp(),
                    hospital_key=run.tags.get(PARTITION_TAG),
                    start_time=r.start_time,
                    end_time=r.end_time,
                    # whose failure (internal / external): read from the run's events
                    failure_kind=failure_reason(instance, run.run_id)[0]
                    if run.status == dg.DagsterRunStatus.FAILURE else None,
                    layer=run.tags.get(LAYER_TAG),
                )
            )
        if len(records) < RUN_PAGE:
            return samples
        cursor = records[-1].dagster_run.run_id


def collect_materializations(instance: dg.DagsterInstance, since: float) -> list[report_lib.MaterializationSample]:
    samples = []
    for asset in MEASURED_ASSETS:
        cursor = None
        while True:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_timestamp=since), limit=RUN_PAGE, cursor=cursor
            )
            for record in result.records:
                materialization = record.asset_materialization
                if materialization is None:
                    continue
                metadata = materialization.metadata or {}
                samples.append(
                    report_lib.MaterializationSample(
                        asset=asset,
                        timestamp=record.timestamp,
                        hospital_key=materialization.partition,
                        duration_seconds=_number(metadata, "duration_seconds"),
                        rows=_number(metadata, "dagster/row_count"),
                        bytes=_number(metadata, "bytes"),
                    )
                )
            if not result.has_more:
                break
            cursor = result.cursor
    return samples


def tried_hospitals(instance: dg.DagsterInstance) -> set[str]:
    """Every hospital partition any run was ever launched for (one query over the run tags)."""
    tried: set[str] = set()
    for key, values in instance.get_run_tags(tag_keys=[PARTITION_TAG]):
        if key == PARTITION_TAG:
            tried |= set(values)
    return tried


def compute_ops_report(instance: dg.DagsterInstance, *, days: int = 14, top: int = 10) -> dict:
    now = time.time()
    since = now - days * 86400
    runs = collect_runs(instance, since)
    return report_lib.build_report(
        runs,
        collect_materializations(instance, since),
        partitions=instance.get_dynamic_partitions(hospital_partitions.name),
        materialized=instance.get_materialized_partitions(dg.AssetKey("prices")),
        failed_hospitals=failed_hospitals(instance),
        tried=tried_hospitals(instance),
        top=top,
        now=now,
    )


def plotted_metadata(report: dict) -> dict:
    """The report's headline numbers as flat numeric metadata (the UI plots each over time)."""
    out: dict = {}
    for job, m in report["jobs_24h"].items():
        for name in ("internal_failure_rate", "external_failure_rate", "cancel_rate", "mean_seconds", "p50_seconds",
                     "p95_seconds", "queue_wait_mean_seconds", "queue_wait_p95_seconds"):
            if m.get(name) is not None:
                out[f"{job}/{name}_24h"] = m[name]
    out.update(report["throughput"])
    out.update({f"coverage_{k}": v for k, v in report["coverage"].items()})
    return out


@dg.asset(
    group_name="ops",
    kinds={"python", "json"},
    owners=["team:platform"],
)
@timed
def ops_report(
    context: dg.AssetExecutionContext, config: OpsReportConfig, price_pipeline: PricePipelineResource
) -> dg.MaterializeResult:
    """Per job over the last 24 h and the whole window: internal and external failure rates (cancels
    apart), mean / p50 / p95 run time and queue wait; hospitals ingested per hour; coverage (listed,
    ingested, failed, never tried); per day: runs, success and failure rates, p50/p95 run duration,
    rows and bytes per second; the backlog and the slowest hospitals. Written to
    ``ops/ops_report.json`` in the lake; the headline numbers are plotted metadata."""
    report = compute_ops_report(context.instance, days=config.days, top=config.top_slowest)
    payload = json.dumps(report, default=str, indent=1).encode()
    price_pipeline.lake.put_bytes(payload, OPS_REPORT_KEY)
    today = report["days"][0] if report["days"] else {}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(report["days"]),
            "bytes": len(payload),
            "runs_today": today.get("runs", 0),
            "success_rate_today": today.get("success_rate"),
            "p95_duration_seconds_today": today.get("p95_duration_seconds"),
            "rows_per_second_today": today.get("rows_per_second"),
            **{f"backlog_{k}": v for k, v in report["backlog"].items()},
            **plotted_metadata(report),
            "report": dg.MetadataValue.md(report_lib.markdown(report)),
            "lake_key": dg.MetadataValue.path(price_pipeline.lake.uri(OPS_REPORT_KEY)),
        }
    )


class LakeHousekeepingConfig(dg.Config):
    # Far longer than any single write takes (a 13 GB copy included), so a write that is
    # still in progress is never touched.
    abandoned_after_hours: float = 12.0


@dg.asset(
    group_name="ops",
    kinds={"python"},
    owners=["team:platform"],
)
def lake_housekeeping(config: LakeHousekeepingConfig, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """Removes writes that never completed: the hidden ``.tmp-*`` files a killed worker leaves
    in a local lake, and unfinished multipart uploads on S3 (which are stored and billed until
    aborted). Readers never saw them, so nothing visible changes; the metadata says what went."""
    removed = price_pipeline.lake.sweep_abandoned_writes(config.abandoned_after_hours * 3600)
    return dg.MaterializeResult(
        metadata={
            "abandoned_writes_removed": len(removed),
            "bytes_freed": sum(item.bytes for item in removed),
            "examples": dg.MetadataValue.json([item.key for item in removed[:20]]),
        }
    )


ops_report_job = dg.define_asset_job(
    name="ops_report_job",
    selection=dg.AssetSelection.assets(ops_report, lake_housekeeping),
    executor_def=dg.in_process_executor,
    description="Recompute the ops report and sweep abandoned lake writes.",
    tags=layer_tags(OPS),
)

ops_report_schedule = dg.ScheduleDefinition(
    name="ops_report_hourly",
    job=ops_report_job,
    cron_schedule="7 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refreshes the ops report every hour.",
)
