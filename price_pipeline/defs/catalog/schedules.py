"""Periodic re-scans, so nothing depends on the sensor alone noticing a change."""


import dagster as dg

from price_pipeline.defs.catalog.jobs import refresh_catalog_job
from price_pipeline.defs.ingestion.jobs import ingest_hospital_job
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.ops import (
    FORCE_DOWNLOAD_TAG,
    HOSPITAL_TAG,
    PRIORITY_RESCAN,
    bulk_run_tags,
    hospital_host,
    registry_hospital_urls,
)

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
    "behind an unchanged URL (servers that do not update ETag or Last-Modified). Bulk work: capped "
    "by the run queue's bulk limit and queued below new catalog work's priority.",
)
def weekly_full_rescan(context: dg.ScheduleEvaluationContext, price_pipeline: PricePipelineResource):
    keys = context.instance.get_dynamic_partitions(hospital_partitions.name)
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    urls = registry_hospital_urls(price_pipeline.registry)
    return [
        dg.RunRequest(
            partition_key=key,
            run_key=f"rescan:{stamp}:{key}",
            # force_download: skip the change probes and download everything, which also checks
            # (and, if need be, distrusts) each host's cheap change signals.
            tags={
                **bulk_run_tags(hospital_host(urls.get(key, ())), trigger="weekly_full_rescan",
                                priority=PRIORITY_RESCAN),
                HOSPITAL_TAG: key,
                FORCE_DOWNLOAD_TAG: "true",
            },
        )
        for key in keys
    ]
