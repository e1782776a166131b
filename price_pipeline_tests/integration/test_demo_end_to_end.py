"""End to end: `dagster dev` as a real subprocess discovers the demo hospitals through the
catalog sensor, ingests them (batched runs over ranges of hospitals, a failed batch split into
smaller runs by its sensor), builds the dbt marts and the exports, all by itself, on a temporary
DAGSTER_HOME."""

from __future__ import annotations

import json
import time

import dagster as dg
import duckdb
import pytest

from price_pipeline.demo.server import DATA_DIR
from price_pipeline.lib.ops.tags import RANGE_START_TAG
from price_pipeline_tests.conftest import host_port
from price_pipeline_tests.integration.dagster_process import (
    dagster_dev,
    latest_run_per_hospital,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEMO_DEADLINE_SECONDS = 300  # the demo must be fully built within 5 minutes on 2 cores


def test_demo_runs_itself_from_discovery_to_marts(tmp_path, demo_server):
    home = tmp_path / "dagster_home"
    data = tmp_path / "data"
    expected = json.loads((DATA_DIR / "catalog.json").read_text())["hospitals"]
    n_ok = sum(1 for h in expected if h.get("demo", {}).get("expect", "ok") == "ok")
    env = {
        "PRICE_PIPELINE_DATA_DIR": str(data),
        "PRICE_PIPELINE_CATALOG_URL": demo_server.catalog_url,
        "PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS": host_port(demo_server.catalog_url),
        "PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL": "5",
    }
    started = time.monotonic()
    with dagster_dev(home, env):
        print(f"dagster dev started after {time.monotonic() - started:.1f}s", flush=True)
        instance = None

        def exports_after_all_ingestion():
            nonlocal instance
            try:
                if instance is None:
                    instance = dg.DagsterInstance.from_config(str(home))
                records = instance.get_run_records(dg.RunsFilter(job_name="ingest_hospital"))
                latest = latest_run_per_hospital(instance, records)
                if len(latest) < len(expected) or any(not r.dagster_run.is_finished for r in records):
                    return False
                # a failed batch is split into smaller runs by split_failed_batches: wait for them
                if any(r.dagster_run.tags.get(RANGE_START_TAG) and r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
                       for r in latest.values()):
                    return False
                last_end = max(r.end_time or 0 for r in records)
                event = instance.get_latest_materialization_event(dg.AssetKey("exports"))
                if event is None:
                    return False
                # the build that wrote the exports must have started after the last ingestion
                # ended (one that started earlier read a lake without the later hospitals)
                build = instance.get_run_record_by_id(event.run_id)
                return latest if build is not None and (build.start_time or 0) > last_end else False
            except Exception:  # the instance may still be initialising its storage
                return False

        try:
            records = wait_for(exports_after_all_ingestion, timeout=DEMO_DEADLINE_SECONDS, what="demo to finish")
        except TimeoutError:
            pytest.fail(f"demo did not finish in time; dagster dev log:\n{tail(home / 'dagster_dev.log')}")
        elapsed = time.monotonic() - started
        statuses = {key: r.dagster_run.status for key, r in records.items()}
        assert list(statuses.values()).count(dg.DagsterRunStatus.SUCCESS) == n_ok, statuses
        assert len(statuses) == len(expected)
        instance.dispose()

    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        summary = con.execute("SELECT count(*) FROM mart_hospital_summary WHERE has_prices").fetchone()[0]
        distribution = con.execute(
            "SELECT count(*), count(DISTINCT primary_code) FROM mart_price_distribution"
        ).fetchone()
    finally:
        con.close()
    assert summary == n_ok
    assert distribution[0] > 0 and distribution[1] > 10
    assert (data / "lake" / "exports" / "mart_price_distribution.csv").exists()
    print(f"demo finished in {elapsed:.0f}s")
