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
    baseline = _ingest_requests(settings)
    assert len(baseline) >= 3
    assert not any(PRIORITY_TAG in r.tags for r in baseline.values())

    chosen = sorted(baseline)[1:3]
    monkeypatch.setenv("PRICE_PIPELINE_PRIORITY_HOSPITALS", f" {chosen[0]},{chosen[1]} ,ccn-not-listed")
    requests = _ingest_requests(settings)  # a fresh instance: every hospital is new again
    assert set(requests) == set(baseline)
    for key, request in requests.items():
        expected = str(PRIORITY_HIGH) if key in chosen else None
        assert request.tags.get(PRIORITY_TAG) == expected, (key, request.tags)
        # the sensor's own tags are kept: trigger, hospital and download host drive the queue limits
        assert request.tags[HOSPITAL_TAG] == key
        assert request.tags["price_pipeline/trigger"] == "catalog_sensor"
        assert request.tags["price_pipeline/host"] == baseline[key].tags["price_pipeline/host"]
