"""Pure ops logic: failure classification, alert delivery to local receivers, run tags, report."""

from __future__ import annotations

import errno
import json
import logging
import socket

import httpx
import pytest

from price_pipeline.lib.ops import report as r
from price_pipeline.lib.ops.alerts import Alert, AlertConfig, deliver, redact_url, send_webhook
from price_pipeline.lib.ops.classify import (
    PERMANENT,
    TRANSIENT,
    PermanentError,
    TransientError,
    classify_exception,
    classify_message,
    classify_origin,
    origin_from_message,
)
from price_pipeline.lib.ops.tags import (
    BULK_TAG,
    HOSPITAL_TAG,
    HOST_TAG,
    LAYER_TAG,
    PRIORITY_HIGH,
    PRIORITY_RESCAN,
    PRIORITY_TAG,
    TRIGGER_TAG,
    bulk_run_tags,
    hospital_host,
    hospital_run_tags,
)
from price_pipeline_tests.ops.receivers import SmtpReceiver, WebhookReceiver


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://h.example/f.csv")
    return httpx.HTTPStatusError("bad", request=request, response=httpx.Response(status, request=request))


class _OperationalError(Exception):
    pass


_OperationalError.__name__ = "OperationalError"


class _ClientError(Exception):
    def __init__(self, code: str, status: int):
        super().__init__(f"An error occurred ({code})")
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("connection refused"), TRANSIENT),
        (httpx.ReadTimeout("read timed out"), TRANSIENT),
        (_http_error(503), TRANSIENT),
        (_http_error(429), TRANSIENT),
        (_http_error(404), PERMANENT),
        (_http_error(403), PERMANENT),
        (TimeoutError("timed out"), TRANSIENT),
        (ConnectionResetError(errno.ECONNRESET, "reset"), TRANSIENT),
        (OSError(errno.ENOSPC, "No space left on device"), TRANSIENT),
        (_OperationalError("server closed the connection unexpectedly"), TRANSIENT),
        (_OperationalError("database is locked"), TRANSIENT),
        (_OperationalError("no such table: x"), PERMANENT),
        (RuntimeError("IO Error: Could not set lock on file warehouse.duckdb"), TRANSIENT),
        (_ClientError("SlowDown", 503), TRANSIENT),
        (_ClientError("NoSuchBucket", 404), PERMANENT),
        (ValueError("not a CMS price file: missing header row"), PERMANENT),
        (KeyError("hospital_name"), PERMANENT),
        (PermanentError("bad file"), PERMANENT),
        (TransientError("upstream busy"), TRANSIENT),
    ],
)
def test_classification(exc, kind):
    assert classify_exception(exc).kind == kind


def test_classification_follows_the_cause_chain():
    try:
        try:
            raise httpx.ConnectError("connection reset by peer")
        except httpx.ConnectError as inner:
            raise RuntimeError("download of https://h/f.csv failed") from inner
    except RuntimeError as outer:
        assert classify_exception(outer).kind == TRANSIENT
    assert classify_message("botocore: Read timed out") == TRANSIENT
    assert classify_message("ValueError: bad column") == PERMANENT


def test_run_tags_priority_and_one_host_rule():
    env = {"PRICE_PIPELINE_PRIORITY_HOSPITALS": "ccn-1, ccn-2"}
    # the first file is on another host: the most common host wins (the sensor used the first file's)
    urls = ["https://x.example/c", "https://FILES.vendor.example/a.csv", "https://files.vendor.example/b.json"]
    tags = hospital_run_tags("ccn-1", urls, trigger="catalog_sensor", env=env)
    assert tags == {HOSPITAL_TAG: "ccn-1", PRIORITY_TAG: str(PRIORITY_HIGH), HOST_TAG: "files.vendor.example",
                    LAYER_TAG: "ingestion", TRIGGER_TAG: "catalog_sensor"}
    assert PRIORITY_TAG not in hospital_run_tags("ccn-3", trigger="cli", env=env)
    assert hospital_run_tags("ccn-3", trigger="cli", priority=-5, env=env)[PRIORITY_TAG] == "-5"
    assert hospital_host([]) == "none" and hospital_host(["not a url", "http://[bad"]) == "none"
    assert hospital_host(["https://a.example/1", "https://b.example/2"]) == "a.example"  # tie: first listed
    assert len(hospital_host([f"https://{'a' * 80}.example/f"])) == 63
    bulk = bulk_run_tags("h.example", trigger="weekly_full_rescan", priority=PRIORITY_RESCAN)
    assert bulk == {HOST_TAG: "h.example", LAYER_TAG: "ingestion", TRIGGER_TAG: "weekly_full_rescan",
                    BULK_TAG: "true", PRIORITY_TAG: str(PRIORITY_RESCAN)}


