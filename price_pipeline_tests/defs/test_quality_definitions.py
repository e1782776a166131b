"""The quality assets and checks are registered where they belong, at no import cost to ingestion."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from price_pipeline import definitions
from price_pipeline.defs.partitions import hospital_partitions


def test_ingestion_location_imports_neither_great_expectations_nor_dbt():
    code = (
        "import sys; from price_pipeline.definitions import ingestion; ingestion(); "
        "print(sorted({m.split('.')[0] for m in sys.modules "
        "if m.startswith(('great_expectations', 'dagster_dbt', 'dbt.'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_quality_assets_checks_and_jobs_are_registered():
    ingestion = definitions.ingestion()
    graph = ingestion.resolve_asset_graph()
    assert graph.get(dg.AssetKey("conformance_reports")).partitions_def is not None
    checks = {k.name for k in graph.asset_check_keys}
    assert {
        "conformance_reports_files_conform",
        "conformance_reports_no_cms_alerts",
        "prices_meet_expectations",
        "mrf_parsed_row_count_not_collapsed",
    } <= checks
    job = ingestion.resolve_job_def("ingest_hospital")
    assert dg.AssetKey("conformance_reports") in job.asset_layer.asset_graph.get_all_asset_keys()

    analytics = definitions.analytics()
    agraph = analytics.resolve_asset_graph()
    for key in ("price_anomalies", "quarantine"):
        assert agraph.get(dg.AssetKey(key)).group_name == "quality"
    assert {"duplicate_prices", "placeholder_values", "negotiated_above_gross", "extreme_outliers"} <= {
        k.name for k in agraph.asset_check_keys
    }
    # the compliance marts read the conformance reports asset
    scorecard = agraph.get(dg.AssetKey("mart_compliance_scorecard"))
    assert scorecard is not None
    staging = agraph.get(dg.AssetKey("stg_compliance_reports"))
    assert dg.AssetKey("conformance_reports") in staging.parent_keys
    analytics.resolve_job_def("check_quality")
    assert {s.name for s in analytics.sensors} >= {"quality_after_ingestion"}


def test_ingestion_checks_run_in_their_assets_steps():
    """A hospital's run is one step per asset: every ingestion check is a check_spec of its asset,
    with the key, blocking flag and partitioning it had as a step of its own."""
    from price_pipeline.defs.ingestion.checks import INGESTION_CHECK_SPECS

    job = definitions.ingestion().resolve_job_def("ingest_hospital")
    graph = job.asset_layer.asset_graph
    assert set(graph.asset_check_keys) == {spec.key for spec in INGESTION_CHECK_SPECS}
    blocking = {spec.name for spec in INGESTION_CHECK_SPECS if spec.blocking}
    assert blocking == {"mrf_files_has_a_price_file", "mrf_parsed_has_rows", "mrf_parsed_row_count_not_collapsed",
                        "prices_schema_and_lineage_complete"}
    for spec in INGESTION_CHECK_SPECS:
        assert graph.get_check_spec(spec.key).partitions_def == hospital_partitions
        # the check is an output of its asset's node, not a node of its own
        assert job.asset_layer.get_op_output_name(spec.key) is not None
    # one op (one step of the run) per asset
    assert sorted(node.name for node in job.nodes) == sorted(
        ["mrf_files", "mrf_parsed", "prices", "price_changes", "conformance_reports"])


def test_expectations_run_off_the_ingestion_run_and_a_sensor_requests_them():
    from price_pipeline.defs.ingestion.expectations import expectations_after_prices

    ingestion = definitions.ingestion()
    gx_check = dg.AssetCheckKey(dg.AssetKey("prices_expectations"), "prices_meet_expectations")

    def graph_of(job_name: str):
        return ingestion.resolve_job_def(job_name).asset_layer.asset_graph

    ingest = graph_of("ingest_hospital")
    assert gx_check not in set(ingest.asset_check_keys)
    assert dg.AssetKey("prices_expectations") not in ingest.get_all_asset_keys()
    assert dg.AssetCheckKey(dg.AssetKey("prices"), "prices_schema_and_lineage_complete") in set(ingest.asset_check_keys)
    gx_job = ingestion.resolve_job_def("check_price_expectations")
    assert set(gx_job.asset_layer.asset_graph.asset_check_keys) == {gx_check}
    assert gx_job.asset_layer.executable_asset_keys == {dg.AssetKey("prices_expectations")}
    # what the daemon needs to accept partitioned run requests for this job
    assert gx_job.partitions_def == hospital_partitions
    assert ingestion.get_sensor_def("expectations_after_prices").default_status == dg.DefaultSensorStatus.RUNNING

    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(expectations_after_prices(context), dg.SkipReason)
        for key in ("h1", "h2", "h1"):
            instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition=key))
        result = expectations_after_prices(dg.build_sensor_context(instance=instance))
        assert sorted(r.partition_key for r in result.run_requests) == ["h1", "h2"]
        again = expectations_after_prices(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)


def test_expectations_wait_until_ingestion_has_settled_and_the_analytics_build_has_a_slot():
    """GX runs are requested only once no ingestion or catalog run is queued or running, none
    changed state in the last QUIET_SECONDS (so the wave's analytics build is requested first),
    and no analytics build is still waiting in the queue: they never take the slot that build
    needs, but run beside it once it runs. The cursor does not move while waiting."""
    import time
    from unittest import mock

    from dagster._core.test_utils import create_run_for_test

    from price_pipeline.defs.ingestion import expectations
    from price_pipeline.defs.ops import settle

    def tick():
        return expectations.expectations_after_prices(dg.build_sensor_context(instance=instance))

    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, ["h1"])
        instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition="h1"))
        ingest = create_run_for_test(instance, job_name="ingest_hospital", status=dg.DagsterRunStatus.STARTED,
                                     tags={"price_pipeline/layer": "ingestion"})
        waiting = tick()
        assert isinstance(waiting, dg.SkipReason) and "1 ingestion run queued or running" in waiting.skip_message

        instance.report_run_failed(instance.get_run_by_id(ingest.run_id))  # the wave ended just now
        waiting = tick()
        assert isinstance(waiting, dg.SkipReason) and "ended less than" in waiting.skip_message

        later = time.time() + expectations.QUIET_SECONDS + 1
        # requested, not yet holding a slot (NOT_STARTED counts as queued, as QUEUED does)
        build = create_run_for_test(instance, job_name="build_analytics", status=dg.DagsterRunStatus.NOT_STARTED,
                                    tags={"price_pipeline/layer": "analytics"})
        with mock.patch.object(settle.time, "time", return_value=later):
            waiting = tick()
        assert isinstance(waiting, dg.SkipReason) and "1 analytics run waiting for a run slot" in waiting.skip_message

        instance.handle_run_event(build.run_id, dg.DagsterEvent(  # the build has its slot and runs
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name="build_analytics"))
        assert instance.get_run_by_id(build.run_id).status == dg.DagsterRunStatus.STARTED
        with mock.patch.object(settle.time, "time", return_value=later):
            result = tick()
        assert [r.partition_key for r in result.run_requests] == ["h1"]


def test_expectations_share_runs_across_short_gaps_of_hospitals_with_prices():
    """Scattered changed hospitals (a day's changes) share a run across a gap of at most
    EXPECTATIONS_MAX_GAP hospitals that have prices (checked again); a hospital without prices
    (a broken file) or a longer gap cuts the range."""
    from price_pipeline.defs.ingestion import expectations

    gap = expectations.EXPECTATIONS_MAX_GAP
    keys = [f"h{i:03d}" for i in range(3 * gap)]
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, keys)
        broken = keys[gap + 2]
        for key in keys:
            if key != broken:
                instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition=key))
        first = expectations.expectations_after_prices(dg.build_sensor_context(instance=instance))
        # a new wave: the first and last hospital of a short gap, then one past the broken one and
        # one past a long gap
        changed = [keys[0], keys[gap + 1], keys[gap + 3], keys[-1]]
        for key in changed:
            instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition=key))
        result = expectations.expectations_after_prices(
            dg.build_sensor_context(instance=instance, cursor=first.cursor))
        ranges = sorted(
            (r.partition_key, r.partition_key) if r.partition_key else
            (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in result.run_requests
        )
        assert ranges == [(keys[0], keys[gap + 1]), (keys[gap + 3], keys[gap + 3]), (keys[-1], keys[-1])]


def test_the_sensor_daemon_accepts_and_queues_the_expectations_run_requests(tmp_path, monkeypatch):
    """The real sensor daemon iteration, against the ingestion location served over gRPC as in
    production, turns prices materializations into a queued check_price_expectations run over
    their partition range (the rejected-run-request failure of the check-only job)."""
    import logging

    from dagster._core.scheduler.instigation import TickStatus
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    from price_pipeline.settings import PROJECT_ROOT

    # the code server builds its resources from the environment: point it at a scratch lake
    monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    queued = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    with instance_for_test(overrides={"run_coordinator": queued}) as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, ["h1", "h2"])
        for key in ("h1", "h2"):
            instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition=key))
        target = ModuleTarget(
            module_name="price_pipeline.definitions", attribute="ingestion",
            working_directory=str(PROJECT_ROOT), location_name="ingestion",
        )
        with create_test_daemon_workspace_context(target, instance) as workspace_context:
            location = next(iter(workspace_context.create_request_context().get_code_location_entries().values()))
            assert location.code_location is not None, location.load_error
            (repo,) = location.code_location.get_repositories().values()
            # only this sensor ticks: the others (catalog polling, alerts) are not under test
            for remote_sensor in repo.get_sensors():
                if remote_sensor.name != "expectations_after_prices":
                    instance.stop_sensor(
                        remote_sensor.get_remote_origin_id(), remote_sensor.selector_id, remote_sensor
                    )
            list(execute_sensor_iteration(workspace_context, logging.getLogger("sensor-test"), None, None))

            sensor = repo.get_sensor("expectations_after_prices")
            (tick,) = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
            assert tick.status == TickStatus.SUCCESS, tick.error
            runs = instance.get_runs()
            # h1 and h2 are consecutive partitions: one batched run over their range (one GX import)
            assert len(runs) == 1 == len(tick.run_ids)
            assert [(r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
                    for r in runs] == [("h1", "h2")]
            for run in runs:
                assert run.job_name == "check_price_expectations"
                assert run.status == dg.DagsterRunStatus.QUEUED
                plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
                assert [step.key for step in plan.steps] == ["prices_expectations"]


def test_a_settled_wave_is_planned_as_whole_ranges_whatever_order_its_batches_finished_in():
    """Ingestion batches of different hosts finish interleaved; the suite's runs are planned over
    the whole settled wave, so 250 hospitals take three runs of consecutive partitions (at most
    EXPECTATIONS_RUN_SIZE each), not one per stretch of the first materializations read."""
    from price_pipeline.defs.ingestion import expectations

    keys = [f"h{i:03d}" for i in range(250)]
    blocks = [keys[i:i + 25] for i in range(0, 250, 25)]
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, keys)
        for block in blocks[0::2] + blocks[1::2]:  # every other block first, as batches finish
            for key in block:
                instance.report_runless_asset_event(dg.AssetMaterialization("prices", partition=key))
        result = expectations.expectations_after_prices(dg.build_sensor_context(instance=instance))
        ranges = sorted(
            (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
            for r in result.run_requests
        )
        size = expectations.EXPECTATIONS_RUN_SIZE
        assert ranges == [(keys[i], keys[min(i + size, 250) - 1]) for i in range(0, 250, size)]
