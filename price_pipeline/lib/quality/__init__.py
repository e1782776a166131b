"""Data quality, free of Dagster: conformance reports, expectations, table-wide checks, quarantine.

* :mod:`.conformance` — run the CMS validator (:func:`price_pipeline.lib.validate.validate_file`,
  the code behind ``price-pipeline validate``) on a hospital's current files and store one JSON
  report per file version plus a per-hospital summary Parquet for dbt.
* :mod:`.expectations` — the Great Expectations suite on one hospital's prices (GX imported
  lazily: it costs seconds at import).
* :mod:`.table_checks` — SQL checks over every hospital's prices at once (duplicates,
  placeholders, negotiated above gross, outliers across hospitals).
* :mod:`.quarantine` — one queryable table of every row and file that failed, with its reason.
* :mod:`.ingestion_checks` — the per-hospital checks of the ingestion assets (files, parsed rows,
  prices, conformance), one function per check, named as the check.
* :func:`row_count_collapsed` — the rule behind the "less than half the rows" hold-back.

See docs/quality.md for the user documentation.
"""

from __future__ import annotations

# A new version with fewer than this share of the previous version's rows is held back.
MIN_ROW_RATIO = 0.5


def row_count_collapsed(previous: int | None, current: int, *, min_ratio: float = MIN_ROW_RATIO) -> bool:
    """True when ``current`` rows are fewer than ``min_ratio`` of a known, non-zero ``previous``."""
    if not previous:
        return False
    return current < previous * min_ratio


# The steps, imported after the rule above (which needs nothing from them). The expectations
# module imports Great Expectations only inside run_price_expectations(_many).
from price_pipeline.lib.quality.conformance import (  # noqa: E402
    DEFAULT_MAX_FINDINGS as CONFORMANCE_MAX_FINDINGS,
)
from price_pipeline.lib.quality.conformance import (  # noqa: E402
    REPORT_SCHEMA as CONFORMANCE_REPORT_SCHEMA,
)
from price_pipeline.lib.quality.conformance import (  # noqa: E402
    HospitalConformance,
    rules_from_settings,
    start_background_validations,
    validate_hospital,
)
from price_pipeline.lib.quality.expectations import (  # noqa: E402
    run_price_expectations,
    run_price_expectations_many,
)
from price_pipeline.lib.quality.ingestion_checks import (  # noqa: E402
    CheckOutcome,
    conformance_reports_files_conform,
    conformance_reports_no_cms_alerts,
    mrf_files_has_a_price_file,
    mrf_parsed_has_no_error_findings,
    mrf_parsed_has_rows,
    mrf_parsed_row_count_not_collapsed,
    no_rows_reason,
    prices_schema_and_lineage_complete,
)
from price_pipeline.lib.quality.quarantine import (  # noqa: E402
    QUARANTINE_SCHEMA,
    build_quarantine,
    hospital_quarantine,
)
from price_pipeline.lib.quality.quarantine import summarize as summarize_quarantine  # noqa: E402
from price_pipeline.lib.quality.table_checks import CHECKS as TABLE_CHECKS  # noqa: E402
from price_pipeline.lib.quality.table_checks import TableCheck, run_table_checks  # noqa: E402

__all__ = [
    "CONFORMANCE_MAX_FINDINGS",
    "CONFORMANCE_REPORT_SCHEMA",
    "MIN_ROW_RATIO",
    "QUARANTINE_SCHEMA",
    "TABLE_CHECKS",
    "CheckOutcome",
    "HospitalConformance",
    "TableCheck",
    "build_quarantine",
    "conformance_reports_files_conform",
    "conformance_reports_no_cms_alerts",
    "hospital_quarantine",
    "mrf_files_has_a_price_file",
    "mrf_parsed_has_no_error_findings",
    "mrf_parsed_has_rows",
    "mrf_parsed_row_count_not_collapsed",
    "no_rows_reason",
    "prices_schema_and_lineage_complete",
    "row_count_collapsed",
    "rules_from_settings",
    "run_price_expectations",
    "run_price_expectations_many",
    "run_table_checks",
    "start_background_validations",
    "summarize_quarantine",
    "validate_hospital",
]
