"""Alert delivery: a JSON POST to a webhook and/or an e-mail over SMTP.

Configured from the environment (:meth:`AlertConfig.from_env`); with nothing configured alerts
are only logged. Secrets (the SMTP password, credentials or tokens in the webhook URL) are never
logged or put into an alert: :func:`redact_url` is used whenever a destination is described.

* ``PRICE_PIPELINE_ALERT_WEBHOOK_URL`` — receives ``POST`` with ``application/json``; any 2xx
  is success.
* ``PRICE_PIPELINE_ALERT_WEBHOOK_FORMAT`` — the body: ``json`` (default, :meth:`Alert.as_payload`),
  ``slack`` (a Slack incoming-webhook message: ``text`` plus Block Kit ``blocks``,
  :meth:`Alert.as_slack`) or ``teams`` (a message with one Adaptive Card, which Teams' Workflows
  "post to a channel when a webhook request is received" and incoming webhooks show,
  :meth:`Alert.as_teams`).
* ``PRICE_PIPELINE_SMTP_HOST``, ``PRICE_PIPELINE_SMTP_PORT`` (25), ``PRICE_PIPELINE_SMTP_USER``,
  ``PRICE_PIPELINE_SMTP_PASSWORD``, ``PRICE_PIPELINE_SMTP_STARTTLS`` (``1`` to upgrade),
  ``PRICE_PIPELINE_SMTP_SSL`` (``1`` for implicit TLS), ``PRICE_PIPELINE_ALERT_EMAIL_FROM``,
  ``PRICE_PIPELINE_ALERT_EMAIL_TO`` (comma-separated).
* ``PRICE_PIPELINE_ALERT_TIMEOUT_SECONDS`` (10) — per delivery.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit, urlunsplit

import httpx

from price_pipeline.lib.fetch.http.budget import TransferBudget
from price_pipeline.lib.fetch.http.client import safe_client
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError


@dataclass(frozen=True)
class Alert:
    """One event worth a human's attention."""

    kind: str  # "run_failure", "check_failure", ...
    title: str
    summary: str
    severity: str = "error"
    hospital_key: str | None = None
    run_id: str | None = None
    job_name: str | None = None
    asset_key: str | None = None
    check_name: str | None = None
    failure_kind: str | None = None  # transient / permanent
    url: str | None = None  # link into the Dagster UI
    details: Mapping[str, object] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)

    def as_payload(self) -> dict:
        payload = {
            "source": "price_pipeline",
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "timestamp": self.timestamp,
        }
        for name in ("hospital_key", "run_id", "job_name", "asset_key", "check_name", "failure_kind", "url"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.details:
            payload["details"] = dict(self.details)
        return payload

    def _facts(self) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in self.as_payload().items()
                if k not in ("title", "summary", "details", "source", "timestamp") and v is not None]

    def as_slack(self) -> dict:
        """A Slack incoming-webhook message: ``text`` (notifications, clients without blocks) and
        Block Kit blocks (a header, the summary, the facts, the items of a grouped alert)."""
        blocks: list[dict] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": self.summary[:2900] or " "}},
        ]
        facts = self._facts()
        if facts:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": f"*{k}*\n{v}"[:1900]} for k, v in facts[:10]]})
        lines = _item_lines(self.details)
        if lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
        if self.url:
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open in Dagster"}, "url": self.url}]})
        return {"text": f"[{self.severity}] {self.title}: {self.summary}"[:3000], "blocks": blocks}

    def as_teams(self) -> dict:
        """A Teams message carrying one Adaptive Card (title, summary, a fact set, the items)."""
        body: list[dict] = [
            {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True, "text": self.title,
             "color": "Attention" if self.severity == "error" else "Warning"},
            {"type": "TextBlock", "wrap": True, "text": self.summary or " "},
        ]
        facts = self._facts()
        if facts:
            body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
        for line in _item_lines(self.details):
            body.append({"type": "TextBlock", "wrap": True, "spacing": "None", "text": line})
        card: dict = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                      "version": "1.4", "body": body}
        if self.url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Dagster", "url": self.url}]
        return {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}

    def body(self, fmt: str) -> dict:
        """The webhook body in ``fmt`` (json, slack or teams)."""
        if fmt == "slack":
            return self.as_slack()
        if fmt == "teams":
            return self.as_teams()
        return self.as_payload()

    def as_text(self) -> str:
        lines = [self.title, "", self.summary, ""]
        for key, value in self.as_payload().items():
            if key not in ("title", "summary", "details"):
                lines.append(f"{key}: {value}")
        if self.details:
            lines += ["", json.dumps(dict(self.details), indent=2, default=str)]
        return "\n".join(lines) + "\n"


