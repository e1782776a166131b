"""The ops report: per-day run outcomes, durations, throughput, backlog and slowest hospitals.

Pure computations over plain records; ``price_pipeline.defs.ops`` reads them from the Dagster
instance and publishes the result as the ``ops_report`` asset.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

FINISHED_OK = "SUCCESS"
FINISHED_BAD = ("FAILURE", "CANCELED")


@dataclass(frozen=True)
class RunSample:
    run_id: str
    job_name: str
    status: str  # DagsterRunStatus value, e.g. "SUCCESS"
    created_at: float
    hospital_key: str | None = None
    start_time: float | None = None
    end_time: float | None = None

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, self.end_time - self.start_time)


@dataclass(frozen=True)
class MaterializationSample:
    asset: str
    timestamp: float
    hospital_key: str | None = None
    duration_seconds: float | None = None
    rows: int | None = None
    bytes: int | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def day_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def daily_run_stats(runs: Iterable[RunSample]) -> list[dict]:
    """One row per UTC day (of run creation), newest first."""
    by_day: dict[str, list[RunSample]] = defaultdict(list)
    for run in runs:
        by_day[day_of(run.created_at)].append(run)
    rows = []
    for day in sorted(by_day, reverse=True):
        day_runs = by_day[day]
        finished = [r for r in day_runs if r.status in (FINISHED_OK, *FINISHED_BAD)]
        ok = sum(1 for r in finished if r.status == FINISHED_OK)
        failed = sum(1 for r in finished if r.status == "FAILURE")
        canceled = sum(1 for r in finished if r.status == "CANCELED")
        durations = [d for r in day_runs if r.status == FINISHED_OK and (d := r.duration) is not None]
        rows.append(
            {
                "day": day,
                "runs": len(day_runs),
                "succeeded": ok,
                "failed": failed,
                "canceled": canceled,
                "success_rate": _round(ok / len(finished)) if finished else None,
                "failure_rate": _round((failed + canceled) / len(finished)) if finished else None,
                "p50_duration_seconds": _round(percentile(durations, 50)),
                "p95_duration_seconds": _round(percentile(durations, 95)),
            }
        )
    return rows


def daily_throughput(materializations: Iterable[MaterializationSample]) -> dict[str, dict]:
    """Per UTC day: rows and bytes written and their rate over the summed step durations."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"rows": 0, "bytes": 0, "seconds": 0.0, "count": 0})
    for m in materializations:
        t = totals[day_of(m.timestamp)]
        t["rows"] += m.rows or 0
        t["bytes"] += m.bytes or 0
        t["seconds"] += m.duration_seconds or 0.0
        t["count"] += 1
    out = {}
    for day, t in totals.items():
        seconds = t["seconds"]
        out[day] = {
            "materializations": int(t["count"]),
            "rows_written": int(t["rows"]),
            "bytes_written": int(t["bytes"]),
            "rows_per_second": _round(t["rows"] / seconds, 1) if seconds else None,
            "bytes_per_second": _round(t["bytes"] / seconds, 1) if seconds else None,
        }
    return out


def slowest_hospitals(runs: Iterable[RunSample], *, top: int = 10) -> list[dict]:
    """Hospitals by the duration of their latest successful run, slowest first."""
    latest: dict[str, RunSample] = {}
    for run in runs:
        if run.hospital_key and run.status == FINISHED_OK and run.duration is not None:
            known = latest.get(run.hospital_key)
            if known is None or run.created_at > known.created_at:
                latest[run.hospital_key] = run
    ordered = sorted(latest.values(), key=lambda r: r.duration or 0.0, reverse=True)[:top]
    return [{"hospital_key": r.hospital_key, "duration_seconds": _round(r.duration), "run_id": r.run_id} for r in ordered]


def backlog(
    runs: Iterable[RunSample], partitions: Iterable[str], materialized: Iterable[str]
) -> dict[str, int]:
    """Queued and in-progress runs, and hospitals that have never been ingested."""
    runs = list(runs)
    done = set(materialized)
    return {
        "queued_runs": sum(1 for r in runs if r.status in ("QUEUED", "NOT_STARTED")),
        "in_progress_runs": sum(1 for r in runs if r.status in ("STARTING", "STARTED", "CANCELING")),
        "hospitals_never_ingested": sum(1 for p in set(partitions) if p not in done),
    }


def build_report(
    runs: Sequence[RunSample],
    materializations: Sequence[MaterializationSample],
    *,
    partitions: Iterable[str],
    materialized: Iterable[str],
    failed_hospitals: int = 0,
    top: int = 10,
    now: float | None = None,
) -> dict:
    """The whole report as JSON-ready data."""
    daily = daily_run_stats(runs)
    throughput = daily_throughput(materializations)
    for row in daily:
        row.update(
            throughput.get(
                row["day"],
                {"materializations": 0, "rows_written": 0, "bytes_written": 0, "rows_per_second": None,
                 "bytes_per_second": None},
            )
        )
    return {
        "generated_at": now,
        "days": daily,
        "backlog": {**backlog(runs, partitions, materialized), "failed_hospitals": failed_hospitals},
        "slowest_hospitals": slowest_hospitals(runs, top=top),
    }


def markdown(report: dict) -> str:
    """A compact Markdown rendering for the asset's metadata in the UI."""
    cols = ["day", "runs", "succeeded", "failed", "success_rate", "p50_duration_seconds", "p95_duration_seconds",
            "rows_per_second", "bytes_per_second"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report["days"]:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols) + " |")
    lines += ["", "**Backlog**: " + ", ".join(f"{k}={v}" for k, v in report["backlog"].items()), "",
              "**Slowest hospitals**: "
              + (", ".join(f"{h['hospital_key']} ({h['duration_seconds']}s)" for h in report["slowest_hospitals"])
                 or "none")]
    return "\n".join(lines)
