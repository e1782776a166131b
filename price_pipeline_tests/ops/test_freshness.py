"""The freshness policies are evaluated, not just declared: Dagster's own freshness daemon, run
against both code locations loaded as the webserver/daemon load them, records PASS → WARN → FAIL
for the catalog and a mart as their last materialization ages past the policies' windows, and
UNKNOWN for an asset with a policy that was never materialized."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time, instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from price_pipeline.defs.ops.freshness import CATALOG_FRESHNESS, MARTS_FRESHNESS
from price_pipeline.settings import PROJECT_ROOT

CATALOG = dg.AssetKey("hospital_catalog")
HOSPITALS = dg.AssetKey("hospitals")
MART = dg.AssetKey("mart_price_distribution")
PRICES = dg.AssetKey("prices")


def _locations():
    return InProcessWorkspaceLoadTarget([
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                module_name="price_pipeline.definitions", attribute=name, working_directory=str(PROJECT_ROOT)
            ),
            location_name=name,
        )
        for name in ("ingestion", "analytics")
    ])


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    with instance_for_test() as inst:
        yield inst


def test_freshness_daemon_records_pass_warn_fail_for_catalog_and_marts(instance):
    assert instance.freshness_enabled  # on by default; deploy/production/dagster.yaml says so explicitly
    with create_test_daemon_workspace_context(_locations(), instance) as workspace:
        request = workspace.create_request_context()
        for entry in request.get_code_location_entries().values():
            assert entry.code_location is not None, entry.load_error
        graph = request.asset_graph
        assert graph.get(CATALOG).freshness_policy == CATALOG_FRESHNESS
        assert graph.get(MART).freshness_policy == MARTS_FRESHNESS
        assert graph.get(PRICES).freshness_policy is None

        for key in (CATALOG, MART):
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        materialized_at = dt.datetime.fromtimestamp(
            instance.get_latest_materialization_event(CATALOG).timestamp, dt.UTC
        )
        daemon = FreshnessDaemon()

        def states_after(elapsed: dt.timedelta) -> dict:
            with freeze_time(materialized_at + elapsed):
                list(daemon.run_iteration(workspace))
            records = instance.get_freshness_state_records([CATALOG, HOSPITALS, MART, PRICES])
            return {key.path[-1]: record.freshness_state for key, record in records.items()}

        fresh = states_after(dt.timedelta(minutes=5))
        assert fresh == {
            "hospital_catalog": FreshnessState.PASS,
            "hospitals": FreshnessState.UNKNOWN,  # has a policy, never materialized
            "mart_price_distribution": FreshnessState.PASS,
            "prices": FreshnessState.NOT_APPLICABLE,  # no policy
        }
        # catalog: warn after 12 h, fail after 24 h; marts: warn after 2 days, fail after 8 days
        after_13h = states_after(dt.timedelta(hours=13))
        assert after_13h["hospital_catalog"] == FreshnessState.WARN
        assert after_13h["mart_price_distribution"] == FreshnessState.PASS
        after_3d = states_after(dt.timedelta(days=3))
        assert after_3d["hospital_catalog"] == FreshnessState.FAIL
        assert after_3d["mart_price_distribution"] == FreshnessState.WARN
        assert states_after(dt.timedelta(days=9))["mart_price_distribution"] == FreshnessState.FAIL

        # a new materialization makes the catalog fresh again at the next evaluation
        instance.report_runless_asset_event(dg.AssetMaterialization(CATALOG))
        list(daemon.run_iteration(workspace))
        record = instance.get_freshness_state_records([CATALOG])[CATALOG]
        assert record.freshness_state == FreshnessState.PASS
