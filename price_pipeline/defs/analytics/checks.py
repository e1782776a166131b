"""Checks on the analytics layer beyond dbt's own tests (which arrive as asset checks)."""


import dagster as dg
import duckdb

from price_pipeline.defs.analytics.assets import MART_EXPORTS, exports
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.exports import FORMULA_PREFIX_PATTERN, quote_identifier


@dg.asset_check(asset=exports, blocking=True)
def csv_exports_are_formula_safe(price_pipeline: PricePipelineResource) -> dg.AssetCheckResult:
    """No cell of a CSV extract starts with a character a spreadsheet would execute as a formula."""
    lake = price_pipeline.lake
    unsafe: dict[str, int] = {}
    checked = 0
    for name in MART_EXPORTS:
        key = f"exports/{name}.csv"
        if not lake.exists(key):
            continue
        with lake.local_copy(key) as path:
            con = duckdb.connect()
            try:
                columns = [
                    row[0]
                    for row in con.execute(
                        "DESCRIBE SELECT * FROM read_csv(?, all_varchar=true, header=true)", [str(path)]
                    ).fetchall()
                ]
                condition = " OR ".join(
                    # Numbers (a negative amount) are not formulas: only text cells count.
                    f"(regexp_matches({quote_identifier(c)}, '{FORMULA_PREFIX_PATTERN}') "
                    f"AND TRY_CAST({quote_identifier(c)} AS DOUBLE) IS NULL)"
                    for c in columns
                )
                count = con.execute(
                    f"SELECT count(*) FROM read_csv(?, all_varchar=true, header=true) WHERE {condition}",  # noqa: S608
                    [str(path)],
                ).fetchone()[0]
            finally:
                con.close()
        checked += 1
        if count:
            unsafe[name] = count
    return dg.AssetCheckResult(passed=not unsafe, metadata={"files_checked": checked, "unsafe_rows": unsafe})
