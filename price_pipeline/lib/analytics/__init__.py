"""Analytics around the dbt project: exports, published marts and warehouse facts.

* :func:`export_relation` — analyst-ready CSV (formula-safe) and Parquet extracts (``exports``).
* :func:`publish_tables` — every mart as Parquet in the lake (``published_marts``).
* :func:`needs_full_refresh` — whether an incremental dbt build can start from the warehouse.
* :mod:`.build_selection` — which nodes an incremental build runs (seeds and views kept when the
  project and settings are those of the warehouse's last successful build).
* :mod:`.dbt_plugin` — the dbt-duckdb plugin named in ``dbt_analytics/profiles.yml``; it imports
  dbt, so it is never imported here (the ingestion code location must not load dbt).

The names resolve on first use (PEP 562): every dbt process imports :mod:`.dbt_plugin`, which
runs this file first, and must not pay for pyarrow and numpy (``publish``), which no model
uses: ~0.3-0.6 CPU-s of every dbt invocation, the incremental build's included.
"""

from __future__ import annotations

from price_pipeline.lib.lazy import lazy_exports

# public name -> module of this package that defines it
_EXPORTS = {
    "ExportFilters": "exports",
    "UnsafeExportError": "exports",
    "count_formula_cells": "exports",
    "export_relation": "exports",
    "natural_keys": "exports",
    "order_clause": "exports",
    "quote_identifier": "exports",
    "NothingPublishedError": "publish",
    "export_published": "publish",
    "publish_tables": "publish",
    "needs_full_refresh": "warehouse",
    "forget_build": "build_selection",
    "in_dependency_order": "build_selection",
    "incremental_build_args": "build_selection",
    "keep_partial_parse": "build_selection",
    "partial_parse_cache": "build_selection",
    "record_build": "build_selection",
    "seed_partial_parse": "build_selection",
    "unchanging_nodes": "build_selection",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
