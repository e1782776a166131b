"""The analytics job: the whole dbt project and the exports, always built together.

dbt models depend on each other in ways a partial selection can break (a mart selected
without the staging view it reads), and a full `dbt build` over DuckDB takes seconds, so the
project is rebuilt as one unit.
"""

import dagster as dg

from price_pipeline.lib.ops.tags import ANALYTICS, layer_tags

build_analytics_job = dg.define_asset_job(
    name="build_analytics",
    selection=dg.AssetSelection.groups("analytics", "exports"),
    executor_def=dg.in_process_executor,
    description="dbt build over all hospitals' prices, then the CSV/Parquet exports.",
    tags=layer_tags(ANALYTICS),
)
