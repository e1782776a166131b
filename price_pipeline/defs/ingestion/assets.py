"""Per-hospital ingestion: raw files -> source-faithful rows -> canonical prices."""


import time
from collections import Counter

import dagster as dg

from price_pipeline.defs.catalog.assets import CATALOG_SOURCE
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib import ingest, layout

# Network hiccups and lock contention heal on their own; a bad file does not, and the assets
# record those as findings instead of raising, so what raises is worth retrying.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


# A hospital is the unit of failure and retry: one partition per run keeps a bad file from
# failing a batch, and the assets read context.partition_key.
ONE_HOSPITAL_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


def _listed_urls(price_pipeline: PricePipelineResource, hospital_key: str) -> list[str]:
    claim = price_pipeline.registry.latest_claim_payload(hospital_key, CATALOG_SOURCE)
    if claim is None:
        raise dg.Failure(
            f"no catalog entry for hospital {hospital_key!r}: materialize hospital_catalog first",
            allow_retries=False,
        )
    return [f["url"] for f in claim.get("files", [])]


@dg.asset(
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"python", "http"},
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
)
def mrf_files(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """The hospital's machine-readable files, downloaded and stored by sha256 in the lake.

    Every downloaded version is kept (``raw/<aa>/<sha256>.<ext>``) and recorded in the file-version
    registry; identical bytes are stored once. Failed and rejected downloads are recorded with
    their reason. Raises (and retries) only when every file failed for a transient reason.
    """
    started = time.monotonic()
    key = context.partition_key
    urls = _listed_urls(price_pipeline, key)
    with price_pipeline.scratch_dir("mrf_files") as scratch:
        manifest = ingest.fetch_hospital_files(
            key,
            urls,
            lake=price_pipeline.lake,
            registry=price_pipeline.registry,
            settings=price_pipeline.settings,
            scratch_dir=scratch,
            log=context.log.info,
        )
    failures = [f for f in manifest.files if f.status != "ok"]
    if urls and not manifest.ok_files and failures and all(f.error_kind == "transient" for f in failures):
        raise dg.Failure(f"every file of {key} failed transiently: {failures[0].error}")
    total_bytes = sum(f.size or 0 for f in manifest.ok_files)
    return dg.MaterializeResult(
        metadata={
            "files_listed": len(urls),
            "files_ok": len(manifest.ok_files),
            "files_failed": len(failures),
            "new_versions": sum(1 for f in manifest.files if f.stored_new_bytes),
            "bytes": total_bytes,
            "duration_seconds": round(time.monotonic() - started, 3),
            "files": dg.MetadataValue.json(
                [
                    {k: getattr(f, k) for k in ("url", "status", "sha256", "size", "error", "error_kind")}
                    for f in manifest.files
                ]
            ),
        }
    )


@dg.asset(
    deps=[mrf_files],
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"python", "parquet"},
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
)
def mrf_parsed(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """Source-faithful rows of each current file, one Parquet per file version.

    Format, version and encoding are detected from content. Every problem becomes a recorded
    finding (rule, row, column or JSON path) in the file's ``summary.json``; unreadable rows go
    to a quarantine Parquet beside the rows, never silently dropped.
    """
    started = time.monotonic()
    key = context.partition_key
    with price_pipeline.scratch_dir("mrf_parsed") as scratch:
        versions = ingest.parse_hospital_files(key, lake=price_pipeline.lake, scratch_dir=scratch)
    rows = sum(v.summary.get("rows_parsed", 0) for v in versions)
    findings_by_rule: Counter[str] = Counter()
    for v in versions:
        for finding in v.summary.get("findings", []):
            findings_by_rule[finding["rule"]] += 1
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "files_parsed": len(versions),
            "files_readable": sum(1 for v in versions if v.summary.get("ok")),
            "rows_quarantined": sum(v.summary.get("rows_quarantined", 0) for v in versions),
            "bytes": sum(price_pipeline.lake.size(v.rows_key) for v in versions),
            "duration_seconds": round(time.monotonic() - started, 3),
            "findings_by_rule": dg.MetadataValue.json(dict(findings_by_rule)),
            "formats": dg.MetadataValue.json(
                [
                    {
                        "file_sha256": v.file_sha256,
                        "format": v.summary.get("format"),
                        "version": v.summary.get("version"),
                        "encoding": v.summary.get("encoding"),
                        "rows": v.summary.get("rows_parsed"),
                    }
                    for v in versions
                ]
            ),
        }
    )


@dg.asset(
    deps=[mrf_parsed],
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"duckdb", "parquet"},
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
)
def prices(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """The hospital's prices in the canonical long schema: one row per charge kind and amount.

    Built with DuckDB from the current parsed files, with lineage (file sha256, source row or
    JSON path) on every row, and published as ``prices/hospital_key=<key>/prices.parquet``.
    """
    started = time.monotonic()
    key = context.partition_key
    with price_pipeline.scratch_dir("prices") as scratch:
        rows, size = ingest.build_hospital_prices(key, lake=price_pipeline.lake, scratch_dir=scratch)
    seconds = time.monotonic() - started
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "bytes": size,
            "duration_seconds": round(seconds, 3),
            "rows_per_second": round(rows / seconds, 1) if seconds else None,
            "lake_key": dg.MetadataValue.path(price_pipeline.lake.uri(layout.prices_key(key))),
        }
    )
