"""The composition root: the only place that assembles Dagster definitions.

Two code locations are built here (see workspace.yaml):

* ``ingestion`` — catalog discovery, the per-hospital assets (files, parsed rows, conformance
  reports, prices, price changes) with their checks, the catalog and change sensors, the
  schedules, alerting and the ops report. Its run workers never import dbt or Great
  Expectations, which would add seconds to each of thousands of hospital runs (the GX suite
  runs as the ``prices_expectations`` asset in its own job, imported lazily).
* ``analytics`` — the dbt models over all hospitals, the exports and the table-wide quality
  assets, plus the sensors that rebuild them once ingestion settles.

Both read their configuration from :class:`price_pipeline.settings.Settings` (environment
variables), so embedded and production differ by configuration only.
"""

from __future__ import annotations

import dagster as dg

from price_pipeline.defs.catalog import assets as catalog_assets
from price_pipeline.defs.catalog import checks as catalog_checks
from price_pipeline.defs.catalog.batches import split_failed_batches
from price_pipeline.defs.catalog.jobs import refresh_catalog_job
from price_pipeline.defs.catalog.schedules import refresh_catalog_schedule, weekly_full_rescan
from price_pipeline.defs.catalog.sensors import catalog_sensor, mrf_change_sensor
from price_pipeline.defs.ingestion import assets as ingestion_assets
from price_pipeline.defs.ingestion import conformance as ingestion_conformance
from price_pipeline.defs.ingestion import expectations as ingestion_expectations
from price_pipeline.defs.ingestion import history as ingestion_history
from price_pipeline.defs.ingestion.jobs import ingest_hospital_job
from price_pipeline.defs.ops import assets as ops_assets
from price_pipeline.defs.ops.freshness import with_freshness
from price_pipeline.defs.ops.sensors import alert_on_failures, alert_on_thresholds
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.settings import Settings


def _price_pipeline_resource() -> PricePipelineResource:
    return PricePipelineResource.from_settings(Settings.from_env())


def ingestion() -> dg.Definitions:
    """Catalog discovery and per-hospital ingestion."""
    return with_freshness(dg.Definitions(
        assets=dg.load_assets_from_modules(
            [
                catalog_assets, ingestion_assets, ingestion_history, ingestion_conformance,
                ingestion_expectations, ops_assets,
            ]
        ),
        # the per-hospital checks are check_specs of their assets (defs/ingestion/checks.py)
        asset_checks=dg.load_asset_checks_from_modules([catalog_checks]),
        jobs=[
            ingest_hospital_job, refresh_catalog_job, ops_assets.ops_report_job,
            ingestion_expectations.check_price_expectations_job,
        ],
        sensors=[
            catalog_sensor, mrf_change_sensor, alert_on_failures, alert_on_thresholds,
            ingestion_expectations.expectations_after_prices, split_failed_batches,
        ],
        schedules=[refresh_catalog_schedule, weekly_full_rescan, ops_assets.ops_report_schedule],
        resources={"price_pipeline": _price_pipeline_resource()},
        executor=dg.in_process_executor,
    ))


def analytics() -> dg.Definitions:
    """dbt models, exports and the sensor that keeps them fresh."""
    # Imported here so that loading the ingestion location never pays for dagster-dbt.
    from dagster_dbt import DbtCliResource

    from price_pipeline.defs.analytics import assets as analytics_assets
    from price_pipeline.defs.analytics import checks as analytics_checks
    from price_pipeline.defs.analytics.jobs import build_analytics_job
    from price_pipeline.defs.analytics.sensors import analytics_after_ingestion
    from price_pipeline.defs.quality import assets as quality_assets
    from price_pipeline.defs.quality.jobs import check_quality_job
    from price_pipeline.defs.quality.sensors import quality_after_ingestion

    upstream = [
        dg.AssetSpec("prices", partitions_def=hospital_partitions, group_name="ingestion"),
        dg.AssetSpec("hospitals", group_name="catalog"),
        dg.AssetSpec("conformance_reports", partitions_def=hospital_partitions, group_name="ingestion"),
    ]
    return with_freshness(dg.Definitions(
        assets=[*dg.load_assets_from_modules([analytics_assets, quality_assets]), *upstream],
        asset_checks=dg.load_asset_checks_from_modules([analytics_checks]),
        jobs=[build_analytics_job, check_quality_job],
        sensors=[analytics_after_ingestion, quality_after_ingestion],
        resources={
            "price_pipeline": _price_pipeline_resource(),
            "dbt": DbtCliResource(
                project_dir=analytics_assets.dbt_project, dbt_executable=analytics_assets.DBT_EXECUTABLE
            ),
        },
        executor=dg.in_process_executor,
    ))


def all_definitions() -> dg.Definitions:
    """Both locations as one: for tests and single-process tools."""
    ingestion_defs, analytics_defs = ingestion(), analytics()
    return dg.Definitions(
        # The analytics location declares prices/hospitals as external specs; drop them here,
        # where the location that defines them is present.
        assets=[
            *ingestion_defs.assets,
            *(a for a in analytics_defs.assets if not isinstance(a, dg.AssetSpec)),
        ],
        asset_checks=[*ingestion_defs.asset_checks, *analytics_defs.asset_checks],
        jobs=[*ingestion_defs.jobs, *analytics_defs.jobs],
        sensors=[*ingestion_defs.sensors, *analytics_defs.sensors],
        schedules=ingestion_defs.schedules,
        resources={**analytics_defs.resources, **ingestion_defs.resources},
        executor=dg.in_process_executor,
    )
