"""The catalog sensor, evaluated directly against the real demo catalog over HTTP."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from price_pipeline.defs.catalog.sensors import catalog_sensor
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.discovery import catalog as catalog_lib
from price_pipeline.lib.discovery.discover import CatalogShrinkError
from price_pipeline.lib.ops.tags import BATCH_SIZE_TAG, HOST_TAG, RANGE_END_TAG, RANGE_START_TAG


@pytest.fixture
def demo_catalog(demo_server):
    """Restores the demo server's hospital list after a test changes it."""
    original = demo_server.hospitals()
    yield demo_server
    demo_server.set_hospitals(original)


def evaluate(instance, settings, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"price_pipeline": PricePipelineResource.from_settings(settings)},
    )
    return catalog_sensor(context)


def apply_partition_requests(instance, result: dg.SensorResult) -> None:
    """What the daemon does with the sensor's dynamic partition requests."""
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def ingest_keys(result, instance) -> list[str]:
    """Every hospital the tick's ingestion runs cover: a run's partition, or each partition of a
    batched run's range (in the partitions' order after the tick's additions)."""
    order = list(instance.get_dynamic_partitions(hospital_partitions.name))
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            order += [k for k in request.partition_keys if k not in order]
    keys = []
    for r in result.run_requests:
        if r.job_name != "ingest_hospital":
            continue
        if r.partition_key:
            keys.append(r.partition_key)
        else:
            start, end = r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]
            keys += order[order.index(start) : order.index(end) + 1]
    return sorted(keys)


def test_first_tick_adds_every_hospital_and_requests_their_runs(settings, demo_catalog):
    expected = sorted(catalog_lib.hospital_key(h) for h in catalog_lib.fetch_catalog(settings.catalog_url))
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(instance, settings)
        assert isinstance(result, dg.SensorResult)
        (add,) = result.dynamic_partitions_requests
        assert add.partitions_def_name == hospital_partitions.name
        assert sorted(add.partition_keys) == expected
        assert ingest_keys(result, instance) == expected
        # The demo's ten hospitals share one host: one batched run over their range, tagged with
        # that host (the per-host run limit counts it as one run of the host).
        (batch,) = [r for r in result.run_requests if r.job_name == "ingest_hospital"]
        assert batch.partition_key is None and batch.tags[BATCH_SIZE_TAG] == str(len(expected))
        assert batch.tags[HOST_TAG] == "127.0.0.1"
        assert [batch.tags[RANGE_START_TAG], batch.tags[RANGE_END_TAG]] == [add.partition_keys[0], add.partition_keys[-1]]
        # run keys pin the file fingerprint, so a replayed tick cannot double-run a hospital
        assert all(":" in r.run_key for r in result.run_requests)
        assert any(r.job_name == "refresh_catalog" for r in result.run_requests)
        assert len(result.cursor) < 200 and json.loads(result.cursor)["hospitals"] == len(expected)


def test_unchanged_catalog_requests_nothing(settings, demo_catalog):
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(instance, settings)
        apply_partition_requests(instance, first)
        second = evaluate(instance, settings, cursor=first.cursor)
        assert isinstance(second, dg.SkipReason)


def test_new_hospital_is_added_and_only_it_is_ingested(settings, demo_catalog):
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(instance, settings)
        apply_partition_requests(instance, first)
        hospitals = demo_catalog.hospitals()
        newcomer = {**hospitals[0], "id": "demo-new", "ccn": "990001", "name": "Newcomer Hospital"}
        demo_catalog.set_hospitals([*hospitals, newcomer])
        result = evaluate(instance, settings, cursor=first.cursor)
        (add,) = result.dynamic_partitions_requests
        new_key = catalog_lib.hospital_key(
            next(h for h in catalog_lib.fetch_catalog(settings.catalog_url) if h.ccn == "990001")
        )
        assert list(add.partition_keys) == [new_key]
        assert ingest_keys(result, instance) == [new_key]


def test_changed_file_list_requests_a_run_for_that_hospital_only(settings, demo_catalog):
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(instance, settings)
        apply_partition_requests(instance, first)
        hospitals = demo_catalog.hospitals()
        hospitals[1]["files"] = [*hospitals[1]["files"], hospitals[0]["files"][0]]
        demo_catalog.set_hospitals(hospitals)
        result = evaluate(instance, settings, cursor=first.cursor)
        assert not result.dynamic_partitions_requests
        changed = [h for h in catalog_lib.fetch_catalog(settings.catalog_url) if h.ccn == hospitals[1]["ccn"]]
        assert ingest_keys(result, instance) == [catalog_lib.hospital_key(changed[0])]


def test_empty_catalog_is_an_error_and_deletes_nothing(settings, demo_catalog):
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(instance, settings)
        apply_partition_requests(instance, first)
        before = sorted(instance.get_dynamic_partitions(hospital_partitions.name))
        demo_catalog.set_hospitals([])
        with pytest.raises((catalog_lib.CatalogError, CatalogShrinkError)):
            evaluate(instance, settings, cursor=first.cursor)
        assert sorted(instance.get_dynamic_partitions(hospital_partitions.name)) == before


def test_collapsed_catalog_is_an_error(settings, demo_catalog):
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(instance, settings)
        apply_partition_requests(instance, first)
        demo_catalog.set_hospitals(demo_catalog.hospitals()[:2])
        with pytest.raises(CatalogShrinkError):
            evaluate(instance, settings, cursor=first.cursor)
