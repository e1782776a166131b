"""PRICE_PIPELINE_PRIORITY_HOSPITALS reaches the runs the catalog sensor requests: listed hospitals
carry ``dagster/priority`` 10 (the queue starts them first), the others no priority tag."""

import dagster as dg

from price_pipeline.defs.catalog.sensors import catalog_sensor
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.ops.tags import HOSPITAL_TAG, PRIORITY_HIGH, PRIORITY_TAG


def _ingest_requests(settings) -> dict[str, dg.RunRequest]:
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"price_pipeline": PricePipelineResource.from_settings(settings)}
        )
        result = catalog_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return {r.partition_key: r for r in result.run_requests if r.job_name == "ingest_hospital"}


def test_catalog_sensor_runs_of_priority_hospitals_get_high_priority(settings, monkeypatch):
    monkeypatch.delenv("PRICE_PIPELINE_PRIORITY_HOSPITALS", raising=False)
    # batched: the demo's hospitals share one host, so one range run; a priority hospital
    # never waits for a batch: it gets a run of its own, at high priority
    monkeypatch.delenv("PRICE_PIPELINE_INGEST_BATCH_SIZE", raising=False)
    batched = _ingest_requests(settings)
    assert list(batched) == [None]
    first = sorted(batched[None].tags.items())
    monkeypatch.setenv("PRICE_PIPELINE_PRIORITY_HOSPITALS", "ccn-not-listed")
    assert sorted(_ingest_requests(settings)[None].tags.items()) == first
    monkeypatch.delenv("PRICE_PIPELINE_PRIORITY_HOSPITALS")

    monkeypatch.setenv("PRICE_PIPELINE_INGEST_BATCH_SIZE", "1")  # one run per hospital from here
    baseline = _ingest_requests(settings)
    assert len(baseline) >= 3
    assert not any(PRIORITY_TAG in r.tags for r in baseline.values())

    chosen = sorted(baseline)[1:3]
    monkeypatch.setenv("PRICE_PIPELINE_PRIORITY_HOSPITALS", f" {chosen[0]},{chosen[1]} ,ccn-not-listed")
    monkeypatch.delenv("PRICE_PIPELINE_INGEST_BATCH_SIZE")
    with_batches = _ingest_requests(settings)
    assert all(with_batches[k].tags[PRIORITY_TAG] == str(PRIORITY_HIGH) for k in chosen)
    assert not any(PRIORITY_TAG in r.tags for k, r in with_batches.items() if k not in chosen)
    monkeypatch.setenv("PRICE_PIPELINE_INGEST_BATCH_SIZE", "1")
    requests = _ingest_requests(settings)  # a fresh instance: every hospital is new again
    assert set(requests) == set(baseline)
    for key, request in requests.items():
        expected = str(PRIORITY_HIGH) if key in chosen else None
        assert request.tags.get(PRIORITY_TAG) == expected, (key, request.tags)
        # the sensor's own tags are kept: trigger, hospital and download host drive the queue limits
        assert request.tags[HOSPITAL_TAG] == key
        assert request.tags["price_pipeline/trigger"] == "catalog_sensor"
        assert request.tags["price_pipeline/host"] == baseline[key].tags["price_pipeline/host"]


def test_one_host_rule_for_sensor_rescan_and_cli(settings, monkeypatch):
    """The catalog sensor, the weekly re-scan and the CLI's bulk paths tag a hospital with the same
    host (lib/ops/tags.hospital_host over the reconciled file list); the re-scan is bulk work."""
    from datetime import UTC, datetime

    from price_pipeline.defs.catalog.schedules import weekly_full_rescan
    from price_pipeline.lib.ops.tags import (
        BULK_TAG,
        HOST_TAG,
        LAYER_TAG,
        PRIORITY_RESCAN,
        TRIGGER_TAG,
        hospital_host,
        registry_hospital_urls,
    )

    monkeypatch.delenv("PRICE_PIPELINE_PRIORITY_HOSPITALS", raising=False)
    monkeypatch.setenv("PRICE_PIPELINE_INGEST_BATCH_SIZE", "1")  # a run per hospital, to compare tags
    resource = PricePipelineResource.from_settings(settings)
    with dg.instance_for_test() as instance:
        sensor = catalog_sensor(dg.build_sensor_context(instance=instance, resources={"price_pipeline": resource}))
        for request in sensor.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        by_sensor = {r.partition_key: r.tags for r in sensor.run_requests if r.job_name == "ingest_hospital"}
        context = dg.build_schedule_context(instance=instance, resources={"price_pipeline": resource},
                                            scheduled_execution_time=datetime(2026, 1, 4, 3, tzinfo=UTC))
        rescans = {r.partition_key: r.tags for r in weekly_full_rescan(context)}
    assert set(rescans) == set(by_sensor)
    # what the CLI's launch / backfill / retry-failed compute from the registry
    cli_urls = registry_hospital_urls(resource.registry)
    cli_hosts = {k: hospital_host(cli_urls.get(k, ())) for k in by_sensor}
    for key, tags in rescans.items():
        assert tags[HOST_TAG] == by_sensor[key][HOST_TAG] == cli_hosts[key] != "none"
        assert tags[BULK_TAG] == "true" and tags[TRIGGER_TAG] == "weekly_full_rescan"
        assert tags[LAYER_TAG] == "ingestion" and tags["dagster/priority"] == str(PRIORITY_RESCAN)
        assert tags["price_pipeline/force_download"] == "true"