def test_failure_origin_internal_or_external():
    request = httpx.Request("GET", "https://h.example/f.csv")
    assert classify_origin(_http_error(503)) == "external"
    assert classify_origin(httpx.ConnectError("refused", request=request)) == "external"
    try:
        try:
            raise httpx.ReadTimeout("slow", request=request)
        except httpx.ReadTimeout as inner:
            raise RuntimeError("download failed") from inner
    except RuntimeError as outer:
        assert classify_origin(outer) == "external"
    assert classify_origin(ValueError("bug")) == "internal"
    assert classify_origin(_OperationalError("database is locked")) == "internal"
    assert classify_origin(PermanentError("no catalog entry")) == "internal"
    from price_pipeline.lib.ops.classify import ExternalError

    assert classify_origin(ExternalError("not a price file")) == "external"
    assert origin_from_message("every file of h failed transiently: HTTP 503") == "external"
    assert origin_from_message("KeyError: 'x'") == "internal" and origin_from_message(None) == "internal"


def test_report_computations():
    day = 1_700_000_000.0  # 2023-11-14 UTC
    runs = [
        r.RunSample("a", "ingest_hospital", "SUCCESS", day, "h1", day, day + 10),
        r.RunSample("b", "ingest_hospital", "SUCCESS", day + 1, "h2", day + 1, day + 31),
        r.RunSample("c", "ingest_hospital", "FAILURE", day + 2, "h3", day + 2, day + 5),
        r.RunSample("d", "ingest_hospital", "QUEUED", day + 3, "h4"),
        r.RunSample("e", "ingest_hospital", "SUCCESS", day - 86400, "h1", day - 86400, day - 86400 + 50),
    ]
    mats = [r.MaterializationSample("prices", day + 10, "h1", 2.0, 1000, 4000),
            r.MaterializationSample("prices", day + 31, "h2", 3.0, 500, 1000)]
    report = r.build_report(runs, mats, partitions=["h1", "h2", "h3", "h4", "h5"], materialized=["h1", "h2"],
                            failed_hospitals=["h3"], tried=["h1", "h2", "h3", "h4"], now=day + 3600)
    today, yesterday = report["days"]
    assert today["day"] == "2023-11-14" and yesterday["day"] == "2023-11-13"
    assert (today["runs"], today["succeeded"], today["failed"]) == (4, 2, 1)
    assert today["success_rate"] == pytest.approx(0.667, abs=1e-3)
    assert today["p50_duration_seconds"] == 20.0 and today["p95_duration_seconds"] == 29.0
    assert today["rows_per_second"] == 300.0 and today["bytes_per_second"] == 1000.0
    assert report["backlog"] == {"queued_runs": 1, "in_progress_runs": 0, "hospitals_never_ingested": 3,
                                 "failed_hospitals": 1}
    assert [h["hospital_key"] for h in report["slowest_hospitals"]] == ["h2", "h1"]
    assert report["slowest_hospitals"][1]["duration_seconds"] == 10.0  # latest run of h1, not the older one
    assert "2023-11-14" in r.markdown(report)
    assert report["coverage"] == {"listed": 5, "ingested": 2, "failed": 1, "never_tried": 1,
                                  "in_progress_or_pending": 1}
    assert report["throughput"] == {"hospitals_per_hour_24h": round(2 / 24, 2), "hospitals_per_hour_last_hour": 2.0}


def test_seed_metrics_per_job_and_thresholds():
    t = 1_700_000_000.0
    runs = [
        # ingestion: 8 ok (10..80 s), 1 internal and 1 external failure, 2 cancels (never failures)
        *[r.RunSample(f"ok{i}", "ingest_hospital", "SUCCESS", t, f"h{i}", t + 5, t + 5 + 10 * (i + 1))
          for i in range(8)],
        r.RunSample("f1", "ingest_hospital", "FAILURE", t, "x1", t + 1, t + 2, failure_kind="internal"),
        r.RunSample("f2", "__ASSET_JOB", "FAILURE", t, "x2", t + 1, t + 2, failure_kind="external",
                    layer="ingestion"),  # a backfill run counts as the ingestion job
        r.RunSample("c1", "ingest_hospital", "CANCELED", t, "x3"),
        r.RunSample("c2", "ingest_hospital", "CANCELED", t, "x4", t + 1, t + 2),
        r.RunSample("a1", "build_analytics", "SUCCESS", t, None, t + 60, t + 90),
    ]
    metrics = r.job_metrics(runs)
    m = metrics["ingest_hospital"]
    assert (m["succeeded"], m["failed_internal"], m["failed_external"], m["canceled"]) == (8, 1, 1, 2)
    assert m["internal_failure_rate"] == m["external_failure_rate"] == 0.1  # over 10 runs that ended
    assert m["cancel_rate"] == round(2 / 12, 4)
    assert m["mean_seconds"] == 45.0 and m["p50_seconds"] == 45.0 and m["p95_seconds"] == 76.5
    assert m["queue_wait_mean_seconds"] == round((8 * 5 + 3) / 11, 3)
    assert metrics["build_analytics"]["queue_wait_mean_seconds"] == 60.0
    found = r.breaches(metrics, ["mart_a"], r.Thresholds())
    assert [b["id"] for b in found] == ["internal_failure_rate:ingest_hospital", "mean_ingestion_seconds",
                                        "stale:mart_a"]
    assert r.breaches(metrics, [], r.Thresholds(max_internal_failure_rate=0.2, max_mean_ingestion_seconds=60)) == []


