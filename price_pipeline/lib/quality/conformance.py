"""CMS conformance reports for a hospital's current files, stored in the lake.

For every file of the hospital's current download manifest that has bytes (status ``ok``, or
``rejected``: an HTML page behind a price-file link is non-conformant too), the validator behind
``price-pipeline validate`` (:func:`price_pipeline.lib.validate.validate_file`) is run and its
report stored as ``conformance/hospital_key=<k>/file_sha256=<sha>.json``. Counts by rule are
always complete; only the first ``max_findings`` findings are kept, so a file with a million
errors still gives a report of a few kilobytes.

``conformance/hospital_key=<k>/report.parquet`` holds one summary row per listed file
(:data:`REPORT_SCHEMA`), downloads that failed included (``valid`` NULL); it is written on every
run, with zero rows when nothing was listed, so the dbt source always has a file to read once the
hospital has run. Reports of identical bytes are reused while the validator code is unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

import price_pipeline.lib.quality.background as background
from price_pipeline.lib.fetch.files import FilesManifest
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import Lake, LocalLake

# Findings kept per file in the stored report (counts stay complete).
DEFAULT_MAX_FINDINGS = 100
# Rules listed in the summary row's top_rules text.
TOP_RULES = 5

RULE_COUNT = pa.struct([("rule", pa.string()), ("severity", pa.string()), ("count", pa.int64())])

REPORT_SCHEMA = pa.schema(
    [
        ("hospital_key", pa.string()),
        ("file_sha256", pa.string()),
        ("url", pa.string()),
        ("download_status", pa.string()),  # ok | rejected | failed (no bytes: not validated)
        ("format", pa.string()),
        ("declared_version", pa.string()),
        ("rules_version", pa.string()),
        ("rules_selection", pa.string()),  # major | declared | in-force@YYYY-MM-DD (validator README)
        ("valid", pa.bool_()),  # NULL when there were no bytes to validate
        ("errors", pa.int64()),
        ("alerts", pa.int64()),
        ("rule_counts", pa.list_(RULE_COUNT)),
        ("top_rules", pa.string()),
        ("rows_checked", pa.int64()),
        ("findings_kept", pa.int64()),
        ("findings_truncated", pa.bool_()),
        ("report_key", pa.string()),
        ("validated_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _validator_revision() -> str:
    """Digest of the validator's code and schemas: a cached report is reused only while it matches."""
    root = Path(__file__).resolve().parents[1] / "validate"
    h = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *root.glob("schemas/*.json")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


VALIDATOR_REVISION = _validator_revision()


@dataclass
class HospitalConformance:
    """Reports of one hospital's current files (``reports``: JSON-ready dicts, one per file)."""

    hospital_key: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def validated(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r.get("valid") is not None]

    @property
    def valid(self) -> bool:
        """Every listed file downloaded and conforms."""
        return bool(self.reports) and all(r.get("valid") for r in self.reports)

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        errors: dict[str, int] = {}
        alerts: dict[str, int] = {}
        for r in self.validated:
            for rule, n in r["errors_by_rule"].items():
                errors[rule] = errors.get(rule, 0) + n
            for rule, n in r["alerts_by_rule"].items():
                alerts[rule] = alerts.get(rule, 0) + n
        return dict(sorted(errors.items())), dict(sorted(alerts.items()))


