"""Findings: recorded problems of an input file, never exceptions.

A parser run collects findings in a :class:`FindingCollector`, which keeps at most
``max_findings`` of them (the first ones, which are the most useful to read) and counts the
rest, so that a 13 GB file with a bad value on every row cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Finding:
    """One recorded problem of an input file (bad input never raises)."""

    rule: str  # stable snake_case id, e.g. "non_numeric_amount"
    severity: str  # "error" | "warning" | "info"
    message: str
    row: int | None = None
    column: str | None = None
    path: str | None = None

    def as_dict(self) -> dict:
        """Plain JSON-serialisable dict."""
        return asdict(self)


class FindingCollector:
    """Keeps the first ``max_findings`` findings and counts all of them."""

    def __init__(self, max_findings: int = 1000):
        self.max_findings = max_findings
        self.findings: list[Finding] = []
        self.total = 0

    def add(self, rule: str, severity: str, message: str, **where) -> None:
        """Record one finding (kept only while under the cap, always counted)."""
        self.total += 1
        if len(self.findings) < self.max_findings:
            self.findings.append(Finding(rule, severity, message, **where))

    @property
    def room(self) -> int:
        """How many more findings would still be kept."""
        return max(0, self.max_findings - len(self.findings))

    def count_only(self, n: int) -> None:
        """Count ``n`` findings that are not kept (the cap is reached)."""
        self.total += n

    def snapshot(self) -> tuple[int, int]:
        """State to roll back to (used when a parse is restarted with another encoding)."""
        return len(self.findings), self.total

    def rollback(self, state: tuple[int, int]) -> None:
        """Forget findings recorded after :meth:`snapshot`."""
        del self.findings[state[0] :]
        self.total = state[1]

    def has(self, rule: str) -> bool:
        """True when a finding with this rule was kept."""
        return any(f.rule == rule for f in self.findings)