def _item_lines(details: Mapping[str, object], limit: int = 20) -> list[str]:
    """One line per item of a grouped alert (``details["items"]``, each with a ``line``)."""
    items = details.get("items") if isinstance(details, Mapping) else None
    if not isinstance(items, list):
        return []
    lines = [f"• {item.get('line', item)}" if isinstance(item, dict) else f"• {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"… and {len(items) - limit} more")
    return lines


WEBHOOK_FORMATS = ("json", "slack", "teams")


def grouped_alert(kind: str, title: str, items: list[dict], *, severity: str = "error", summary: str = "",
                  url: str | None = None, **details) -> Alert:
    """One alert for many events (a wave of failed runs, several breached thresholds): the title
    says how many, ``details["items"]`` holds each one (with a one-line ``line``)."""
    return Alert(kind=kind, title=title, summary=summary or f"{len(items)} items", severity=severity, url=url,
                 details={"count": len(items), "items": items, **details})


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AlertConfig:
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    email_from: str = "price-pipeline@localhost"
    email_to: tuple[str, ...] = ()
    timeout_seconds: float = 10.0
    webhook_format: str = "json"

    def __post_init__(self) -> None:
        if self.webhook_format not in WEBHOOK_FORMATS:
            raise ValueError(f"PRICE_PIPELINE_ALERT_WEBHOOK_FORMAT must be one of {', '.join(WEBHOOK_FORMATS)}, "
                             f"not {self.webhook_format!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertConfig:
        if env is None:
            from price_pipeline.settings import environ

            env = environ()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        return cls(
            webhook_url=get("PRICE_PIPELINE_ALERT_WEBHOOK_URL"),
            smtp_host=get("PRICE_PIPELINE_SMTP_HOST"),
            smtp_port=int(get("PRICE_PIPELINE_SMTP_PORT") or 25),
            smtp_user=get("PRICE_PIPELINE_SMTP_USER"),
            smtp_password=get("PRICE_PIPELINE_SMTP_PASSWORD"),
            smtp_starttls=_flag(get("PRICE_PIPELINE_SMTP_STARTTLS")),
            smtp_ssl=_flag(get("PRICE_PIPELINE_SMTP_SSL")),
            email_from=get("PRICE_PIPELINE_ALERT_EMAIL_FROM") or "price-pipeline@localhost",
            email_to=tuple(a.strip() for a in (get("PRICE_PIPELINE_ALERT_EMAIL_TO") or "").split(",") if a.strip()),
            timeout_seconds=float(get("PRICE_PIPELINE_ALERT_TIMEOUT_SECONDS") or 10),
            webhook_format=(get("PRICE_PIPELINE_ALERT_WEBHOOK_FORMAT") or "json").lower(),
        )

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host and self.email_to)

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url) or self.email_enabled

    def describe(self) -> dict:
        """Where alerts go, safe to log (no password, no URL credentials or query tokens)."""
        return {
            "webhook": redact_url(self.webhook_url) if self.webhook_url else None,
            "email": f"{self.smtp_host}:{self.smtp_port} -> {', '.join(self.email_to)}" if self.email_enabled else None,
        }


def redact_url(url: str) -> str:
    """``https://user:pw@hooks.example/T0/B1/secret?token=x`` -> ``https://hooks.example/…``:
    scheme, host and port only — webhook paths and queries often carry the secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, "/…" if parts.path not in ("", "/") else parts.path, "", ""))


@dataclass(frozen=True)
class DeliveryResult:
    channel: str  # "webhook" or "email"
    ok: bool
    detail: str


def send_webhook(
    alert: Alert, url: str, *, timeout: float = 10.0, attempts: int = 3, fmt: str = "json"
) -> DeliveryResult:
    """POST the alert as JSON in the format given (json, slack, teams); retries connection errors and 5xx a few times with a short backoff.

    The webhook is configuration, so its own host:port may be private; no redirect is followed,
    and each attempt ends after ``3 * timeout`` seconds whatever the receiver does."""
    last = ""
    for attempt in range(attempts):
        try:
            with (
                safe_client(trusted_urls=[url], timeout=timeout, pool=1) as client,
                TransferBudget(3 * timeout, what="webhook delivery").active(),
            ):
                response = client.post(url, json=alert.body(fmt))
            if 200 <= response.status_code < 300:
                return DeliveryResult("webhook", True, f"HTTP {response.status_code}")
            last = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break
        except (httpx.HTTPError, UnsafeUrlError) as exc:
            # the exception text can contain the URL: keep only the class name
            last = type(exc).__name__
        if attempt + 1 < attempts:
            time.sleep(0.5 * 2**attempt)
    return DeliveryResult("webhook", False, f"{last} from {redact_url(url)}")


def build_email(alert: Alert, config: AlertConfig) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[price_pipeline] {alert.title}"[:200]
    message["From"] = config.email_from
    message["To"] = ", ".join(config.email_to)
    message["X-Price-Pipeline-Alert"] = alert.kind
    message.set_content(alert.as_text())
    message.add_attachment(
        json.dumps(alert.as_payload(), default=str, indent=2).encode(),
        maintype="application",
        subtype="json",
        filename="alert.json",
    )
    return message


def send_email(alert: Alert, config: AlertConfig) -> DeliveryResult:
    message = build_email(alert, config)
    try:
        if config.smtp_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                config.smtp_host, config.smtp_port, timeout=config.timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout_seconds)
        with client:
            if config.smtp_starttls:
                client.starttls(context=ssl.create_default_context())
            if config.smtp_user:
                client.login(config.smtp_user, config.smtp_password or "")
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return DeliveryResult("email", False, f"{type(exc).__name__} via {config.smtp_host}:{config.smtp_port}")
    return DeliveryResult("email", True, f"sent to {len(config.email_to)} recipients")


def deliver(alert: Alert, config: AlertConfig) -> list[DeliveryResult]:
    """Send the alert on every configured channel; never raises for a delivery problem."""
    results = []
    if config.webhook_url:
        results.append(send_webhook(alert, config.webhook_url, timeout=config.timeout_seconds,
                                    fmt=config.webhook_format))
    if config.email_enabled:
        results.append(send_email(alert, config))
    return results
