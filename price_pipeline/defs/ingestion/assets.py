"""Per-hospital ingestion: raw files -> source-faithful rows -> canonical prices."""


from collections import Counter

import dagster as dg

from price_pipeline.defs.catalog.assets import CATALOG_SOURCE
from price_pipeline.defs.ingestion.batching import per_hospital
from price_pipeline.defs.ingestion.checks import (
    MRF_FILES_HAS_A_PRICE_FILE,
    MRF_PARSED_HAS_NO_ERROR_FINDINGS,
    MRF_PARSED_HAS_ROWS,
    MRF_PARSED_ROW_COUNT_NOT_COLLAPSED,
    PRICES_SCHEMA_AND_LINEAGE_COMPLETE,
    check_result,
    published_parsed_row_count,
)
from price_pipeline.defs.ops.retries import (
    DOWNLOAD_RETRY,
    FAILURE_KIND,
    FAILURE_ORIGIN,
    FAILURE_REASON,
    LAKE_RETRY,
    classified,
    permanent_failure,
)
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.defs.table_metadata import declared_schema, lake_table_metadata
from price_pipeline.lib.fetch import fetch_hospital_files
from price_pipeline.lib.lake import (
    PARSED_DESCRIPTIONS,
    PARSED_SCHEMA,
    PRICES_DESCRIPTIONS,
    PRICES_SCHEMA,
    layout,
)
from price_pipeline.lib.ops import ACCEPT_ROW_DROP_TAG, EXTERNAL, FORCE_DOWNLOAD_TAG, INTERNAL, TRANSIENT
from price_pipeline.lib.parse import parse_hospital_files, record_header_claims
from price_pipeline.lib.prices import build_hospital_prices_with_history
from price_pipeline.lib.quality import (
    mrf_files_has_a_price_file,
    mrf_parsed_has_no_error_findings,
    mrf_parsed_has_rows,
    mrf_parsed_row_count_not_collapsed,
    prices_schema_and_lineage_complete,
    rules_from_settings,
    start_background_validations,
)

# Retry policies (exponential backoff with jitter) and failure classification live in the ops
# domain: @classified turns permanent errors (bad file, missing catalog entry) into
# dg.Failure(allow_retries=False) and transient ones (network, 5xx, lock contention) into
# retryable failures, and adds duration/throughput metadata.
TRANSIENT_RETRY = LAKE_RETRY


# A hospital is the unit of failure and retry. Backfills (UI, CLI) run one partition per run;
# the catalog sensor's batched runs cover a range of hospitals, and @per_hospital runs each
# asset body once per hospital of the range (defs/ingestion/batching.py).
ONE_HOSPITAL_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
# defs/ingestion/conformance.py (which imports this module): the step that takes the background validations
CONFORMANCE_REPORTS = dg.AssetKey("conformance_reports")
# executors that run every step of a run in the run's own process (execute_in_process: dg.materialize)
IN_PROCESS_EXECUTORS = ("in_process", "execute_in_process_executor")




def _listed_urls(price_pipeline: PricePipelineResource, hospital_key: str) -> list[str]:
    """The hospital's reconciled file list (all discovery sources); the catalog claim as a fallback."""
    files = price_pipeline.registry.hospital_files(hospital_key)
    if files is not None:
        return [f["url"] for f in files]
    claim = price_pipeline.registry.latest_claim_payload(hospital_key, CATALOG_SOURCE)
    if claim is None:
        raise permanent_failure(
            f"no catalog entry for hospital {hospital_key!r}: materialize hospital_catalog first", origin=INTERNAL
        )
    return [f["url"] for f in claim.get("files", [])]


def _record_conformance_without_price_file(key: str, price_pipeline: PricePipelineResource) -> None:
    # imported only for the rare hospital with no price file
    from price_pipeline.lib.quality import rules_from_settings, validate_hospital

    validate_hospital(key, lake=price_pipeline.lake, limits=price_pipeline.settings.archive_limits(),
                      **rules_from_settings(price_pipeline.settings))


def _conformance_runs_later_here(context: dg.AssetExecutionContext) -> bool:
    """Whether ``conformance_reports`` runs later in this same process: the run selects it and its
    executor runs every step in-process (``ingest_hospital``). A child started for any other run
    would only be killed with its step's process."""
    job = context.job_def
    return CONFORMANCE_REPORTS in job.asset_layer.selected_asset_keys and job.executor_def.name in IN_PROCESS_EXECUTORS


