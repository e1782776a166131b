"""Jobs that run the ingestion layers for one hospital at a time."""

import dagster as dg

from price_pipeline.defs.ingestion.assets import mrf_files, mrf_parsed, prices
from price_pipeline.defs.ingestion.conformance import conformance_reports
from price_pipeline.defs.ingestion.history import price_changes
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops.tags import INGESTION, layer_tags

# Every per-hospital ingestion asset: the job's selection, the dead-letter view's scope and the
# selection the CLI's bulk commands rebuild.
INGESTION_ASSET_DEFS = (mrf_files, mrf_parsed, prices, price_changes, conformance_reports)
INGESTION_ASSETS = tuple(a.key for a in INGESTION_ASSET_DEFS)
# asset name -> the ingestion assets that read it directly
INGESTION_CHILDREN = {
    parent.key.to_user_string(): sorted(
        child.key.to_user_string() for child in INGESTION_ASSET_DEFS if parent.key in child.dependency_keys
    )
    for parent in INGESTION_ASSET_DEFS
}

# In-process: one hospital's three steps share one process instead of paying a code-location
# import per step (~2.5 s each here); hospitals run in parallel as separate runs.
ingest_hospital_job = dg.define_asset_job(
    name="ingest_hospital",
    # The Great Expectations suite is its own asset and job (defs/ingestion/expectations.py):
    # it costs ~8 s of imports, so it runs after the wave instead of inside each hospital run.
    selection=dg.AssetSelection.assets(*INGESTION_ASSET_DEFS),
    partitions_def=hospital_partitions,
    executor_def=dg.in_process_executor,
    description="Download, parse, check (CMS conformance) and normalise one hospital's machine-readable files.",
    tags=layer_tags(INGESTION),
)
