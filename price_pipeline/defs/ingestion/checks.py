"""Checks on each ingestion layer, per hospital partition, evaluated inside their asset's step.

Each check is an ``AssetCheckSpec`` on its asset (``check_specs=``), and the asset body returns
its result with the materialization (:func:`check_result`; the logic is in
:mod:`price_pipeline.lib.quality.ingestion_checks`). A separate check step cost a hospital's run
a step start, its output and success events and a re-read of what the asset had just written:
seven of twelve steps of a run whose work is a few hundred milliseconds.

Blocking checks stop the hospital's downstream steps when continuing would publish wrong or
empty data: a failed blocking check (ERROR severity) fails its asset's step after the asset's
materialization is stored, so the assets downstream in the run are skipped, exactly as when the
check had a step of its own. Warning checks report without stopping. Names, descriptions and
keys are those the checks always had, so their history in the UI continues.
"""

import dagster as dg

from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.quality import CheckOutcome


def _spec(name: str, asset: str, description: str, *, blocking: bool) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking,
                             partitions_def=hospital_partitions)


MRF_FILES_HAS_A_PRICE_FILE = _spec(
    "mrf_files_has_a_price_file", "mrf_files",
    "At least one listed file downloaded as data (not an error page) and stored by sha256.\n\n"
    "When it fails, the hospital's steps downstream (conformance_reports included) are skipped;\n"
    "``mrf_files`` has then already recorded the conformance summary of the rejected/failed files\n"
    "(``conformance_recorded``), so the compliance marts show the hospital as serving no\n"
    "conformant file instead of not checked. The check itself only reads.",
    blocking=True,
)
MRF_PARSED_HAS_ROWS = _spec(
    "mrf_parsed_has_rows", "mrf_parsed",
    "Some current file parsed as a CMS MRF with at least one charge row.",
    blocking=True,
)
MRF_PARSED_ROW_COUNT_NOT_COLLAPSED = _spec(
    "mrf_parsed_row_count_not_collapsed", "mrf_parsed",
    "Holds back a new parse with less than half the rows of the version behind the published\n"
    "prices: the step fails, ``prices`` is not rebuilt, and the previous prices stay published\n"
    "until the drop is explained (rerun with the run tag ``price_pipeline/accept_row_drop=true``\n"
    "to publish a legitimately smaller file).",
    blocking=True,
)
MRF_PARSED_HAS_NO_ERROR_FINDINGS = _spec(
    "mrf_parsed_has_no_error_findings", "mrf_parsed",
    "Warns when parsing recorded error-severity findings (the data still flows).",
    blocking=False,
)
PRICES_SCHEMA_AND_LINEAGE_COMPLETE = _spec(
    "prices_schema_and_lineage_complete", "prices",
    "The prices file has the canonical schema, rows, and lineage (file sha256 plus source row or\n"
    "JSON path) on every row, so any number can be traced back to the hospital's bytes.",
    blocking=True,
)
CONFORMANCE_REPORTS_FILES_CONFORM = _spec(
    "conformance_reports_files_conform", "conformance_reports",
    "Warns when a current file breaks CMS rules (errors) or could not be validated; the prices\n"
    "still flow (non-conformance is reported in the compliance marts, not held back).",
    blocking=False,
)
CONFORMANCE_REPORTS_NO_CMS_ALERTS = _spec(
    "conformance_reports_no_cms_alerts", "conformance_reports",
    "Warns on CMS alerts (nine-9s placeholders, estimated amounts in v3, false attestation,\n"
    "version mismatch) and the validator's own (bytes after a JSON document, lone-CR line endings,\n"
    "blank data rows only): allowed by the rules, but worth a look.",
    blocking=False,
)

# Every ingestion check, for selections and tests that must name them.
INGESTION_CHECK_SPECS = (
    MRF_FILES_HAS_A_PRICE_FILE, MRF_PARSED_HAS_ROWS, MRF_PARSED_ROW_COUNT_NOT_COLLAPSED,
    MRF_PARSED_HAS_NO_ERROR_FINDINGS, PRICES_SCHEMA_AND_LINEAGE_COMPLETE, CONFORMANCE_REPORTS_FILES_CONFORM,
    CONFORMANCE_REPORTS_NO_CMS_ALERTS,
)


def check_result(spec: dg.AssetCheckSpec, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The Dagster result of one check on one hospital: ERROR severity for a blocking check (a
    failure stops the run downstream), WARN for the others; lists and dicts shown as JSON."""
    return dg.AssetCheckResult(
        check_name=spec.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata={k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v
                  for k, v in outcome.metadata.items()},
    )


def _row_count(record) -> int | None:
    value = record.asset_materialization.metadata.get("dagster/row_count") if record else None
    return None if value is None else int(value.value)


def published_parsed_row_count(instance: dg.DagsterInstance, hospital_key: str) -> int | None:
    """Rows of the parsed version behind the hospital's currently published prices.

    That is the newest ``mrf_parsed`` materialization older than the newest ``prices``
    materialization of the partition (None when prices were never published). Evaluated in
    ``mrf_parsed``'s body, before this run's materialization of it is stored: that one is newer
    than the newest prices anyway, so the answer is the one a separate check step got.
    """
    latest_prices = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("prices"), asset_partitions=[hospital_key]), limit=1
    ).records
    if not latest_prices:
        return None
    feeding = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("mrf_parsed"), asset_partitions=[hospital_key],
            before_storage_id=latest_prices[0].storage_id,
        ),
        limit=1,
    ).records
    return _row_count(feeding[0]) if feeding else None
