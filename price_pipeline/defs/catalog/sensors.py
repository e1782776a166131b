"""Catalog and change sensors: discovery -> hospital partitions; changed files -> ingestion runs.

Both keep their cursors small: the catalog sensor stores a digest of the whole reconciled
catalog, the change sensor a watermark (the last file it probed); everything per hospital and
per file lives in the registry.
"""


import hashlib
import json
import time

import dagster as dg

from price_pipeline.defs.catalog.batches import batched_ingestion_requests, keys_in_range
from price_pipeline.defs.catalog.jobs import refresh_catalog_job
from price_pipeline.defs.ingestion.jobs import ingest_hospital_job
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.discovery import (
    apply_discovery,
    catalog_digest,
    diff_catalog,
    discover,
    guard_against_shrink,
)
from price_pipeline.lib.fetch import record_sweep, sweep
from price_pipeline.lib.ops import (
    HOSPITAL_TAG,
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    file_urls,
    hospital_host,
    hospital_run_tags,
    order_for_adding,
)
from price_pipeline.settings import Settings

# Read when the code location loads (a sensor's interval is part of its definition).
SENSOR_INTERVAL_SECONDS = Settings.from_env().catalog_sensor_interval_seconds
CHANGE_SENSOR_INTERVAL_SECONDS = Settings.from_env().change_sensor_interval_seconds


def ingestion_tags(key: str, urls: list[str], trigger: str) -> dict[str, str]:
    # hospital_run_tags (lib/ops/tags.py) owns the host rule and adds dagster/priority for
    # PRICE_PIPELINE_PRIORITY_HOSPITALS (read per tick)
    return hospital_run_tags(key, urls, trigger=trigger)


def evaluate_catalog_tick(
    context: dg.SensorEvaluationContext, price_pipeline: PricePipelineResource
) -> dg.SensorResult | dg.SkipReason:
    """One tick: discover, refuse an empty or collapsed result, then diff against the registry."""
    settings = price_pipeline.settings
    registry = price_pipeline.registry
    result = discover(settings, registry)
    records = {r["hospital_key"]: r for r in result.records}
    current = result.fingerprints
    existing_partitions = set(context.instance.get_dynamic_partitions(hospital_partitions.name))
    known = registry.active_fingerprints()

    # Raises: the tick fails visibly and nothing is changed or removed. The baseline is what the
    # registry holds as active (an operator's confirmed shrink, via refresh_catalog with
    # allow_shrink, lowers it), or the partitions when the registry is new.
    guard_against_shrink(
        len(known) or len(existing_partitions), len(current), max_drop_fraction=settings.max_catalog_drop_fraction
    )

    digest = catalog_digest(current)
    cursor = json.loads(context.cursor) if context.cursor else {}
    if cursor.get("digest") == digest and existing_partitions == set(current):
        # Still record claims' last-seen times and the cms-hpt crawl outcomes of this pass.
        apply_discovery(registry, result)
        return dg.SkipReason(f"catalog unchanged ({len(current)} hospitals)")

    diff = diff_catalog({k: v for k, v in known.items() if k in existing_partitions}, current)
    # Partitions that exist but never got a record (e.g. added by hand) are ingested too.
    to_ingest = sorted(set(diff.added) | set(diff.changed) | (set(current) - existing_partitions))
    removed = sorted(existing_partitions - set(current))
    apply_discovery(registry, result)
    if removed:
        registry.mark_removed(removed)

    # New partitions are added grouped by host, so that one host's new hospitals are consecutive
    # and run as batches (partition ranges, defs/ingestion/batching.py); the host is the one
    # rule of lib/ops/tags.py (hospital_host), as for every other launcher.
    urls = {key: file_urls((records.get(key) or {}).get("files")) for key in to_ingest}
    hosts = {key: hospital_host(urls[key]) for key in to_ingest}
    new_partitions = order_for_adding(set(current) - existing_partitions, hosts)
    order = [*context.instance.get_dynamic_partitions(hospital_partitions.name), *new_partitions]
    run_requests = batched_ingestion_requests(
        order, to_ingest, hosts,
        run_key_of=lambda key: f"{key}:{current[key]}",
        tags_of=lambda key: ingestion_tags(key, urls[key], "catalog_sensor"),
        trigger="catalog_sensor",
    )
    run_requests.append(dg.RunRequest(job_name=refresh_catalog_job.name, run_key=f"catalog:{digest}"))
    partition_requests = []
    if new_partitions:
        partition_requests.append(hospital_partitions.build_add_request(new_partitions))
    if removed:
        partition_requests.append(hospital_partitions.build_delete_request(removed))
    context.log.info(
        f"catalog: {len(current)} hospitals, {len(new_partitions)} new partitions, {len(diff.changed)} "
        f"changed, {len(removed)} removed, {len(result.conflicts)} identity conflicts; "
        f"{len(to_ingest)} hospitals to ingest in {len(run_requests) - 1} runs; sources {result.stats}"
    )
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"digest": digest, "hospitals": len(current), "at": int(time.time())}),
    )


