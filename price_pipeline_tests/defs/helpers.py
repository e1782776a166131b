"""Helpers to materialize the real assets in-process against a temporary lake."""

from __future__ import annotations

import dagster as dg

from price_pipeline.defs.catalog import assets as catalog_assets
from price_pipeline.defs.catalog import checks as catalog_checks
from price_pipeline.defs.ingestion import assets as ingestion_assets
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.discovery import catalog as catalog_lib

# The ingestion assets evaluate their checks in their own steps (check_specs): materializing
# an asset runs its checks.
INGESTION_ASSETS = [ingestion_assets.mrf_files, ingestion_assets.mrf_parsed, ingestion_assets.prices]


def resources_for(settings) -> dict:
    return {"price_pipeline": PricePipelineResource.from_settings(settings)}


def materialize_catalog(instance, settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [catalog_assets.hospital_catalog, catalog_assets.hospitals, *dg.load_asset_checks_from_modules([catalog_checks])],
        instance=instance,
        resources=resources_for(settings),
    )


def materialize_hospital(instance, settings, key: str, *, raise_on_error: bool = False) -> dg.ExecuteInProcessResult:
    if key not in instance.get_dynamic_partitions(hospital_partitions.name):
        instance.add_dynamic_partitions(hospital_partitions.name, [key])
    return dg.materialize(
        INGESTION_ASSETS,
        partition_key=key,
        instance=instance,
        resources=resources_for(settings),
        raise_on_error=raise_on_error,
    )


def demo_keys(settings) -> dict[str, str]:
    """{demo layout (csv_tall, json, zip, broken…) + version -> hospital key} of the demo catalog."""
    return {h.name: catalog_lib.hospital_key(h) for h in catalog_lib.fetch_catalog(settings.catalog_url)}
