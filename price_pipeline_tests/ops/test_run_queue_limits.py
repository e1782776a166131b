"""The run queue limits of the shipped dagster.yaml files hold under a burst of runs.

Dagster's own queue daemon (QueuedRunCoordinatorDaemon) dequeues a burst of queued hospital runs
from an instance configured by the real ``dagster.yaml`` (embedded) and
``deploy/production/dagster.yaml``'s limits; only the run launcher is swapped for Dagster's test
launcher, which records launches instead of starting processes. After every daemon iteration
the launched-and-unfinished runs are checked against every limit, then some are finished.
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

from price_pipeline.lib.ops.tags import DOWNLOAD_HOST_TAG, PRIORITY_TAG, hospital_run_tags
from price_pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

IN_FLIGHT = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


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


def _burst(instance, n_hospitals: int, runs_per_hospital: int, priority_keys: set[str]):
    rng = random.Random(7)
    runs = []
    for i in range(n_hospitals):
        key = f"ccn-{i:03d}"
        host = "files.big-vendor.example" if i % 2 == 0 else f"h{i}.example"
        for _ in range(runs_per_hospital):
            tags = {"dagster/partition": key, **hospital_run_tags(key, [f"https://{host}/{key}.csv"],
                                                               env={"PRICE_PIPELINE_PRIORITY_HOSPITALS": ",".join(priority_keys)})}
            runs.append(tags)
    rng.shuffle(runs)
    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("ingestion"), "__repository__")
    return [
        create_run_for_test(instance, job_name="ingest_hospital", status=dg.DagsterRunStatus.QUEUED, tags=tags,
                            remote_job_origin=origin.get_job_origin("ingest_hospital"))
        for tags in runs
    ]


@pytest.mark.parametrize("config_file", ["dagster.yaml", "deploy/production/dagster.yaml"])
def test_limits_hold_under_a_burst_of_runs(tmp_path, config_file):
    home, limits = _home_with(tmp_path, config_file)
    max_runs = limits["max_concurrent_runs"]
    host_limit = next(t["limit"] for t in limits["tag_concurrency_limits"] if t["key"] == DOWNLOAD_HOST_TAG)
    priority_keys = {"ccn-009", "ccn-013"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        created = _burst(instance, n_hospitals=14, runs_per_hospital=2, priority_keys=priority_keys)
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        launched_order: list[str] = []
        first_wave = None
        peak = 0
        with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace:
            for _ in range(200):
                list(daemon.run_iteration(workspace))
                in_flight = instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))
                if first_wave is None:
                    first_wave = {r.tags["dagster/partition"] for r in in_flight}
                for run in in_flight:
                    if run.run_id not in launched_order:
                        launched_order.append(run.run_id)
                # every limit holds at every moment
                assert len(in_flight) <= max_runs
                partitions = [r.tags["dagster/partition"] for r in in_flight]
                assert len(partitions) == len(set(partitions)), "two runs of one hospital at once"
                hosts = [r.tags.get(DOWNLOAD_HOST_TAG) for r in in_flight]
                assert all(hosts.count(h) <= host_limit for h in hosts), hosts
                peak = max(peak, len(in_flight))
                if not in_flight and not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
                    break
                # finish half of what is running (at least one), like workers completing
                oldest_first = sorted(in_flight, key=lambda r: launched_order.index(r.run_id))
                for run in oldest_first[: max(1, len(in_flight) // 2)]:
                    instance.handle_new_event(_success_event(run))
        daemon.__exit__(None, None, None)
        assert len(launched_order) == len(created)  # everything ran eventually
        assert peak == max_runs  # and the queue used all the slots it has
        by_id = {r.run_id: r for r in created}
        assert priority_keys <= first_wave, first_wave  # customer-requested hospitals jump the queue
        priority_positions = [i for i, run_id in enumerate(launched_order) if by_id[run_id].tags.get(PRIORITY_TAG)]
        # both runs of both priority hospitals start before most of the burst (they are serialised per hospital)
        assert max(priority_positions) < len(created) // 2, priority_positions
    shutil.rmtree(home, ignore_errors=True)


def _success_event(run: dg.DagsterRun):
    import time

    from dagster._core.events import DagsterEvent
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(
        error_info=None, level="debug", user_message="", run_id=run.run_id, timestamp=time.time(),
        dagster_event=DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, run.job_name),
    )
