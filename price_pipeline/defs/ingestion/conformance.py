"""CMS conformance of each hospital's files: the ``conformance_reports`` asset and its checks.

The asset runs the same validator as ``price-pipeline validate``
(:func:`price_pipeline.lib.validate.validate_file`) on every current file of the hospital, stores
one capped JSON report per file version and a per-hospital summary Parquet (the dbt source of the
``compliance`` marts), and shows the result as materialization metadata. It depends on
``mrf_files`` only, so it neither waits for nor holds back parsing: CMS non-conformance is a
compliance finding, not a reason to stop publishing prices (the checks warn; they are
evaluated in the asset's own step, on the reports it has just made).

A big file's validation starts in a child process as soon as ``mrf_files`` has stored it
(:mod:`price_pipeline.lib.quality.background`), so it runs on the second core beside parsing
and normalisation. For that, this step runs last among the ready steps of an in-process run: a
lower op priority (``dagster/priority`` -1), not a dependency on ``prices``, so it still runs,
with the same inputs, when parsing or normalisation fails. It then takes the child's report, or
validates inline when there is none.
"""

import dagster as dg

from price_pipeline.defs.ingestion.assets import ONE_HOSPITAL_PER_RUN, TRANSIENT_RETRY, mrf_files
from price_pipeline.defs.ingestion.batching import per_hospital
from price_pipeline.defs.ingestion.checks import (
    CONFORMANCE_REPORTS_FILES_CONFORM,
    CONFORMANCE_REPORTS_NO_CMS_ALERTS,
    check_result,
)
from price_pipeline.defs.ops.retries import timed
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.defs.table_metadata import declared_schema, lake_table_metadata
from price_pipeline.lib.lake import layout
from price_pipeline.lib.ops import PRIORITY_TAG
from price_pipeline.lib.quality import (
    CONFORMANCE_REPORT_SCHEMA,
    conformance_reports_files_conform,
    conformance_reports_no_cms_alerts,
    rules_from_settings,
    validate_hospital,
)

# Findings shown per file in the metadata (the stored report keeps CONFORMANCE_MAX_FINDINGS).
FINDINGS_IN_METADATA = 10


def _rules_table(errors: dict[str, int], alerts: dict[str, int]) -> str:
    lines = ["| rule | severity | count |", "| --- | --- | ---: |"]
    rows = [(r, "error", n) for r, n in errors.items()] + [(r, "alert", n) for r, n in alerts.items()]
    for rule, severity, n in sorted(rows, key=lambda x: (-x[2], x[0])):
        lines.append(f"| `{rule}` | {severity} | {n} |")
    return "\n".join(lines) if rows else "No errors or alerts."


@dg.asset(
    deps=[mrf_files],
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"python", "json", "parquet"},
    retry_policy=TRANSIENT_RETRY,
    backfill_policy=ONE_HOSPITAL_PER_RUN,
    owners=["team:ingestion"],
    check_specs=[CONFORMANCE_REPORTS_FILES_CONFORM, CONFORMANCE_REPORTS_NO_CMS_ALERTS],
    metadata=declared_schema(CONFORMANCE_REPORT_SCHEMA),
    # after the parse and normalisation steps of the in-process run, while a child validates
    op_tags={PRIORITY_TAG: "-1"},
)
@per_hospital
@timed
def conformance_reports(
    context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource
) -> dg.MaterializeResult:
    """CMS conformance report of each current file (valid, error and alert counts by rule, first
    findings with row/column or JSON path), stored per file version as
    ``conformance/hospital_key=<k>/file_sha256=<sha>.json`` and summarised in
    ``conformance/hospital_key=<k>/report.parquet`` for the compliance marts."""
    key = context.partition_key
    result = validate_hospital(key, lake=price_pipeline.lake, log=context.log.info,
                               limits=price_pipeline.settings.archive_limits(),
                               background_timeout=price_pipeline.settings.conformance_background_timeout_seconds,
                               **rules_from_settings(price_pipeline.settings))
    errors, alerts = result.totals()
    lake = price_pipeline.lake
    report_key = layout.conformance_table_key(key)
    files = [
        {
            "file_sha256": r.get("file_sha256"),
            "url": r.get("url"),
            "download_status": r.get("download_status"),
            "format": r.get("format"),
            "version": r.get("version"),
            "rules_version": r.get("rules_version"),
            "rules_selection": r.get("rules_selection"),
            "valid": r.get("valid"),
            "errors": r.get("errors"),
            "alerts": r.get("alerts"),
            "errors_by_rule": r.get("errors_by_rule", {}),
            "alerts_by_rule": r.get("alerts_by_rule", {}),
            "findings_truncated": r.get("findings_truncated"),
            "first_findings": r.get("findings", [])[:FINDINGS_IN_METADATA],
            "report": r.get("report_key"),
        }
        for r in result.reports
    ]
    return dg.MaterializeResult(
        check_results=[
            check_result(CONFORMANCE_REPORTS_FILES_CONFORM, conformance_reports_files_conform(result.reports)),
            check_result(CONFORMANCE_REPORTS_NO_CMS_ALERTS, conformance_reports_no_cms_alerts(result.reports)),
        ],
        metadata={
            "valid": result.valid,
            "files_checked": len(result.validated),
            "files_valid": sum(1 for r in result.validated if r["valid"]),
            "errors": sum(errors.values()),
            "alerts": sum(alerts.values()),
            "rules_applied": ", ".join(sorted({f"{r['rules_version']} ({r.get('rules_selection')})"
                                              for r in result.validated if r.get("rules_version")})) or "none",
            "errors_by_rule": dg.MetadataValue.json(errors),
            "alerts_by_rule": dg.MetadataValue.json(alerts),
            "rules": dg.MetadataValue.md(_rules_table(errors, alerts)),
            "files": dg.MetadataValue.json(files),
            "lake_key": dg.MetadataValue.path(lake.uri(report_key)),
            **lake_table_metadata(lake, report_key),
        }
    )
