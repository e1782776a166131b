"""Alert delivery to local receivers: webhook formats, e-mail, failures reported without secrets
(lib/ops/alerts.py)."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from price_pipeline.lib.ops import report as r
from price_pipeline.lib.ops.alerts import Alert, AlertConfig, deliver, redact_url, send_webhook
from price_pipeline_tests.ops.receivers import SmtpReceiver, WebhookReceiver


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
