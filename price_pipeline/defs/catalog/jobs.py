"""Jobs of the catalog layer."""

import dagster as dg

from price_pipeline.defs.catalog.assets import hospital_catalog, hospitals
from price_pipeline.lib.ops.tags import CATALOG, layer_tags

refresh_catalog_job = dg.define_asset_job(
    name="refresh_catalog",
    selection=dg.AssetSelection.assets(hospital_catalog, hospitals),
    executor_def=dg.in_process_executor,
    description="Re-read the hospital catalog and rebuild the hospitals table.",
    tags=layer_tags(CATALOG),
)
