"""The ops domain in-process: retry/classification on real assets, the failed-hospitals view,
alert sensors delivering to local receivers, and the ops_report asset."""


import json
import time

import dagster as dg
import pytest

from price_pipeline.defs.ingestion import assets as ingestion_assets
from price_pipeline.defs.ops.assets import OPS_REPORT_KEY, ops_report
from price_pipeline.defs.ops.failed import failed_hospitals, failed_items
from price_pipeline.defs.ops.retries import DOWNLOAD_RETRY, FAILURE_KIND, LAKE_RETRY, classified
from price_pipeline.defs.ops.sensors import alert_on_failures, alert_on_thresholds
from price_pipeline.lib.lake.storage import open_lake
from price_pipeline.lib.ops.classify import TransientError
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


@pytest.mark.parametrize("fmt", ["json", "slack", "teams"])
def test_one_grouped_alert_per_wave_in_every_webhook_format(failures, monkeypatch, fmt):
    """The wave of two failed runs and a failed check is one alert (it was one per run and one per
    check), delivered to a local receiver as our JSON, a Slack message or a Teams Adaptive Card."""
    instance, _, html = failures
    with WebhookReceiver() as hook, SmtpReceiver() as smtp:
        monkeypatch.setenv("PRICE_PIPELINE_ALERT_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("PRICE_PIPELINE_ALERT_WEBHOOK_FORMAT", fmt)
        monkeypatch.setenv("PRICE_PIPELINE_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("PRICE_PIPELINE_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("PRICE_PIPELINE_ALERT_EMAIL_TO", "oncall@example.org")
        # the first tick only sets its cursor (no alert on history); from 0 it sees the whole wave
        first = dg.build_sensor_context(instance=instance)
        alert_on_failures(first)
        assert first.cursor is not None and hook.received == []
        context = dg.build_sensor_context(instance=instance, cursor='{"ts": 0}')
        alert_on_failures(context)
        [body] = [h["json"] for h in hook.wait_for(1)]
        assert len(smtp.wait_for(1)) == 1
        # the next tick has nothing new: no second alert
        alert_on_failures(dg.build_sensor_context(instance=instance, cursor=context.cursor))
        assert len(hook.received) == 1
    if fmt == "json":
        assert body["kind"] == "failures" and body["details"]["failed_runs"] == 2
        assert body["title"].startswith("2 failed runs (1 internal, 1 external)")
        items = body["details"]["items"]
        runs = {i["hospital_key"]: i for i in items if i["type"] == "run_failure"}
        assert runs["not-in-catalog"]["failure_kind"] == "internal" and runs[html]["failure_kind"] == "external"
        assert {i["check_name"] for i in items if i["type"] == "check_failure"} >= {"mrf_files_has_a_price_file"}
    elif fmt == "slack":
        assert body["text"].startswith("[error] 2 failed runs")
        assert body["blocks"][0]["type"] == "header" and "not-in-catalog" in json.dumps(body["blocks"])
    else:
        [attachment] = body["attachments"]
        assert body["type"] == "message" and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["body"][0]["text"].startswith("2 failed runs")
        assert "not-in-catalog" in json.dumps(card)


def test_threshold_alert_once_per_breach(failures, monkeypatch):
    """Two failed runs out of four: the internal failure rate (25 %) is above 1 %: one alert, not
    repeated while the breach lasts; a stale mart (the freshness daemon's FAIL) is one more."""
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    instance, _, _ = failures
    with WebhookReceiver() as hook:
        monkeypatch.setenv("PRICE_PIPELINE_ALERT_WEBHOOK_URL", hook.url)
        first = dg.build_sensor_context(instance=instance)
        alert_on_thresholds(first)
        [body] = [h["json"] for h in hook.wait_for(1)]
        ids = {i["id"] for i in body["details"]["items"]}
        assert "internal_failure_rate:ingest_hospital" not in ids  # materialize() runs are __ephemeral jobs
        assert any(i.startswith("internal_failure_rate:") for i in ids)
        again = dg.build_sensor_context(instance=instance, cursor=first.cursor)
        alert_on_thresholds(again)
        assert len(hook.received) == 1  # still breached: not alerted again
        # a mart built once, then found stale by the freshness daemon (the event it records)
        instance.report_runless_asset_event(dg.AssetMaterialization("mart_hospital_prices"))
        instance._report_runless_asset_event(FreshnessStateChange(
            key=dg.AssetKey("mart_hospital_prices"), previous_state=FreshnessState.PASS,
            new_state=FreshnessState.FAIL, state_change_timestamp=time.time()))
        alert_on_thresholds(dg.build_sensor_context(instance=instance, cursor=again.cursor))
        [_, stale] = [h["json"] for h in hook.wait_for(2)]
    assert [i["id"] for i in stale["details"]["items"]] == ["stale:mart_hospital_prices"]


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
    # the seed's metrics: failures split by kind per job (cancels apart), times, coverage
    [job] = [j for j in report["jobs_24h"] if j.startswith("__ephemeral")]
    metrics = report["jobs_24h"][job]
    assert (metrics["failed_internal"], metrics["failed_external"], metrics["canceled"]) == (1, 1, 0)
    assert metrics["internal_failure_rate"] == metrics["external_failure_rate"] > 0
    assert metrics["mean_seconds"] > 0 and metrics["p95_seconds"] >= metrics["p50_seconds"]
    assert report["coverage"]["failed"] == 2 and report["coverage"]["ingested"] >= 1
    assert sum(report["coverage"][k] for k in ("ingested", "failed", "never_tried", "in_progress_or_pending")) \
        == report["coverage"]["listed"]
    metadata = result.asset_materializations_for_node("ops_report")[0].metadata
    assert "report" in metadata and metadata["backlog_failed_hospitals"].value == 2
    assert metadata[f"{job}/internal_failure_rate_24h"].value == metrics["internal_failure_rate"]
    assert metadata["coverage_failed"].value == 2 and "hospitals_per_hour_24h" in metadata


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
