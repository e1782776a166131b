"""Job control against a real webserver and daemon (issue 14, problem 5): ``add-hospitals``,
``launch`` (a hospital, and ``--job build_analytics`` resolved to the analytics location with the
job's own selection), ``backfill`` (bulk-tagged runs), ``reexecute`` of a failed run, ``cancel``
of a running one, and the dead-letter view following each. Two stand-in code locations carry
the real names (jobcontrol_location.py)."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from price_pipeline.settings import PROJECT_ROOT
from price_pipeline_tests.integration.dagster_process import dagster_dev, tail, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI = [sys.executable, "-m", "price_pipeline.cli"]
LOCATION_FILE = PROJECT_ROOT / "price_pipeline_tests/ops/jobcontrol_location.py"


def _cli(env, *args, timeout=120) -> list[dict]:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _workspace(path):
    entries = "".join(
        f"  - python_file:\n      relative_path: {LOCATION_FILE}\n      attribute: {attribute}\n"
        f"      location_name: {name}\n      working_directory: {PROJECT_ROOT}\n"
        for name, attribute in (("ingestion", "ingestion_defs"), ("analytics", "analytics_defs"))
    )
    path.write_text("load_from:\n" + entries)
    return path


def test_cli_job_control_against_a_real_daemon(tmp_path):
    home = tmp_path / "home"
    flag = tmp_path / "fail-prices"
    flag.touch()
    env = {"PRICE_PIPELINE_DATA_DIR": str(tmp_path / "data"), "JOBCONTROL_FAIL_FLAG": str(flag)}
    with dagster_dev(home, env, workspace=_workspace(tmp_path / "workspace.yaml")) as (_, port):
        url = f"http://127.0.0.1:{port}"
        full_env = {**os.environ, **env, "DAGSTER_HOME": str(home), "PRICE_PIPELINE_DAGSTER_URL": url}
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            def finished(run_ids, timeout=180):
                def check():
                    runs = [instance.get_run_by_id(r) for r in run_ids]
                    return all(r is not None and r.is_finished for r in runs) and runs
                try:
                    return wait_for(check, timeout=timeout, interval=1, what=f"runs {run_ids}")
                except TimeoutError:
                    pytest.fail(f"runs did not finish; log:\n{tail(home / 'dagster_dev.log')}")

            wait_for(lambda: _webserver_up(url), timeout=120, interval=1, what="the webserver")

            [added] = _cli(full_env, "add-hospitals", "ok-1", "ok-2", "bad-1", "slow-1")
            assert added["added"] == ["ok-1", "ok-2", "bad-1", "slow-1"]
            assert set(instance.get_dynamic_partitions("hospitals")) == {"ok-1", "ok-2", "bad-1", "slow-1"}

            # launch --job build_analytics: the analytics location and the job's own selection (it
            # used to default to the ingestion location and the hospital assets, and was refused)
            [analytics] = _cli(full_env, "launch", "--job", "build_analytics")
            assert analytics["location"] == "analytics" and analytics["hospital"] is None
            [run] = finished([analytics["run_id"]])
            assert run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "build_analytics"
            assert run.remote_job_origin.location_name == "analytics"
            assert run.tags["price_pipeline/trigger"] == "cli"

            # launch one hospital (defaults: ingest_hospital in ingestion, every ingestion asset)
            [one, bad] = _cli(full_env, "launch", "-H", "ok-1", "-H", "bad-1")
            runs = {r.run_id: r for r in finished([one["run_id"], bad["run_id"]])}
            assert runs[one["run_id"]].status == dg.DagsterRunStatus.SUCCESS
            assert runs[bad["run_id"]].status == dg.DagsterRunStatus.FAILURE
            assert runs[one["run_id"]].tags["price_pipeline/host"] == "none"  # no registry entry
            [dead] = _cli(full_env, "failed-hospitals", "--json")
            assert (dead["hospital_key"], dead["asset"], dead["failure_kind"]) == ("bad-1", "prices", "internal")

            # reexecute the failed run from failure once the cause is gone: the hospital leaves the view
            flag.unlink()
            [again] = _cli(full_env, "reexecute", bad["run_id"])
            [rerun] = finished([again["run_id"]])
            assert rerun.status == dg.DagsterRunStatus.SUCCESS and rerun.parent_run_id == bad["run_id"]
            assert _cli(full_env, "failed-hospitals", "--json") == []

            # backfill: one queued run per hospital carrying every tag a queue limit keys on (a Dagster
            # partition backfill's runs carry a partition range and no hospital tag: they escaped
            # the one-run-per-hospital limit), bulk-tagged at priority -5
            [backfill] = _cli(full_env, "backfill", "-H", "ok-1", "-H", "ok-2")
            assert [r["hospital"] for r in backfill["runs"]] == ["ok-1", "ok-2"]
            runs = finished([r["run_id"] for r in backfill["runs"]])
            for r, key in zip(runs, ["ok-1", "ok-2"], strict=True):
                assert r.status == dg.DagsterRunStatus.SUCCESS and r.job_name == "ingest_hospital"
                assert r.tags["dagster/partition"] == r.tags["price_pipeline/hospital"] == key
                assert r.tags["price_pipeline/host"] == "none" and r.tags["price_pipeline/bulk_id"] == backfill["bulk_id"]
                assert r.tags["price_pipeline/bulk"] == "true" and r.tags["dagster/priority"] == "-5"
                assert r.tags["price_pipeline/trigger"] == "cli-backfill" and r.tags["price_pipeline/layer"] == "ingestion"

            # cancel a running run: it ends CANCELED and its unbuilt assets are listed as canceled
            [slow] = _cli(full_env, "launch", "-H", "slow-1")
            wait_for(lambda: instance.get_run_by_id(slow["run_id"]).status == dg.DagsterRunStatus.STARTED,
                     timeout=120, interval=1, what="the slow run to start")
            [canceled] = _cli(full_env, "cancel", slow["run_id"])
            assert canceled == {"run_id": slow["run_id"], "canceled": True}
            [run] = finished([slow["run_id"]], timeout=120)
            assert run.status == dg.DagsterRunStatus.CANCELED
            listed = _cli(full_env, "failed-hospitals", "--kind", "canceled", "--json")
            assert {d["hospital_key"] for d in listed} == {"slow-1"} and "mrf_files" in {d["asset"] for d in listed}
        finally:
            instance.dispose()


def _webserver_up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
