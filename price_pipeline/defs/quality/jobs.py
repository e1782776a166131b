"""The quality job: the table-wide checks and the quarantine table, over all hospitals."""

import dagster as dg

from price_pipeline.lib.ops.tags import QUALITY, layer_tags

check_quality_job = dg.define_asset_job(
    name="check_quality",
    selection=dg.AssetSelection.groups("quality"),
    executor_def=dg.in_process_executor,
    description="Table-wide SQL checks over all hospitals' prices and the quarantine table.",
    tags=layer_tags(QUALITY),
)
