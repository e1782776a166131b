"""Data quality, free of Dagster: conformance reports, expectations, table-wide checks, quarantine.

* :mod:`.conformance` — run the CMS validator (:func:`price_pipeline.lib.validate.validate_file`,
  the code behind ``price-pipeline validate``) on a hospital's current files and store one JSON
  report per file version plus a per-hospital summary Parquet for dbt.
* :mod:`.expectations` — the Great Expectations suite on one hospital's prices (GX imported
  lazily: it costs seconds at import).
* :mod:`.table_checks` — SQL checks over every hospital's prices at once (duplicates,
  placeholders, negotiated above gross, outliers across hospitals).
* :mod:`.quarantine` — one queryable table of every row and file that failed, with its reason.
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
