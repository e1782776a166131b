"""The catalog sensor with every discovery source, and the change sensor, on a generated catalog."""

from __future__ import annotations

import dagster as dg
import pytest

from price_pipeline.defs.catalog.sensors import catalog_sensor, mrf_change_sensor
from price_pipeline.defs.ingestion.batching import ingest_batch_size
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.demo.server import DemoCatalogServer, generate_catalog
from price_pipeline.lib.discovery.discover import CatalogShrinkError
from price_pipeline.lib.ops.tags import BATCH_SIZE_TAG, HOST_TAG
from price_pipeline.lib.registry import Registry
from price_pipeline_tests.lib.discovery.test_sources import make_settings


@pytest.fixture
def server():
    hospitals, files = generate_catalog(40)
    with DemoCatalogServer(hospitals=hospitals, files=files) as srv:
        yield srv


def tick(sensor, instance, settings, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"price_pipeline": PricePipelineResource.from_settings(settings)}
    )
    result = sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def test_sensor_reconciles_sources_tags_hosts_and_applies_overrides(tmp_path, server):
    overrides = tmp_path / "overrides.toml"
    overrides.write_text('[[hospital]]\nccn = "020001"\nexclude = true\n')
    settings = make_settings(tmp_path, server, overrides_path=str(overrides))
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(catalog_sensor, instance, settings)
        keys = instance.get_dynamic_partitions(hospital_partitions.name)
        assert len(keys) == 39 and "ccn-020001" not in keys
        ingest = [r for r in first.run_requests if r.job_name == "ingest_hospital"]
        # one host: batched runs of at most BATCH_SIZE consecutive hospitals, all tagged with it
        sizes = [int(r.tags.get(BATCH_SIZE_TAG, 1)) for r in ingest]
        assert sum(sizes) == 39 and max(sizes) <= ingest_batch_size() and len(ingest) == -(-39 // ingest_batch_size())
        assert all(r.tags[HOST_TAG] == "127.0.0.1" for r in ingest)
        assert len(first.cursor) < 200
        registry = Registry(settings.registry_url)
        row = registry.hospital("ccn-010000")
        assert row["sources"] == "catalog_api,cms_hpt" and row["npi"] == "1000000000" and row["latitude"]
        assert tick(catalog_sensor, instance, settings, first.cursor).__class__ is dg.SkipReason


def test_confirmed_shrink_goes_through_and_keeps_history(tmp_path, server):
    settings = make_settings(tmp_path, server)
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(catalog_sensor, instance, settings)
        server.set_hospitals(server.hospitals()[:10])
        with pytest.raises(CatalogShrinkError):
            tick(catalog_sensor, instance, settings, first.cursor)
        assert len(instance.get_dynamic_partitions(hospital_partitions.name)) == 40
        # an operator confirms (refresh_catalog with allow_shrink marks them removed)
        registry = Registry(settings.registry_url)
        registry.mark_removed([h["hospital_key"] for h in registry.list_hospitals()][10:])
        tick(catalog_sensor, instance, settings, first.cursor)
        assert len(instance.get_dynamic_partitions(hospital_partitions.name)) == 10
        assert len(registry.list_hospitals(status="removed")) == 30 and len(registry.list_hospitals()) == 40


def test_change_sensor_sweeps_with_a_watermark_and_requests_runs_for_changed_files(tmp_path, server):
    from price_pipeline.lib.fetch.files import fetch_hospital_files
    from price_pipeline.lib.lake.storage import LocalLake

    settings = make_settings(tmp_path, server, change_sweep_max_files=15)
    with dg.DagsterInstance.ephemeral() as instance:
        tick(catalog_sensor, instance, settings)
        registry = Registry(settings.registry_url)
        lake = LocalLake(tmp_path / "lake")
        for (key, url) in registry.file_states():
            fetch_hospital_files(key, [url], lake=lake, registry=registry, settings=settings, scratch_dir=tmp_path)
        cursors, runs = [], []
        cursor = None
        for _ in range(3):  # 40 files, 15 per tick: three ticks make one sweep
            result = tick(mrf_change_sensor, instance, settings, cursor)
            cursor = result.cursor
            cursors.append(cursor)
            runs += result.run_requests or []
        assert runs == [] and all(len(c) < 400 for c in cursors) and '"after": null' in cursors[-1]
        name = next(n for n in server.file_names() if "generated-hospital-00000" in n)
        server.set_file(name, server.file_bytes(name) + b"Changed,1,CPT,1\n")
        requested = []
        for _ in range(3):
            result = tick(mrf_change_sensor, instance, settings, cursor)
            cursor = result.cursor
            requested += result.run_requests or []
        (run,) = requested
        assert run.partition_key == "ccn-010000" and run.run_key.startswith("change:ccn-010000:")

        # A hospital whose ingestion run is still queued (here: inside a queued batch's range) gets
        # no second run: the queued one downloads the changed file.
        from dagster._core.test_utils import create_run_for_test

        order = instance.get_dynamic_partitions(hospital_partitions.name)
        i = order.index("ccn-020001")
        create_run_for_test(instance, job_name="ingest_hospital", status=dg.DagsterRunStatus.NOT_STARTED,
                            tags={"dagster/asset_partition_range_start": order[max(0, i - 1)],
                                  "dagster/asset_partition_range_end": order[i + 1]})
        name = next(n for n in server.file_names() if "generated-hospital-00001" in n)
        server.set_file(name, server.file_bytes(name) + b"Changed,1,CPT,1\n")
        skipped = []
        for _ in range(3):
            result = tick(mrf_change_sensor, instance, settings, cursor)
            cursor = result.cursor
            assert not result.run_requests
            skipped += [result.skip_reason.skip_message] if result.skip_reason else []
        assert any("already queued: ccn-020001" in m for m in skipped), skipped
        assert dict(((k, u), s) for k, u, s in registry.engine.connect().exec_driver_sql(
            "SELECT hospital_key, url, status FROM file_states").fetchall())[("ccn-020001", server.file_url(name))] == "changed"


def test_catalog_api_key_reaches_the_library_but_not_the_resource_config(settings, monkeypatch):
    monkeypatch.setenv("PRICE_PIPELINE_CATALOG_API_KEY", "s3cret-key")
    resource = PricePipelineResource.from_settings(settings)
    assert resource.settings.catalog_api_key == "s3cret-key"
    assert "s3cret-key" not in repr(resource.model_dump())
    monkeypatch.delenv("PRICE_PIPELINE_CATALOG_API_KEY")
    assert PricePipelineResource.from_settings(settings).settings.catalog_api_key is None