def _top_rules(report: dict[str, Any]) -> str:
    counts = [*report.get("errors_by_rule", {}).items(), *report.get("alerts_by_rule", {}).items()]
    counts.sort(key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{rule}:{n}" for rule, n in counts[:TOP_RULES])


def _summary_row(hospital_key: str, report: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    validated = report.get("valid") is not None
    rule_counts = [
        {"rule": rule, "severity": severity, "count": n}
        for severity, bucket in (("error", "errors_by_rule"), ("alert", "alerts_by_rule"))
        for rule, n in report.get(bucket, {}).items()
    ]
    return {
        "hospital_key": hospital_key,
        "file_sha256": report.get("file_sha256"),
        "url": report.get("url"),
        "download_status": report.get("download_status"),
        "format": report.get("format"),
        "declared_version": report.get("version"),
        "rules_version": report.get("rules_version"),
        "rules_selection": report.get("rules_selection"),
        "valid": report.get("valid"),
        "errors": report.get("errors") if validated else None,
        "alerts": report.get("alerts") if validated else None,
        "rule_counts": rule_counts,
        "top_rules": _top_rules(report) or None,
        "rows_checked": report.get("rows_checked"),
        "findings_kept": len(report.get("findings", [])),
        "findings_truncated": report.get("findings_truncated"),
        "report_key": report.get("report_key"),
        "validated_at": now,
    }


def _cached_report(lake: Lake, key: str, max_findings: int, rules_key: str) -> dict[str, Any] | None:
    if not lake.exists(key):
        return None
    try:
        cached = json.loads(lake.get_bytes(key))
    except (ValueError, OSError):
        return None
    if (cached.get("validator_revision") == VALIDATOR_REVISION and cached.get("max_findings") == max_findings
            and cached.get("rules_key") == rules_key):
        return cached
    return None


def rules_from_settings(settings) -> dict[str, Any]:
    """``rules``/``as_of`` keyword arguments of :func:`validate_hospital` from the settings
    (``PRICE_PIPELINE_CMS_RULES``, ``PRICE_PIPELINE_CMS_RULES_AS_OF``)."""
    as_of = dt.date.fromisoformat(settings.cms_rules_as_of) if settings.cms_rules_as_of else None
    return {"rules": settings.cms_rules, "as_of": as_of}


def _rules_key(rules: str, as_of: dt.date | None) -> str:
    """What decides the rule set of a cached report: the selection, and for ``in-force`` the rules
    in force (so a report is not redone every day, only when the date crosses an enforcement date)."""
    from price_pipeline.lib.validate.rules import in_force_rules

    return f"in-force:{in_force_rules(as_of)}" if rules == "in-force" else rules


def validate_hospital(
    hospital_key: str,
    *,
    lake: Lake,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    reuse: bool = True,
    rules: str = "major",
    as_of: dt.date | None = None,
    log=None,
    limits: dict[str, Any] | None = None,
    background_timeout: float = background.DEFAULT_TIMEOUT_SECONDS,
) -> HospitalConformance:
    """Validate the hospital's current files, store the reports and the summary table.

    ``rules``/``as_of``: which CMS rule set each file is checked against (``major``, ``declared``
    or ``in-force`` on ``as_of``; see :func:`price_pipeline.lib.validate.validate_file`);
    ``limits``: ``max_decompressed_bytes`` / ``max_ratio`` for the validator, the caps the parser
    gets (``Settings.archive_limits``). A file that :func:`start_background_validations` handed to
    a child process is taken from the child when it validated the same bytes with the same rules
    (waiting at most ``background_timeout`` seconds); otherwise it is validated here."""
    try:
        return _validate_hospital(hospital_key, lake=lake, max_findings=max_findings, reuse=reuse, rules=rules,
                                  as_of=as_of, log=log, limits=limits, background_timeout=background_timeout)
    finally:
        background.stop_background_validations(hospital_key)  # none outlives the step


def _validate_hospital(hospital_key: str, *, lake: Lake, max_findings: int, reuse: bool, rules: str,
                       as_of: dt.date | None, log, limits: dict[str, Any] | None,
                       background_timeout: float) -> HospitalConformance:
    from price_pipeline.lib.validate import validate_file

    rules_key = _rules_key(rules, as_of)
    manifest = FilesManifest.from_json(lake.get_bytes(layout.files_manifest_key(hospital_key)))
    result = HospitalConformance(hospital_key)
    now = dt.datetime.now(dt.UTC)
    for outcome in manifest.files:
        base = {
            "hospital_key": hospital_key,
            "file_sha256": outcome.sha256 if outcome.raw_key else None,
            "url": outcome.url,
            "download_status": outcome.status,
        }
        if not outcome.raw_key:  # failed download: nothing to validate, one finding says why
            why = f"not validated: the download failed ({outcome.error or outcome.status})"
            report = {**base, "valid": None, "errors": None, "alerts": None, "errors_by_rule": {},
                      "alerts_by_rule": {}, "download_error": outcome.error,
                      "findings": [{"rule": "download_failed", "severity": "error", "message": why, "row": None,
                                    "column": None, "path": None}]}
            result.reports.append(report)
            result.rows.append(_summary_row(hospital_key, report, now))
            continue
        key = layout.conformance_report_key(hospital_key, outcome.sha256)
        report = _cached_report(lake, key, max_findings, rules_key) if reuse else None
        if report is None:
            with lake.local_copy(outcome.raw_key) as path:
                params = background.validation_params(path=path, sha256=outcome.sha256, max_findings=max_findings,
                                                      rules=rules, as_of=as_of, limits=limits)
                checked = background.take_background_report(hospital_key, params, timeout=background_timeout,
                                                            log=log)
                if checked is None:
                    checked = validate_file(path, max_findings=max_findings, rules=rules, as_of=as_of,
                                            **(limits or {})).as_dict()
            checked["file"] = outcome.raw_key  # the lake key, not a temporary local path
            report = {**base, **checked, "report_key": key, "validator_revision": VALIDATOR_REVISION,
                      "max_findings": max_findings, "rules_key": rules_key, "validated_at": now.isoformat()}
            lake.put_bytes(json.dumps(report, indent=1, default=str).encode(), key)
        else:
            report = {**report, **base}
        if log:
            log(f"{outcome.url}: valid={report['valid']} errors={report['errors']} alerts={report['alerts']}")
        result.reports.append(report)
        result.rows.append(_summary_row(hospital_key, report, now))
    write_summary_table(lake, hospital_key, result.rows)
    return result


def start_background_validations(
    hospital_key: str,
    *,
    lake: Lake,
    max_findings: int = DEFAULT_MAX_FINDINGS,
    rules: str = "major",
    as_of: dt.date | None = None,
    limits: dict[str, Any] | None = None,
    min_bytes: int = background.DEFAULT_MIN_BYTES,
) -> list[str]:
    """Start a child validating each current file of at least ``min_bytes`` (``min_bytes`` <= 0:
    none) with the arguments :func:`validate_hospital` will get, so the later conformance step
    takes its report instead of reading the file again; the sha256 of each file handed over.

    Only files a local lake holds in place (an S3 lake's would need a second download), that
    have no reusable stored report (a rerun validates nothing), and up to
    :data:`background.MAX_CHILDREN` at once; everything else is validated inline as before."""
    if min_bytes <= 0 or not isinstance(lake, LocalLake):
        return []
    manifest = FilesManifest.from_json(lake.get_bytes(layout.files_manifest_key(hospital_key)))
    rules_key = _rules_key(rules, as_of)
    started = []
    big = [f for f in manifest.files if f.raw_key and f.sha256 and (f.size or 0) >= min_bytes]
    for outcome in sorted(big, key=lambda f: -(f.size or 0)):  # the biggest saves the most
        if _cached_report(lake, layout.conformance_report_key(hospital_key, outcome.sha256), max_findings,
                          rules_key) is not None:
            continue
        with lake.local_copy(outcome.raw_key) as path:  # a local lake's own path: stays after the block
            params = background.validation_params(path=path, sha256=outcome.sha256, max_findings=max_findings,
                                                  rules=rules, as_of=as_of, limits=limits)
        if background.start_child(hospital_key, params):
            started.append(outcome.sha256)
    return started


def summary_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a :data:`REPORT_SCHEMA` table.

    Read by Arrow's JSON reader rather than built with ``pa.Table.from_pylist``: that (like
    ``pa.array``) imports pandas, ~0.2 CPU-s of every hospital run (~1.3 s without cached
    bytecode) that nothing else in the run needs.
    """
    if not rows:
        return REPORT_SCHEMA.empty_table()
    lines = (json.dumps({k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items()})
             for row in rows)
    options = pa_json.ParseOptions(explicit_schema=REPORT_SCHEMA, unexpected_field_behavior="error")
    return pa_json.read_json(io.BytesIO("\n".join(lines).encode()), parse_options=options)


def write_summary_table(lake: Lake, hospital_key: str, rows: list[dict[str, Any]]) -> None:
    table = summary_table(rows)
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        lake.put_file(tmp, layout.conformance_table_key(hospital_key))
    finally:
        os.unlink(tmp)