def test_webhook_formats_delivered_to_a_local_receiver():
    from price_pipeline.lib.ops.alerts import grouped_alert

    alert = grouped_alert("thresholds", "2 thresholds breached",
                          [{"id": "a", "line": "ingest_hospital: internal failure rate 5%"},
                           {"id": "b", "line": "mart_x: stale"}], url="https://dagster.example/assets/ops_report")
    with WebhookReceiver() as hook:
        for fmt in ("json", "slack", "teams"):
            assert send_webhook(alert, hook.url, fmt=fmt).ok
        plain, slack, teams = (h["json"] for h in hook.wait_for(3))
    assert plain["details"]["count"] == 2 and plain["title"] == "2 thresholds breached"
    assert slack["text"].startswith("[error] 2 thresholds breached")
    assert "• mart_x: stale" in json.dumps(slack["blocks"], ensure_ascii=False) and slack["blocks"][-1]["type"] == "actions"
    card = teams["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["actions"][0]["url"].endswith("/assets/ops_report")
    assert [b["text"] for b in card["body"] if b["type"] == "TextBlock"][-1] == "• mart_x: stale"
    with pytest.raises(ValueError, match="WEBHOOK_FORMAT"):
        AlertConfig.from_env({"PRICE_PIPELINE_ALERT_WEBHOOK_FORMAT": "xml"})
    assert r.percentile([], 50) is None and r.percentile([5], 95) == 5.0


def _alert() -> Alert:
    return Alert(kind="run_failure", title="run of ingest_hospital for hospital ccn-1 failed (permanent)",
                 summary="not a price file", hospital_key="ccn-1", run_id="abc", failure_kind="permanent",
                 details={"step": "mrf_parsed"})


def test_webhook_delivery_to_a_local_receiver():
    with WebhookReceiver() as hook:
        [result] = deliver(_alert(), AlertConfig(webhook_url=hook.url))
        assert result.ok
        [got] = hook.received
    assert got["content_type"] == "application/json"
    payload = got["json"]
    assert payload["source"] == "price_pipeline" and payload["kind"] == "run_failure"
    assert payload["hospital_key"] == "ccn-1" and payload["failure_kind"] == "permanent"
    assert payload["details"] == {"step": "mrf_parsed"}


def test_webhook_failure_is_reported_without_the_secret(caplog):
    with WebhookReceiver() as hook:
        hook.status = 500
        result = send_webhook(_alert(), hook.url, attempts=2)
        assert len(hook.received) == 2  # retried once
    assert not result.ok and "HTTP 500" in result.detail
    assert "secret-token" not in result.detail
    assert redact_url("https://u:pw@hooks.example:8443/T0/secret?token=x") == "https://hooks.example:8443/…"


def test_email_delivery_to_a_local_smtp_receiver(caplog):
    caplog.set_level(logging.DEBUG)
    env = {
        "PRICE_PIPELINE_SMTP_HOST": "127.0.0.1",
        "PRICE_PIPELINE_SMTP_USER": "alerts",
        "PRICE_PIPELINE_SMTP_PASSWORD": "hunter2-do-not-log",
        "PRICE_PIPELINE_ALERT_EMAIL_FROM": "pipeline@example.org",
        "PRICE_PIPELINE_ALERT_EMAIL_TO": "oncall@example.org, data@example.org",
    }
    with SmtpReceiver() as smtp:
        config = AlertConfig.from_env({**env, "PRICE_PIPELINE_SMTP_PORT": str(smtp.port)})
        assert "hunter2" not in repr(config) and "hunter2" not in json.dumps(config.describe())
        [result] = deliver(_alert(), config)
        assert result.ok, result.detail
        [message] = smtp.messages
        assert smtp.envelopes[0]["to"] == ["oncall@example.org", "data@example.org"]
        assert smtp.auth  # logged in
    assert message["Subject"].strip().startswith("[price_pipeline] run of ingest_hospital")
    assert message["X-Price-Pipeline-Alert"] == "run_failure"
    parts = {p.get_content_type(): p for p in message.iter_parts()}
    assert "not a price file" in parts["text/plain"].get_content()
    assert json.loads(parts["application/json"].get_content())["run_id"] == "abc"
    assert "hunter2" not in caplog.text


def test_unreachable_smtp_is_a_failed_delivery_not_an_exception():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = AlertConfig(smtp_host="127.0.0.1", smtp_port=port, email_to=("a@example.org",), timeout_seconds=2)
    [result] = deliver(_alert(), config)
    assert not result.ok and result.channel == "email"
    assert AlertConfig.from_env({}).enabled is False
