"""The production topology for real: the Dagster instance on PostgreSQL (the shipped
deploy/production/dagster.yaml, step logs on S3), the registry on PostgreSQL, and the lake on
S3 served by moto's server mode — one full hospital partition, the dbt build and the exports."""

from __future__ import annotations

import uuid

import boto3
import dagster as dg
import duckdb
import pytest

from price_pipeline.definitions import analytics
from price_pipeline.launch import prepare_dagster_home
from price_pipeline.lib.analytics.publish import read_manifest
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import S3Lake, connect_duckdb
from price_pipeline.lib.registry import Registry
from price_pipeline.settings import Settings
from price_pipeline_tests.conftest import host_port
from price_pipeline_tests.defs.helpers import (
    demo_keys,
    materialize_catalog,
    materialize_hospital,
    resources_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def production(tmp_path, monkeypatch, postgres_database, moto_s3, demo_server):
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_s3)
    s3.create_bucket(Bucket=bucket)
    # the Dagster instance and the registry share the test database (separate tables)
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_database)
    monkeypatch.setenv("PRICE_PIPELINE_COMPUTE_LOG_BUCKET", bucket)
    monkeypatch.setenv("PRICE_PIPELINE_S3_ENDPOINT_URL", moto_s3)
    monkeypatch.setenv("PRICE_PIPELINE_DBT_TARGET", "production")
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home, production=True)
    settings = Settings(
        data_dir=tmp_path / "data",
        lake_url=f"s3://{bucket}/lake",
        registry_url=postgres_database,
        warehouse_path=tmp_path / "data" / "warehouse.duckdb",
        catalog_url=demo_server.catalog_url,
        s3_endpoint_url=moto_s3,
        allowed_private_hosts=(host_port(demo_server.catalog_url),),
        dbt_target="production",
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance, settings, bucket


def test_hospital_partition_and_dbt_build_on_postgres_and_s3(production):
    instance, settings, bucket = production
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"

    assert materialize_catalog(instance, settings).success
    key = next(k for name, k in demo_keys(settings).items() if "West Mercy" in name)
    result = materialize_hospital(instance, settings, key)
    assert result.success

    lake = S3Lake(settings.lake_url, endpoint_url=settings.s3_endpoint_url)
    assert lake.exists(layout.prices_key(key))
    assert any(k.startswith("raw/") for k in lake.list_keys("raw"))
    assert Registry(settings.registry_url).file_versions_for(key)[0]["status"] == "ok"

    defs = analytics()
    analytics_assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    resources = {**defs.resources, **resources_for(settings)}
    built = dg.materialize(analytics_assets, instance=instance, resources=resources, selection=dg.AssetSelection.all())
    assert built.success

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        (n,) = con.execute("SELECT count(*) FROM mart_hospital_summary WHERE has_prices").fetchone()
    finally:
        con.close()
    assert n == 1
    assert lake.exists("exports/mart_price_distribution.csv")
    mart = instance.get_latest_materialization_event(dg.AssetKey("mart_price_distribution")).asset_materialization
    assert mart.metadata["dagster/row_count"].value > 0
    # what a table holds is visible in the UI: its columns (dbt descriptions included) and first rows
    schema = {c.name: c for c in mart.metadata["dagster/column_schema"].value.columns}
    assert schema["primary_code"].description == "Comparison code."
    assert "| primary_code |" in mart.metadata["preview"].value
    # a mart that is a view (of an incremental table) shows the same as the table marts
    codes = instance.get_latest_materialization_event(dg.AssetKey("mart_item_codes")).asset_materialization
    assert codes.metadata["dagster/row_count"].value > 0 and "| item_key |" in codes.metadata["preview"].value

    # the marts are published to the S3 lake and read back from there, without the warehouse file
    manifest = read_manifest(lake)
    assert set(manifest["tables"]) >= {"mart_price_distribution", "prices_current", "hospitals"}
    reader = connect_duckdb(lake)
    try:
        (published,) = reader.execute(
            "SELECT count(*) FROM read_parquet(?)", [lake.uri(layout.mart_latest_key("mart_price_distribution"))]
        ).fetchone()
        (snapshot,) = reader.execute(
            "SELECT count(*) FROM read_parquet(?)", [lake.uri(manifest["tables"]["prices_current"]["snapshot"])]
        ).fetchone()
    finally:
        reader.close()
    assert published == mart.metadata["dagster/row_count"].value
    assert snapshot == manifest["tables"]["prices_current"]["rows"] > 0
    # runs and their events live in PostgreSQL, materializations are visible through the instance
    assert instance.get_latest_materialization_event(dg.AssetKey("prices")) is not None
