"""Jobs that run the ingestion layers for one hospital at a time."""

import dagster as dg

from price_pipeline.defs.ingestion.assets import mrf_files, mrf_parsed, prices
from price_pipeline.defs.ingestion.conformance import conformance_reports
from price_pipeline.defs.ingestion.history import price_changes
from price_pipeline.defs.partitions import hospital_partitions

# In-process: one hospital's three steps share one process instead of paying a code-location
# import per step (~2.5 s each here); hospitals run in parallel as separate runs.
ingest_hospital_job = dg.define_asset_job(
    name="ingest_hospital",
    # The Great Expectations suite is its own asset and job (defs/ingestion/expectations.py):
    # it costs ~8 s of imports, so it runs after the wave instead of inside each hospital run.
    selection=dg.AssetSelection.assets(mrf_files, mrf_parsed, prices, price_changes, conformance_reports),
    partitions_def=hospital_partitions,
    executor_def=dg.in_process_executor,
    description="Download, parse, check (CMS conformance) and normalise one hospital's machine-readable files.",
    tags={"price_pipeline/layer": "ingestion"},
)
