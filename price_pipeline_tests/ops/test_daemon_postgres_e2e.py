"""End to end with the real daemon on PostgreSQL (the production dagster.yaml, step logs on
moto's S3): the catalog sensor queues one run per hospital and the daemon completes them; the
CLI then shows the failed hospital, launches two runs of one hospital that the queue serialises,
cancels a queued run and retries the failed hospitals in bulk."""

import json
import os
import subprocess
import sys
import uuid

import boto3
import dagster as dg
import pytest

from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline_tests.conftest import host_port
from price_pipeline_tests.integration.dagster_process import dagster_dev, tail, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

CLI = [sys.executable, "-m", "price_pipeline.cli"]


def _cli(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_sensor_queue_daemon_and_cli_on_postgres(tmp_path, monkeypatch, postgres_database, moto_s3):
    bucket = f"logs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket=bucket)
    home = tmp_path / "home"
    with DemoCatalogServer(host="127.0.0.1", port=0) as server:
        demo = server.hospitals()
        server.set_hospitals(demo[:3] + [h for h in demo if h["demo"]["expect"] != "ok"])  # 3 ok + 1 broken
        env = {
            "DAGSTER_PG_URL": postgres_database,
            "PRICE_PIPELINE_COMPUTE_LOG_BUCKET": bucket,
            "PRICE_PIPELINE_S3_ENDPOINT_URL": moto_s3,
            "PRICE_PIPELINE_DATA_DIR": str(tmp_path / "data"),
            "PRICE_PIPELINE_LAKE_URL": str(tmp_path / "data" / "lake"),
            "PRICE_PIPELINE_CATALOG_URL": server.catalog_url,
            "PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS": host_port(server.catalog_url),
            "PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL": "5",
            # one run per hospital: this test follows each hospital's own run through the queue,
            # the dead-letter view and the CLI (batched range runs: defs/test_batched_runs.py)
            "PRICE_PIPELINE_INGEST_BATCH_SIZE": "1",
        }
        for name, value in env.items():  # this process reads the same instance
            monkeypatch.setenv(name, value)
        full_env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        with dagster_dev(home, env, production=True) as (_, port):
            url = f"http://127.0.0.1:{port}"
            instance = dg.DagsterInstance.from_config(str(home))
            try:
                assert type(instance.run_storage).__name__ == "PostgresRunStorage"

                def all_hospital_runs_finished():
                    runs = instance.get_runs(dg.RunsFilter(job_name="ingest_hospital"))
                    return len(runs) >= 4 and all(r.is_finished for r in runs) and runs

                try:
                    runs = wait_for(all_hospital_runs_finished, timeout=240, what="sensor-queued runs to finish")
                except TimeoutError:
                    pytest.fail(f"runs did not finish; log:\n{tail(home / 'dagster_dev.log')}")
                statuses = sorted(r.status.value for r in runs)
                assert statuses == ["FAILURE", "SUCCESS", "SUCCESS", "SUCCESS"], statuses
                assert all(r.tags.get("price_pipeline/trigger") == "catalog_sensor" for r in runs)

                failed = _cli(full_env, "failed-hospitals", "--json")
                assert failed.returncode == 0, failed.stderr
                [dead] = _json_lines(failed.stdout)
                assert dead["failure_kind"] == "external" and dead["check"] == "mrf_files_has_a_price_file"
                assert dead["asset"] == "mrf_files" and dead["attempts"] == 1

                listed = _cli(full_env, "runs", "--status", "SUCCESS", "--job", "ingest_hospital", "--json")
                assert len(_json_lines(listed.stdout)) == 3

                # two runs of the same hospital: the queue serialises them
                ok_key = next(r.tags["dagster/partition"] for r in runs if r.status.value == "SUCCESS")
                launched = _cli(full_env, "launch", "-H", ok_key, "--url", url)
                launched2 = _cli(full_env, "launch", "-H", ok_key, "--url", url, "--priority", "5")
                assert launched.returncode == 0 and launched2.returncode == 0, launched.stderr + launched2.stderr
                pair = [_json_lines(launched.stdout)[0]["run_id"], _json_lines(launched2.stdout)[0]["run_id"]]
                waited = _cli(full_env, "wait", *pair, "--timeout", "180", timeout=200)
                assert waited.returncode == 0, waited.stdout + waited.stderr
                a, b = (instance.get_run_record_by_id(r) for r in pair)
                first, second = sorted((a, b), key=lambda r: r.start_time)
                assert first.end_time <= second.start_time, "two runs of one hospital overlapped"

                # retry the dead-letter queue in bulk; it fails again (the file is still bad)
                retried = _cli(full_env, "retry-failed", "--url", url)
                assert retried.returncode == 0, retried.stderr
                [retry] = _json_lines(retried.stdout)[0]["retried"]
                # the failed asset (its check failed) and everything downstream of it
                assert retry["assets"] == ["conformance_reports", "mrf_files", "mrf_parsed", "price_changes", "prices"]
                [launched_retry] = retry["runs"]
                rerun = instance.get_run_by_id(launched_retry["run_id"])
                assert rerun.tags["price_pipeline/bulk"] == "true" and rerun.tags["price_pipeline/trigger"] == "retry-failed"
                assert rerun.tags["price_pipeline/host"] == "127.0.0.1"
                assert rerun.tags["dagster/partition"] == rerun.tags["price_pipeline/hospital"] == dead["hospital_key"]
            finally:
                instance.dispose()
