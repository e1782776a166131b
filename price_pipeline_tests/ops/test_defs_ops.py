"""The ops domain in-process: retry/classification on real assets, the failed-hospitals view,
alert sensors delivering to local receivers, and the ops_report asset."""


import json

import dagster as dg
import pytest

from price_pipeline.defs.ingestion import assets as ingestion_assets
from price_pipeline.defs.ops.assets import OPS_REPORT_KEY, ops_report
from price_pipeline.defs.ops.failed import failed_hospitals, failed_items
from price_pipeline.defs.ops.retries import DOWNLOAD_RETRY, FAILURE_KIND, LAKE_RETRY, classified
from price_pipeline.defs.ops.sensors import alert_on_check_failure, alert_on_run_failure
from price_pipeline.lib.ops.classify import TransientError
from price_pipeline.lib.storage import open_lake
from price_pipeline.settings import Settings
from price_pipeline_tests.conftest import host_port
from price_pipeline_tests.defs.helpers import (
    demo_keys,
    materialize_catalog,
    materialize_hospital,
    resources_for,
)
from price_pipeline_tests.ops.receivers import SmtpReceiver, WebhookReceiver


def test_every_ingestion_asset_retries_with_backoff_and_jitter():
    for asset, policy in (("mrf_files", DOWNLOAD_RETRY), ("mrf_parsed", LAKE_RETRY), ("prices", LAKE_RETRY)):
        node = getattr(ingestion_assets, asset).op
        assert node.retry_policy == policy
        assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
        assert policy.max_retries >= 2


def _attempts_asset(exc_factory):
    calls = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=3, delay=0.05, backoff=dg.Backoff.EXPONENTIAL,
                                          jitter=dg.Jitter.PLUS_MINUS))
    @classified
    def flaky(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        calls.append(context.retry_number)
        exc = exc_factory(len(calls))
        if exc is not None:
            raise exc
        return dg.MaterializeResult(metadata={"dagster/row_count": 100, "bytes": 2000})

    return flaky, calls


def test_transient_errors_retry_and_permanent_errors_do_not():
    flaky, calls = _attempts_asset(lambda n: TransientError("HTTP 503 upstream busy") if n < 3 else None)
    result = dg.materialize([flaky])
    assert result.success and calls == [0, 1, 2]
    metadata = result.asset_materializations_for_node("flaky")[0].metadata
    assert {"duration_seconds", "rows_per_second", "bytes_per_second"} <= set(metadata)

    bad, calls = _attempts_asset(lambda n: ValueError("not a CMS price file"))
    result = dg.materialize([bad], raise_on_error=False)
    assert not result.success and calls == [0]  # permanent: no retry
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    user = failure.step_failure_data.user_failure_data
    assert user.metadata[FAILURE_KIND].value == "permanent"


@pytest.fixture(scope="module")
def settings(tmp_path_factory, demo_server) -> Settings:
    """One data dir for the module: the failure fixture below is built once."""
    data_dir = tmp_path_factory.mktemp("ops") / "data"
    return Settings(
        data_dir=data_dir,
        lake_url=str(data_dir / "lake"),
        registry_url=f"sqlite:///{data_dir / 'registry.sqlite'}",
        warehouse_path=data_dir / "warehouse.duckdb",
        catalog_url=demo_server.catalog_url,
        allowed_private_hosts=(host_port(demo_server.catalog_url),),
        http_timeout_seconds=10,
    )


@pytest.fixture(scope="module")
def failures(settings, tmp_path_factory):
    """An instance where West Mercy succeeded, Sunny Prairie (an HTML page instead of data) failed
    its blocking check, and a hospital missing from the catalog failed permanently."""
    tmp_path = tmp_path_factory.mktemp("ops_home")
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        assert materialize_catalog(instance, settings).success
        keys = demo_keys(settings)
        ok, html = keys["West Mercy Hospital"], keys["Sunny Prairie Hospital"]
        assert materialize_hospital(instance, settings, ok).success
        assert not materialize_hospital(instance, settings, html).success
        assert not materialize_hospital(instance, settings, "not-in-catalog").success
        yield instance, ok, html


def test_alert_sensors_deliver_run_and_check_failures(failures, monkeypatch):
    instance, _, html = failures
    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        monkeypatch.setenv("PRICE_PIPELINE_ALERT_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("PRICE_PIPELINE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("PRICE_PIPELINE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("PRICE_PIPELINE_ALERT_EMAIL_TO", "oncall@example.org")

        failed_run = next(
            r for r in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            if r.tags.get("dagster/partition") == "not-in-catalog"
        )
        failure_event = instance.all_logs(failed_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
        context = dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure", dagster_event=failure_event.dagster_event,
            dagster_instance=instance, dagster_run=failed_run,
        ).for_run_failure()
        alert_on_run_failure(context)
        [hooked] = hook.wait_for(1)
        assert hooked["json"]["kind"] == "run_failure" and hooked["json"]["hospital_key"] == "not-in-catalog"
        assert hooked["json"]["failure_kind"] == "internal"
        assert len(smtp.wait_for(1)) == 1

        # the check sensor: the first tick only sets its cursor; from 0 it sees the history
        first = dg.build_sensor_context(instance=instance)
        alert_on_check_failure(first)
        assert first.cursor is not None and len(hook.received) == 1
        alert_on_check_failure(dg.build_sensor_context(instance=instance, cursor='{"ts": 0}'))
        check_alerts = [h["json"] for h in hook.received if h["json"]["kind"] == "check_failure"]
    assert {a["check_name"] for a in check_alerts} >= {"mrf_files_has_a_price_file"}
    assert all(a["hospital_key"] == html for a in check_alerts if a["check_name"] == "mrf_files_has_a_price_file")
    assert len(smtp.messages) == 1 + len(check_alerts)


def test_ops_report_summarises_runs(failures, settings):
    instance, ok, _ = failures
    result = dg.materialize([ops_report], instance=instance, resources=resources_for(settings))
    assert result.success
    report = json.loads(open_lake(settings.lake_url).get_bytes(OPS_REPORT_KEY))
    [today] = report["days"]
    assert today["runs"] >= 4 and today["failed"] == 2 and today["succeeded"] >= 2
    assert today["p50_duration_seconds"] is not None and today["rows_per_second"] > 0
    assert report["backlog"]["failed_hospitals"] == 2
    assert ok in {h["hospital_key"] for h in report["slowest_hospitals"]}
    metadata = result.asset_materializations_for_node("ops_report")[0].metadata
    assert "report" in metadata and metadata["backlog_failed_hospitals"].value == 2


def test_failed_hospitals_view_lists_latest_failures_with_reasons(failures, settings):
    instance, ok, html = failures
    found = {f.hospital_key: f for f in failed_items(instance)}
    assert set(found) == {html, "not-in-catalog"} == set(failed_hospitals(instance))
    # our catalog state: internal; a hospital serving an HTML page: external, listed as the check
    assert found["not-in-catalog"].failure_kind == "internal" and not found["not-in-catalog"].transient
    assert "no catalog entry" in found["not-in-catalog"].reason
    assert (found["not-in-catalog"].asset, found["not-in-catalog"].check) == ("mrf_files", None)
    assert (found[html].asset, found[html].check) == ("mrf_files", "mrf_files_has_a_price_file")
    assert found[html].failure_kind == "external" and found[html].attempts == 1
    assert [f.hospital_key for f in failed_items(instance, kind="canceled")] == []
    # a successful rerun takes a hospital off the list (runs last in this module: it changes the state)
    instance.delete_dynamic_partition("hospitals", "not-in-catalog")
    assert "not-in-catalog" not in failed_hospitals(instance)