def _start_background_conformance(context: dg.AssetExecutionContext, key: str,
                                  price_pipeline: PricePipelineResource) -> None:
    """Big files: CMS validation starts now in a child process, beside parsing and normalisation
    (issue 12); ``conformance_reports`` runs last in the job and takes the child's report."""
    settings = price_pipeline.settings
    if settings.conformance_background_min_bytes <= 0 or not _conformance_runs_later_here(context):
        return
    started = start_background_validations(key, lake=price_pipeline.lake, limits=settings.archive_limits(),
                                           min_bytes=settings.conformance_background_min_bytes,
                                           **rules_from_settings(settings))
    if started:
        context.log.info(f"CMS validation of {len(started)} big file(s) started in the background: "
                         + ", ".join(s[:12] for s in started))


@dg.asset(
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"python", "http"},
    retry_policy=DOWNLOAD_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
    check_specs=[MRF_FILES_HAS_A_PRICE_FILE],
)
@per_hospital
@classified
def mrf_files(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """The hospital's machine-readable files, downloaded and stored by sha256 in the lake.

    A file with a stored version is probed first (conditional GET, HEAD size, range
    fingerprint: the cheapest signal its host has proven trustworthy) and not downloaded again
    when unchanged; its version's last-seen time is bumped. The run tag
    ``price_pipeline/force_download=true`` (the weekly re-scan) downloads everything. Every downloaded version is kept (``raw/<aa>/<sha256>.<ext>``) and recorded in the file-version
    registry; identical bytes are stored once. Failed and rejected downloads are recorded with
    their reason. Raises (and retries) only when every file failed for a transient reason.
    Checked in the same step by ``mrf_files_has_a_price_file`` (blocking).
    """
    key = context.partition_key
    urls = _listed_urls(price_pipeline, key)
    with price_pipeline.scratch_dir("mrf_files") as scratch:
        manifest = fetch_hospital_files(
            key,
            urls,
            lake=price_pipeline.lake,
            registry=price_pipeline.registry,
            settings=price_pipeline.settings,
            scratch_dir=scratch,
            log=context.log.info,
            force=context.run.tags.get(FORCE_DOWNLOAD_TAG) == "true",
        )
    failures = [f for f in manifest.files if f.status != "ok"]
    if urls and not manifest.ok_files and failures and all(f.error_kind == "transient" for f in failures):
        # the hospital's server: external, and worth the download retry policy
        raise dg.Failure(
            f"every file of {key} failed transiently: {failures[0].error}",
            metadata={FAILURE_KIND: TRANSIENT, FAILURE_ORIGIN: EXTERNAL, FAILURE_REASON: str(failures[0].error)[:1000]},
        )
    if not manifest.ok_files:
        # No price file: the blocking check mrf_files_has_a_price_file will skip conformance_reports,
        # so the conformance summary of the rejected/failed files is recorded here, by the asset
        # that fetched them (the compliance marts then show "no conformant file", not "not checked").
        _record_conformance_without_price_file(key, price_pipeline)
    else:
        _start_background_conformance(context, key, price_pipeline)
    total_bytes = sum(f.size or 0 for f in manifest.ok_files)
    return dg.MaterializeResult(
        check_results=[check_result(MRF_FILES_HAS_A_PRICE_FILE, mrf_files_has_a_price_file(manifest))],
        metadata={
            "files_listed": len(urls),
            "files_ok": len(manifest.ok_files),
            "files_failed": len(failures),
            "new_versions": sum(1 for f in manifest.files if f.stored_new_bytes),
            "files_unchanged": sum(1 for f in manifest.files if f.unchanged),
            "bytes": total_bytes,
            "files": dg.MetadataValue.json(
                [
                    {
                        k: getattr(f, k)
                        for k in ("url", "status", "sha256", "size", "error", "error_kind", "unchanged", "signal")
                    }
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
    retry_policy=LAKE_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
    check_specs=[MRF_PARSED_HAS_ROWS, MRF_PARSED_ROW_COUNT_NOT_COLLAPSED, MRF_PARSED_HAS_NO_ERROR_FINDINGS],
    metadata=declared_schema(PARSED_SCHEMA, PARSED_DESCRIPTIONS),
)
@per_hospital
@classified
def mrf_parsed(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """Source-faithful rows of each current file, one Parquet per file version.

    Format, version and encoding are detected from content. Every problem becomes a recorded
    finding (rule, row, column or JSON path) in the file's ``summary.json``; unreadable rows go
    to a quarantine Parquet beside the rows, never silently dropped. Checked in the same step by
    ``mrf_parsed_has_rows`` and ``mrf_parsed_row_count_not_collapsed`` (blocking) and
    ``mrf_parsed_has_no_error_findings`` (warning). The materialization shows the columns and first
    rows of the first file version's Parquet.
    """
    key = context.partition_key
    with price_pipeline.scratch_dir("mrf_parsed") as scratch:
        versions = parse_hospital_files(key, lake=price_pipeline.lake, scratch_dir=scratch,
                                                 settings=price_pipeline.settings)
    npis_recorded = record_header_claims(key, versions, registry=price_pipeline.registry)
    rows = sum(v.summary.rows_parsed for v in versions)
    findings_by_rule: Counter[str] = Counter()
    for v in versions:
        for finding in v.summary.findings:
            findings_by_rule[finding.rule] += 1
    drop_accepted = context.run.tags.get(ACCEPT_ROW_DROP_TAG, "").lower() == "true"
    checks = [
        (MRF_PARSED_HAS_ROWS, mrf_parsed_has_rows(versions)),
        (MRF_PARSED_ROW_COUNT_NOT_COLLAPSED, mrf_parsed_row_count_not_collapsed(
            versions, published_parsed_row_count(context.instance, key), drop_accepted=drop_accepted)),
        (MRF_PARSED_HAS_NO_ERROR_FINDINGS, mrf_parsed_has_no_error_findings(versions)),
    ]
    lake = price_pipeline.lake
    # The first version with a rows file stands for the table: every version has the same schema.
    shown = next((m for v in versions if (m := lake_table_metadata(lake, v.rows_key, PARSED_DESCRIPTIONS))), {})
    return dg.MaterializeResult(
        check_results=[check_result(spec, outcome) for spec, outcome in checks],
        metadata={
            **shown,
            "dagster/row_count": rows,
            "files_parsed": len(versions),
            "header_npis_recorded": npis_recorded,
            "files_readable": sum(1 for v in versions if v.summary.ok),
            "rows_quarantined": sum(v.summary.rows_quarantined for v in versions),
            "bytes": sum(price_pipeline.lake.size(v.rows_key) for v in versions),
            "findings_by_rule": dg.MetadataValue.json(dict(findings_by_rule)),
            "formats": dg.MetadataValue.json(
                [
                    {
                        "file_sha256": v.file_sha256,
                        "format": v.summary.format,
                        "version": v.summary.version,
                        "encoding": v.summary.encoding,
                        "rows": v.summary.rows_parsed,
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
    retry_policy=LAKE_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
    check_specs=[PRICES_SCHEMA_AND_LINEAGE_COMPLETE],
    metadata=declared_schema(PRICES_SCHEMA, PRICES_DESCRIPTIONS),
)
@per_hospital
@classified
def prices(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """The hospital's prices in the canonical long schema: one row per charge kind and amount.

    Built with DuckDB from the current parsed files (codes cleaned by code type), with lineage
    (file sha256, source row or JSON path) on every row, and published as
    ``prices/hospital_key=<key>/prices.parquet``. Every file version's prices are also kept in
    ``prices_history/hospital_key=<key>/file_sha256=<sha>.parquet`` with the version list in
    ``prices_history/hospital_key=<key>/versions.parquet`` (never deleted when superseded).
    Checked in the same step by ``prices_schema_and_lineage_complete`` (blocking), on the file as
    published.
    """
    key = context.partition_key
    with price_pipeline.scratch_dir("prices") as scratch:
        result = build_hospital_prices_with_history(key, lake=price_pipeline.lake, scratch_dir=scratch)
    rows, size = result.rows, result.bytes
    lake = price_pipeline.lake
    prices_key = layout.prices_key(key)
    # A local copy, not DuckDB reading the lake in place (the check can: lib/quality): an
    # S3-compatible store that refuses range reads failed the step there after the file was
    # published (ops/test_recovery.py's fault proxy), where a plain download still works.
    with lake.local_copy(prices_key) as path:
        lineage = prices_schema_and_lineage_complete(path)
    return dg.MaterializeResult(
        check_results=[check_result(PRICES_SCHEMA_AND_LINEAGE_COMPLETE, lineage)],
        metadata={
            **lake_table_metadata(lake, prices_key, PRICES_DESCRIPTIONS),
            "dagster/row_count": rows,
            "bytes": size,
            "lake_key": dg.MetadataValue.path(lake.uri(prices_key)),
            "current_versions": dg.MetadataValue.json(result.current_versions),
            "versions_in_history": result.versions_known,
            # Versions normalised in this run; the other current ones were reused from prices_history.
            "versions_normalised": len(result.versions_written),
        }
    )
