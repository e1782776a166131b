"""The run queue limits of the shipped dagster.yaml files hold under a burst of every kind of run.

Dagster's own queue daemon (QueuedRunCoordinatorDaemon) dequeues a burst of queued runs from an
instance configured by the real ``dagster.yaml`` (embedded) and ``deploy/production/dagster.yaml``'s
limits; only the run launcher is swapped for Dagster's test launcher, which records launches
instead of starting processes. The burst holds every kind of run the platform queues, each with
the tags its launcher really sets (lib/ops/tags.py): catalog- and change-sensor ingestion runs,
customer-priority hospitals, CLI launches, CLI backfills, retry-failed, the weekly re-scan, the
expectations suite and an analytics build. After every daemon iteration the launched-and-unfinished
runs are checked against every limit in the file (the test reads them, so a new limit is checked
too), then some are finished, and new catalog work arrives while bulk work fills the queue.
"""

import random
import shutil

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test, create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from price_pipeline.lib.ops.tags import (
    BULK_TAG,
    HOSPITAL_TAG,
    LAYER_TAG,
    PARTITION_TAG,
    PRIORITY_BULK,
    PRIORITY_RESCAN,
    PRIORITY_TAG,
    TRIGGER_TAG,
    bulk_run_tags,
    hospital_host,
    hospital_run_tags,
)
from price_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

IN_FLIGHT = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
ORIGIN = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("ingestion"), "__repository__")