@dg.sensor(
    jobs=[ingest_hospital_job, refresh_catalog_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Discovers hospitals (catalog API, cms-hpt.txt, overrides); adds/removes hospital "
    "partitions and requests ingestion runs for new hospitals and hospitals whose file list changed.",
)
def catalog_sensor(context: dg.SensorEvaluationContext, price_pipeline: PricePipelineResource):
    """Discovery tick; the cursor is a 16-character digest of the whole catalog, not a map."""
    return evaluate_catalog_tick(context, price_pipeline)


def hospitals_with_a_queued_ingestion_run(instance: dg.DagsterInstance) -> set[str]:
    """Hospitals an ingestion run waiting in the queue will ingest (its own, or a batch's range):
    that run has not downloaded anything yet, so it gets every change made before it starts."""
    queued = instance.get_runs(dg.RunsFilter(
        job_name=ingest_hospital_job.name,
        statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
    ))
    keys: set[str] = set()
    for run in queued:
        key = run.tags.get(PARTITION_TAG) or run.tags.get(HOSPITAL_TAG)
        if key:
            keys.add(key)
        start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
        if start and end:
            keys.update(keys_in_range(instance, start, end))
    return keys


def evaluate_change_tick(
    context: dg.SensorEvaluationContext, price_pipeline: PricePipelineResource
) -> dg.SensorResult | dg.SkipReason:
    """Probe the next slice of tracked files (after the cursor's watermark) for changes."""
    settings = price_pipeline.settings
    registry = price_pipeline.registry
    cursor = json.loads(context.cursor) if context.cursor else {}
    after = tuple(cursor["after"]) if cursor.get("after") else None
    limit = max(1, settings.change_sweep_max_files)
    rows = registry.file_states_after(after, limit)
    partitions = set(context.instance.get_dynamic_partitions(hospital_partitions.name))
    candidates = [r for r in rows if r["hospital_key"] in partitions and r.get("sha256") and r.get("status") == "ok"]
    result = sweep(candidates, settings=settings, profiles=registry.host_profiles())
    record_sweep(registry, result)
    # A short slice means the sweep reached the end: the next tick starts over.
    next_after = [rows[-1]["hospital_key"], rows[-1]["url"]] if len(rows) == limit else None
    new_cursor = json.dumps(
        {
            "after": next_after,
            "sweep": int(cursor.get("sweep", 0)) + (0 if next_after else 1),
            "at": int(time.time()),
        }
    )
    changed = {}
    for r in result.results:
        if r.verdict == "changed":
            changed.setdefault(r.hospital_key, []).append(f"{r.url}|{r.etag}|{r.last_modified}|{r.size}")
    # A changed file of a hospital whose ingestion run is still queued (the catalog sensor saw the
    # change too, or a backfill) needs no second run: the queued one downloads it (record_sweep
    # marked it `changed`, so without probing).
    already = set(changed) & hospitals_with_a_queued_ingestion_run(context.instance) if changed else set()
    changed = {key: sigs for key, sigs in changed.items() if key not in already}
    if not changed:
        return dg.SensorResult(
            run_requests=[],
            cursor=new_cursor,
            skip_reason=dg.SkipReason(
                f"{len(candidates)} files probed, none changed ({result.counts})" if not already else
                f"{len(candidates)} files probed ({result.counts}); the changed hospitals' ingestion runs "
                f"are already queued: {', '.join(sorted(already)[:10])}"),
        )
    run_requests = [
        dg.RunRequest(
            job_name=ingest_hospital_job.name,
            partition_key=key,
            run_key=f"change:{key}:{hashlib.sha256('/'.join(sorted(sigs)).encode()).hexdigest()[:16]}",
            # the reconciled file list (the catalog sensor's), else the probed files of the hospital
            tags=ingestion_tags(key, file_urls(registry.hospital_files(key))
                                or [r["url"] for r in candidates if r["hospital_key"] == key], "mrf_change_sensor"),
        )
        for key, sigs in sorted(changed.items())
    ]
    context.log.info(f"{len(candidates)} files probed in {result.seconds:.1f}s: {result.counts}"
                     + (f"; already queued: {', '.join(sorted(already)[:10])}" if already else ""))
    return dg.SensorResult(run_requests=run_requests, cursor=new_cursor)


@dg.sensor(
    job=ingest_hospital_job,
    minimum_interval_seconds=CHANGE_SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Probes tracked MRFs with the cheapest trustworthy signal (conditional GET, HEAD size, "
    "range fingerprint) and requests an ingestion run for hospitals whose files changed.",
)
def mrf_change_sensor(context: dg.SensorEvaluationContext, price_pipeline: PricePipelineResource):
    """Change sweep; the cursor is a watermark (last probed hospital_key/url), not a map."""
    return evaluate_change_tick(context, price_pipeline)
