"""Batched ingestion runs (issue 13): one run over a range of hospital partitions, each hospital
still its own partition, and a failing hospital failing only itself in the end."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from price_pipeline.defs.catalog.batches import failed_in_run, split_failed_batches
from price_pipeline.defs.ops.failed import failed_hospitals, failed_items, failure_reason
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.ops.tags import RANGE_END_TAG, RANGE_START_TAG
from price_pipeline_tests.defs.helpers import (
    INGESTION_ASSETS,
    materialize_catalog,
    materialize_hospital,
    resources_for,
)

WEST_MERCY, HARBOR_VALLEY, LAKESHORE, PINE_RIDGE = "ccn-050901", "ccn-050912", "ccn-520188", "ccn-380097"
SUNNY_PRAIRIE = "ccn-170199"  # serves an HTML page instead of its file: the blocking file check fails


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def materialize_range(instance, settings, start: str, end: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        INGESTION_ASSETS,
        instance=instance,
        resources=resources_for(settings),
        tags={RANGE_START_TAG: start, RANGE_END_TAG: end},
        raise_on_error=False,
    )


def latest_prices(instance, key: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("prices"), asset_partitions=[key]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def test_a_batch_materializes_each_hospital_with_its_own_metadata(instance, settings, demo_server):
    assert materialize_catalog(instance, settings).success
    keys = [WEST_MERCY, LAKESHORE, HARBOR_VALLEY]
    instance.add_dynamic_partitions(hospital_partitions.name, keys)
    result = materialize_range(instance, settings, keys[0], keys[-1])
    assert result.success
    lake = LocalLake(settings.lake_url)
    for key in keys:
        materialization = latest_prices(instance, key)
        rows = pq.read_metadata(lake.uri(layout.prices_key(key))).num_rows
        assert rows > 0 and materialization.metadata["dagster/row_count"].value == rows
        assert materialization.metadata["hospitals_in_run"].value == 3
    # each hospital's own rows, not one hospital's numbers copied to all
    assert len({latest_prices(instance, k).metadata["dagster/row_count"].value for k in keys}) > 1
    # the batch's checks ran once per hospital and passed as one result
    evaluation = next(e for e in result.get_asset_check_evaluations()
                      if e.check_name == "prices_schema_and_lineage_complete")
    assert evaluation.passed and evaluation.metadata["hospitals_checked"].value == 3


def test_a_failing_hospital_fails_its_batch_and_the_split_leaves_only_it_failed(instance, settings, demo_server):
    assert materialize_catalog(instance, settings).success
    keys = [WEST_MERCY, LAKESHORE, SUNNY_PRAIRIE, HARBOR_VALLEY, PINE_RIDGE]
    instance.add_dynamic_partitions(hospital_partitions.name, keys)
    batch = materialize_range(instance, settings, keys[0], keys[-1])
    assert not batch.success
    # the blocking check, evaluated per hospital in mrf_files' step, reports once for the batch,
    # naming the failing hospital; the step fails on it and nothing downstream runs
    (evaluation,) = [e for e in batch.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                     and e.asset_check_evaluation_data.check_name == "mrf_files_has_a_price_file"]
    data = evaluation.asset_check_evaluation_data
    assert evaluation.step_key == "mrf_files" and not data.passed and data.severity == dg.AssetCheckSeverity.ERROR
    assert data.metadata["hospitals_checked"].value == len(keys)
    assert set(data.metadata["failing_hospitals"].value) == {SUNNY_PRAIRIE}
    assert not batch.asset_materializations_for_node("mrf_parsed")
    # Dagster records a range all-or-nothing: no hospital of the failed batch has prices yet.
    assert all(latest_prices(instance, k) is None for k in keys)
    assert failed_in_run(instance, batch.run_id) == {SUNNY_PRAIRIE}

    run = instance.get_run_by_id(batch.run_id)
    (failure,) = instance.all_logs(batch.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=split_failed_batches.name, dagster_event=failure.dagster_event,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()
    requests = split_failed_batches(context)
    # the failing hospital alone; the hospitals before and after it as batches of their own
    assert [(r.partition_key, r.tags.get(RANGE_START_TAG), r.tags.get(RANGE_END_TAG)) for r in requests] == [
        (SUNNY_PRAIRIE, None, None), (None, WEST_MERCY, LAKESHORE), (None, HARBOR_VALLEY, PINE_RIDGE),
    ]
    assert len({r.run_key for r in requests}) == 3 and all(batch.run_id in r.run_key for r in requests)

    for request in requests:  # what the daemon would launch
        if request.partition_key:
            assert not materialize_hospital(instance, settings, request.partition_key).success
        else:
            assert materialize_range(instance, settings, request.tags[RANGE_START_TAG],
                                     request.tags[RANGE_END_TAG]).success
    assert all(latest_prices(instance, k) is not None for k in keys if k != SUNNY_PRAIRIE)
    # the dead-letter view (per asset partition) lists the hospital the batch's failed check
    # names; the others succeeded on their own since, the failing one stays
    assert failed_hospitals(instance) == [SUNNY_PRAIRIE]
    items = failed_items(instance)
    assert items and all(i.hospital_key == SUNNY_PRAIRIE and i.reason for i in items)


def test_a_batch_failed_on_a_blocking_check_reports_the_check_as_a_lone_run_does(instance, settings, demo_server):
    """The alert and the failed-hospitals view of a batch that one hospital's broken file failed
    (a blocking check, combined for the batch) name that hospital, the check's kind and reason,
    as that hospital's own run does, not an internal DagsterAssetCheckFailedError."""
    assert materialize_catalog(instance, settings).success
    keys = [WEST_MERCY, SUNNY_PRAIRIE, LAKESHORE]
    instance.add_dynamic_partitions(hospital_partitions.name, keys)
    batch = materialize_range(instance, settings, keys[0], keys[-1])
    assert not batch.success
    kind, reason, where = failure_reason(instance, batch.run_id)
    assert (kind, where) == ("external", "mrf_files:mrf_files_has_a_price_file")
    assert reason.startswith("check mrf_files_has_a_price_file on mrf_files failed: ") and "files_ok=0" in reason
    [item] = failed_items(instance)
    assert (item.hospital_key, item.asset, item.check, item.failure_kind, item.reason, item.run_id) == (
        SUNNY_PRAIRIE, "mrf_files", "mrf_files_has_a_price_file", "external", reason, batch.run_id)

    alone = materialize_hospital(instance, settings, SUNNY_PRAIRIE)
    assert not alone.success
    assert failure_reason(instance, alone.run_id) == (kind, reason, where)


