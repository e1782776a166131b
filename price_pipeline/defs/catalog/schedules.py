"""Periodic re-scans, so nothing depends on the sensor alone noticing a change."""


import dagster as dg

from price_pipeline.defs.catalog.jobs import refresh_catalog_job
from price_pipeline.defs.ingestion.jobs import ingest_hospital_job
from price_pipeline.defs.partitions import hospital_partitions

refresh_catalog_schedule = dg.ScheduleDefinition(
    name="refresh_catalog_every_6_hours",
    job=refresh_catalog_job,
    cron_schedule="17 */6 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rebuilds hospital_catalog and hospitals from the catalog API.",
)


@dg.schedule(
    job=ingest_hospital_job,
    cron_schedule="0 3 * * 0",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly full re-scan: re-ingests every active hospital, catching files that changed "
    "behind an unchanged URL (servers that do not update ETag or Last-Modified).",
)
def weekly_full_rescan(context: dg.ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(hospital_partitions.name)
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"rescan:{stamp}:{key}",
            # force_download: skip the change probes and download everything, which also checks
            # (and, if need be, distrusts) each host's cheap change signals.
            tags={
                "price_pipeline/trigger": "weekly_full_rescan",
                "price_pipeline/hospital": key,
                "price_pipeline/force_download": "true",
            },
        )
        for key in keys
    ]