def _home_with(tmp_path, config_file: str):
    config = yaml.safe_load((PROJECT_ROOT / config_file).read_text())
    instance_config = {
        "concurrency": config["concurrency"],
        "run_launcher": {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": {"dequeue_use_threads": False}},
        "telemetry": {"enabled": False},
    }
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    return home, config["concurrency"]["runs"]


def _urls(i: int) -> list[str]:
    # half the hospitals on one big vendor host; one has its first file elsewhere (the old
    # sensor rule took the first file's host, the CLI the most common one)
    host = "files.big-vendor.example" if i % 2 == 0 else f"h{i}.example"
    first = "https://cdn.other.example/readme.csv" if i == 4 else f"https://{host}/{i}-a.csv"
    return [first, f"https://{host}/{i}-b.csv", f"https://{host}/{i}-c.json"]


def _create(instance, job_name: str, tags: dict) -> dg.DagsterRun:
    return create_run_for_test(instance, job_name=job_name, status=dg.DagsterRunStatus.QUEUED, tags=tags,
                               remote_job_origin=ORIGIN.get_job_origin(job_name))


def _ingestion(key: str, i: int, trigger: str, priority_keys=frozenset()) -> dict:
    env = {"PRICE_PIPELINE_PRIORITY_HOSPITALS": ",".join(priority_keys)}
    return {PARTITION_TAG: key, **hospital_run_tags(key, _urls(i), trigger=trigger, env=env)}


def _bulk(key: str, i: int, trigger: str, priority: int) -> dict:
    # what the CLI's bulk runs (cli.jobs.launch_bulk) and the weekly re-scan carry
    tags = {PARTITION_TAG: key, HOSPITAL_TAG: key,
            **bulk_run_tags(hospital_host(_urls(i)), trigger=trigger, priority=priority)}
    return tags


def _burst(instance, priority_keys: set[str]) -> list[dg.DagsterRun]:
    """Every kind of run, shuffled: 12 new hospitals from the catalog sensor (two of them
    customer-priority), 3 from the change sensor, 2 CLI launches, 8 CLI-backfill runs, 4
    retry-failed runs, 14 weekly re-scan runs, 3 expectations runs and one analytics build."""
    runs = []
    for i in range(12):
        runs.append(("ingest_hospital", _ingestion(f"new-{i:02d}", i, "catalog_sensor", priority_keys)))
    for i in range(12, 15):
        runs.append(("ingest_hospital", _ingestion(f"chg-{i:02d}", i, "mrf_change_sensor")))
    for i in range(15, 17):
        runs.append(("ingest_hospital", _ingestion(f"cli-{i:02d}", i, "cli")))
    for i in range(20, 28):
        runs.append(("ingest_hospital", _bulk(f"old-{i:02d}", i, "cli-backfill", PRIORITY_BULK)))
    for i in range(28, 32):
        runs.append(("ingest_hospital", _bulk(f"bad-{i:02d}", i, "retry-failed", PRIORITY_BULK)))
    for i in range(32, 46):
        runs.append(("ingest_hospital", _bulk(f"old-{i - 12:02d}", i - 12, "weekly_full_rescan", PRIORITY_RESCAN)))
    for i in range(3):
        runs.append(("check_price_expectations", {PARTITION_TAG: f"new-{i:02d}", LAYER_TAG: "quality",
                                                  PRIORITY_TAG: "-1"}))
    runs.append(("build_analytics", {LAYER_TAG: "analytics", TRIGGER_TAG: "analytics_after_ingestion"}))
    random.Random(7).shuffle(runs)
    return [_create(instance, job, tags) for job, tags in runs]


def _matches(limit: dict, run: dg.DagsterRun) -> bool:
    if limit["key"] not in run.tags:
        return False
    value = limit.get("value")
    return value is None or isinstance(value, dict) or run.tags[limit["key"]] == value


def check_every_limit(limits: dict, in_flight: list[dg.DagsterRun]) -> None:
    """Every limit of the file holds for the runs in flight (read from the file: none is skipped)."""
    assert len(in_flight) <= limits["max_concurrent_runs"]
    for limit in limits["tag_concurrency_limits"]:
        matching = [r for r in in_flight if _matches(limit, r)]
        if isinstance(limit.get("value"), dict) and limit["value"].get("applyLimitPerUniqueValue"):
            values = [r.tags[limit["key"]] for r in matching]
            assert all(values.count(v) <= limit["limit"] for v in values), (limit, values)
        else:
            assert len(matching) <= limit["limit"], (limit, len(matching))


@pytest.mark.parametrize("config_file", ["dagster.yaml", "deploy/production/dagster.yaml"])
def test_limits_hold_under_a_burst_of_every_kind_of_run(tmp_path, config_file):
    home, limits = _home_with(tmp_path, config_file)
    max_runs = limits["max_concurrent_runs"]
    bulk_limit = next(t["limit"] for t in limits["tag_concurrency_limits"] if t["key"] == BULK_TAG)
    assert bulk_limit == max_runs - 1  # one slot always left for new work
    priority_keys = {"new-09", "new-03"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        created = _burst(instance, priority_keys)
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        launched_order: list[str] = []
        first_wave = None
        peak = 0
        late: list[str] = []
        late_waited = []
        with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace:
            for step in range(300):
                list(daemon.run_iteration(workspace))
                in_flight = instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))
                if first_wave is None:
                    first_wave = in_flight
                for run in in_flight:
                    if run.run_id not in launched_order:
                        launched_order.append(run.run_id)
                check_every_limit(limits, in_flight)
                # the tags every ingestion run must carry for the limits to apply to it
                for run in in_flight:
                    if run.tags.get(LAYER_TAG) == "ingestion":
                        assert run.tags.get("price_pipeline/host") and run.tags.get(TRIGGER_TAG), run.tags
                peak = max(peak, len(in_flight))
                queued = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
                bulk_in_flight = [r for r in in_flight if r.tags.get(BULK_TAG) == "true"]
                # new catalog work arriving while bulk work holds every slot it may: it starts at the
                # next daemon iteration, ahead of everything queued
                if not late and len(bulk_in_flight) == bulk_limit:
                    late = [_create(instance, "ingest_hospital",
                                    _ingestion("late-99", 99, "catalog_sensor")).run_id]
                    late_waited.append(step)
                elif late and late[0] in launched_order and len(late_waited) == 1:
                    late_waited.append(step)
                if not in_flight and not queued:
                    break
                # finish half of what is running (at least one), like workers completing;
                # bulk last, so the bulk runs hold their slots as long as they can
                oldest_first = sorted(in_flight, key=lambda r: (r.tags.get(BULK_TAG) == "true",
                                                                launched_order.index(r.run_id)))
                for run in oldest_first[: max(1, len(in_flight) // 2)]:
                    instance.handle_new_event(_success_event(run))
        daemon.__exit__(None, None, None)
        assert len(launched_order) == len(created) + 1  # everything ran eventually
        assert peak == max_runs  # and the queue used all the slots it has
        assert len(late_waited) == 2 and late_waited[1] == late_waited[0] + 1, late_waited
        by_id = {r.run_id: r for r in [*created, *instance.get_runs(dg.RunsFilter(run_ids=late))]}
        # customer-requested hospitals jump the queue; no bulk run is in the first wave
        assert priority_keys <= {r.tags.get(PARTITION_TAG) for r in first_wave}, first_wave
        assert not [r for r in first_wave if r.tags.get(BULK_TAG)]
        position = {run_id: i for i, run_id in enumerate(launched_order)}

        def mean_position(trigger):
            ids = [i for i, r in by_id.items() if r.tags.get(TRIGGER_TAG) == trigger]
            return sum(position[i] for i in ids) / len(ids)

        # the weekly re-scan runs below new work and below operator-launched bulk work
        assert mean_position("catalog_sensor") < mean_position("cli-backfill") < mean_position("weekly_full_rescan")
    shutil.rmtree(home, ignore_errors=True)


def _success_event(run: dg.DagsterRun):
    import time

    from dagster._core.events import DagsterEvent
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None, level="debug", user_message="", run_id=run.run_id, timestamp=time.time(),
        dagster_event=DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, run.job_name),
    )
