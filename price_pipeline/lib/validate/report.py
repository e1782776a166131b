"""Conformance report and the capped collector that fills it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .rules import RULES


@dataclass
class ConformanceReport:
    """Outcome of validating one file against the CMS data dictionary (see package docstring)."""

    file: str
    format: str | None  # "csv_tall" | "csv_wide" | "json" | None (unreadable)
    version: str | None  # version declared in the file
    valid: bool
    errors: int
    alerts: int
    errors_by_rule: dict = field(default_factory=dict)
    alerts_by_rule: dict = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)
    findings_truncated: bool = False
    rows_checked: int = 0
    seconds: float = 0.0
    rules_version: str | None = None  # rule set applied (2.0.0, 2.1.0, 2.2.0, 3.0.0)
    # how it was chosen: major | declared | in-force@YYYY-MM-DD | forced (see rules.RULE_SELECTIONS)
    rules_selection: str | None = None
    compression: str | None = None

    def as_dict(self) -> dict:
        """JSON-serialisable dict."""
        return asdict(self)


class ReportCollector:
    """Counts every finding by rule and keeps the first ``max_findings`` of them."""

    def __init__(self, max_findings: int = 1000):
        self.max_findings = max(0, int(max_findings))
        self.findings: list[dict] = []
        self.errors_by_rule: dict[str, int] = {}
        self.alerts_by_rule: dict[str, int] = {}

    @property
    def room(self) -> int:
        return max(0, self.max_findings - len(self.findings))

    @property
    def errors(self) -> int:
        return sum(self.errors_by_rule.values())

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_rule.values())

    def count(self, rule: str, n: int = 1) -> None:
        """Count ``n`` findings of ``rule`` without keeping them."""
        if n <= 0:
            return
        bucket = self.alerts_by_rule if RULES[rule][0] == "alert" else self.errors_by_rule
        bucket[rule] = bucket.get(rule, 0) + n

    def add(self, rule: str, message: str, *, row: int | None = None, column: str | None = None,
            path: str | None = None, cell: str | None = None) -> None:
        """Count one finding and keep it while there is room."""
        self.count(rule)
        if len(self.findings) < self.max_findings:
            self.keep(rule, message, row=row, column=column, path=path, cell=cell)

    def keep(self, rule: str, message: str, *, row=None, column=None, path=None, cell=None) -> None:
        """Keep a finding already counted (used by the vectorised checks)."""
        if len(self.findings) >= self.max_findings:
            return
        f = {"rule": rule, "severity": RULES[rule][0], "message": message, "row": row, "column": column,
             "path": path}
        if cell is not None:
            f["cell"] = cell
        self.findings.append(f)

    def snapshot(self) -> tuple:
        """State to go back to with :meth:`restore` (when a fast path hands over to the exact one)."""
        return len(self.findings), dict(self.errors_by_rule), dict(self.alerts_by_rule)

    def restore(self, state: tuple) -> None:
        n, errors, alerts = state
        del self.findings[n:]
        self.errors_by_rule, self.alerts_by_rule = dict(errors), dict(alerts)

    def reset_errors(self) -> None:
        """Forget errors (not alerts): used when a JSON syntax error makes the rest meaningless."""
        self.errors_by_rule.clear()
        self.findings = [f for f in self.findings if f["severity"] == "alert"]

    def report(self, **kw) -> ConformanceReport:
        errors, alerts = self.errors, self.alerts
        return ConformanceReport(
            errors=errors, alerts=alerts, valid=errors == 0,
            errors_by_rule=dict(sorted(self.errors_by_rule.items())),
            alerts_by_rule=dict(sorted(self.alerts_by_rule.items())),
            findings=self.findings, findings_truncated=errors + alerts > len(self.findings), **kw,
        )
