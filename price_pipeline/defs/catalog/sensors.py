"""The catalog sensor: turns catalog changes into hospital partitions and ingestion runs."""


import json
import os
import time

import dagster as dg

from price_pipeline.defs.catalog.assets import CATALOG_SOURCE, hospital_record
from price_pipeline.defs.catalog.jobs import refresh_catalog_job
from price_pipeline.defs.ingestion.jobs import ingest_hospital_job
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib import catalog as catalog_lib
from price_pipeline.lib.discovery import catalog_digest, diff_catalog, guard_against_shrink

SENSOR_INTERVAL_SECONDS = int(os.environ.get("PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL", "30"))


@dg.sensor(
    jobs=[ingest_hospital_job, refresh_catalog_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the hospital catalog; adds/removes hospital partitions and requests ingestion "
    "runs for new hospitals and hospitals whose file list changed.",
)
def catalog_sensor(context: dg.SensorEvaluationContext, price_pipeline: PricePipelineResource):
    """One tick: fetch the catalog, refuse an empty or collapsed one, then diff it against the
    fingerprints the registry holds. The cursor is a digest of the whole catalog, not a map."""
    listed = catalog_lib.fetch_catalog(price_pipeline.catalog_url)
    records = {r["hospital_key"]: r for r in (hospital_record(h) for h in listed)}
    current = {key: r["files_fingerprint"] for key, r in records.items()}
    existing_partitions = set(context.instance.get_dynamic_partitions(hospital_partitions.name))

    # Raises: the tick fails visibly and nothing is removed.
    guard_against_shrink(len(existing_partitions), len(current))

    digest = catalog_digest(current)
    cursor = json.loads(context.cursor) if context.cursor else {}
    if cursor.get("digest") == digest and existing_partitions == set(current):
        return dg.SkipReason(f"catalog unchanged ({len(current)} hospitals)")

    registry = price_pipeline.registry
    known = {
        key: payload.get("files_fingerprint")
        for key, payload in registry.latest_claim_payloads(CATALOG_SOURCE).items()
        if key in existing_partitions
    }
    diff = diff_catalog(known, current)
    # Partitions that exist but never got a claim recorded (e.g. added by hand) are ingested too.
    to_ingest = sorted(set(diff.added) | set(diff.changed) | (set(current) - existing_partitions))
    removed = sorted(existing_partitions - set(current))
    registry.upsert_hospitals(list(records.values()), source=CATALOG_SOURCE)
    if removed:
        registry.mark_removed(removed)

    run_requests = [
        dg.RunRequest(
            job_name=ingest_hospital_job.name,
            partition_key=key,
            run_key=f"{key}:{current[key]}",
            tags={"price_pipeline/trigger": "catalog_sensor", "price_pipeline/hospital": key},
        )
        for key in to_ingest
    ]
    run_requests.append(
        dg.RunRequest(job_name=refresh_catalog_job.name, run_key=f"catalog:{digest}")
    )
    new_partitions = sorted(set(current) - existing_partitions)
    partition_requests = []
    if new_partitions:
        partition_requests.append(hospital_partitions.build_add_request(new_partitions))
    if removed:
        partition_requests.append(hospital_partitions.build_delete_request(removed))
    context.log.info(
        f"catalog: {len(current)} hospitals, {len(new_partitions)} new partitions, {len(diff.changed)} "
        f"changed, {len(removed)} removed; {len(run_requests) - 1} ingestion runs requested"
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"digest": digest, "hospitals": len(current), "at": int(time.time())}),
    )
