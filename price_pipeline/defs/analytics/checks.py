"""Checks on the analytics layer beyond dbt's own tests (which arrive as asset checks)."""


import dagster as dg
import duckdb

from price_pipeline.defs.analytics.assets import EXTRACTS, exports
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.analytics import count_formula_cells
from price_pipeline.lib.lake import layout


@dg.asset_check(asset=exports, blocking=True)
def csv_exports_are_formula_safe(price_pipeline: PricePipelineResource) -> dg.AssetCheckResult:
    """No cell of any CSV extract would run as a formula in a spreadsheet (same rule as the export:
    ``=``, ``+``, ``-``, ``@`` first, or after leading spaces, controls or a BOM; plain numbers excepted)."""
    lake = price_pipeline.lake
    unsafe: dict[str, int] = {}
    checked = 0
    for name in EXTRACTS:
        key = layout.export_key(name, "csv")
        if not lake.exists(key):
            continue
        with lake.local_copy(key) as path:
            con = duckdb.connect()
            try:
                count = count_formula_cells(con, path)
            finally:
                con.close()
        checked += 1
        if count:
            unsafe[name] = count
    return dg.AssetCheckResult(passed=not unsafe, metadata={"files_checked": checked, "unsafe_rows": unsafe})
