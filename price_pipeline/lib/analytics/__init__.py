"""Analytics around the dbt project: exports, published marts and warehouse facts.

* :func:`export_relation` — analyst-ready CSV (formula-safe) and Parquet extracts (``exports``).
* :func:`publish_tables` — every mart as Parquet in the lake (``published_marts``).
* :func:`needs_full_refresh` — whether an incremental dbt build can start from the warehouse.
* :mod:`.dbt_plugin` — the dbt-duckdb plugin named in ``dbt_analytics/profiles.yml``; it imports
  dbt, so it is never imported here (the ingestion code location must not load dbt).
"""

from price_pipeline.lib.analytics.exports import (
    ExportFilters,
    UnsafeExportError,
    count_formula_cells,
    export_relation,
    natural_keys,
    order_clause,
    quote_identifier,
)
from price_pipeline.lib.analytics.publish import NothingPublishedError, export_published, publish_tables
from price_pipeline.lib.analytics.warehouse import needs_full_refresh

__all__ = [
    "ExportFilters",
    "NothingPublishedError",
    "UnsafeExportError",
    "count_formula_cells",
    "export_published",
    "export_relation",
    "natural_keys",
    "needs_full_refresh",
    "order_clause",
    "publish_tables",
    "quote_identifier",
]