def test_split_reruns_every_hospital_alone_when_the_failure_names_none(instance, settings, demo_server):
    keys = [WEST_MERCY, LAKESHORE]
    instance.add_dynamic_partitions(hospital_partitions.name, keys)
    # no catalog materialized: mrf_files fails for both with "no catalog entry", and names both
    batch = materialize_range(instance, settings, keys[0], keys[-1])
    assert not batch.success and failed_in_run(instance, batch.run_id) == set(keys)
    run = instance.get_run_by_id(batch.run_id)
    (failure,) = instance.all_logs(batch.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=split_failed_batches.name, dagster_event=failure.dagster_event,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()
    assert sorted(r.partition_key for r in split_failed_batches(context)) == keys


def test_only_error_checks_and_step_failures_name_failing_hospitals(instance):
    """A batch's failed *warning* checks (conformance findings, unreadable rows) fail nobody:
    only error-severity checks and step failures name the hospitals re-run alone."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(instance, job_name="ingest_hospital", status=dg.DagsterRunStatus.FAILURE)

    def store(check: str, severity: dg.AssetCheckSeverity, hospital: str) -> None:
        evaluation = AssetCheckEvaluation(
            asset_key=dg.AssetKey("mrf_parsed"), check_name=check, passed=False, severity=severity,
            metadata={"failing_hospitals": dg.MetadataValue.json({hospital: {"rows": 0}})},
        )
        event = DagsterEvent(event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
                             job_name="ingest_hospital", event_specific_data=evaluation)
        instance.store_event(EventLogEntry(error_info=None, level="INFO", user_message="", run_id=run.run_id,
                                           timestamp=0.0, dagster_event=event, job_name="ingest_hospital"))

    store("mrf_parsed_has_no_error_findings", dg.AssetCheckSeverity.WARN, WEST_MERCY)
    assert failed_in_run(instance, run.run_id) is None  # nothing names a failing hospital
    store("mrf_parsed_has_rows", dg.AssetCheckSeverity.ERROR, SUNNY_PRAIRIE)
    assert failed_in_run(instance, run.run_id) == {SUNNY_PRAIRIE}


def test_partition_lookups_are_read_once_while_a_batch_records_its_metadata(instance):
    """The range check of add_asset_metadata reads the instance's partitions once per step, not
    per hospital; the instance's own methods answer again afterwards."""
    from price_pipeline.defs.ingestion.batching import _dynamic_partitions_read_once

    instance.add_dynamic_partitions(hospital_partitions.name, [WEST_MERCY, LAKESHORE])
    reads = []
    storage_read = instance.get_dynamic_partitions
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(instance, "get_dynamic_partitions", lambda name: reads.append(name) or storage_read(name))
        with _dynamic_partitions_read_once(instance):
            for _ in range(3):
                assert instance.has_dynamic_partition(hospital_partitions.name, LAKESHORE)
                assert not instance.has_dynamic_partition(hospital_partitions.name, PINE_RIDGE)
                assert list(instance.get_dynamic_partitions(hospital_partitions.name)) == [WEST_MERCY, LAKESHORE]
        assert reads == [hospital_partitions.name]
    assert "get_dynamic_partitions" not in vars(instance) and "has_dynamic_partition" not in vars(instance)
    instance.add_dynamic_partitions(hospital_partitions.name, [PINE_RIDGE])
    assert instance.has_dynamic_partition(hospital_partitions.name, PINE_RIDGE)
