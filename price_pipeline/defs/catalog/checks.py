"""Checks on the catalog layer."""


import io

import dagster as dg
import pyarrow.parquet as pq

from price_pipeline.defs.catalog.assets import hospitals
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.discovery import VALID_KEY
from price_pipeline.lib.lake import layout


@dg.asset_check(asset=hospitals, blocking=True)
def hospital_keys_are_valid_partition_keys(price_pipeline: PricePipelineResource) -> dg.AssetCheckResult:
    """Every hospital key is unique and matches ``[a-z0-9_-]{1,64}``: Dagster does not validate
    dynamic partition keys, and a bad key would break paths in the lake."""
    table = pq.read_table(io.BytesIO(price_pipeline.lake.get_bytes(layout.HOSPITALS_KEY)), columns=["hospital_key"])
    keys = table.column("hospital_key").to_pylist()
    invalid = [k for k in keys if not k or not VALID_KEY.match(k)]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    return dg.AssetCheckResult(
        passed=not invalid and not duplicates,
        metadata={"hospitals": len(keys), "invalid_keys": invalid[:20], "duplicate_keys": duplicates[:20]},
    )
