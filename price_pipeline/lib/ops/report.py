"""The ops report: the seed's success metrics (per job: internal and external failure rates with
cancels apart, mean/p50/p95 run time, queue wait; throughput in hospitals per hour; coverage of the
catalog), per-day run outcomes, backlog and slowest hospitals, and the thresholds they are alerted on.

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
INGESTION_JOB = "ingest_hospital"
DAY = 86400.0


@dataclass(frozen=True)
class RunSample:
    run_id: str
    job_name: str
    status: str  # DagsterRunStatus value, e.g. "SUCCESS"
    created_at: float
    hospital_key: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    failure_kind: str | None = None  # internal / external, for a FAILURE
    layer: str | None = None  # the price_pipeline/layer tag

    @property
    def job(self) -> str:
        """The job a metric counts the run under: backfill runs of the ingestion assets (the implicit
        asset job, tagged layer=ingestion) count as ``ingest_hospital``, the job they stand for."""
        if self.job_name == "__ASSET_JOB" and self.layer == "ingestion":
            return INGESTION_JOB
        return self.job_name

    @property
    def queue_wait(self) -> float | None:
        return None if self.start_time is None else max(0.0, self.start_time - self.created_at)

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


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def job_metrics(runs: Iterable[RunSample]) -> dict[str, dict]:
    """Per job, over the runs given: outcome counts; the internal and external failure rates over
    the runs that ran to an end of their own (cancels are counted apart, never as failures); run
    time (mean, p50, p95 of successful runs) and queue wait (creation to start, every started run)."""
    by_job: dict[str, list[RunSample]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    out = {}
    for job, job_runs in sorted(by_job.items()):
        ok = [r for r in job_runs if r.status == FINISHED_OK]
        failed = [r for r in job_runs if r.status == "FAILURE"]
        internal = sum(1 for r in failed if r.failure_kind != "external")
        external = len(failed) - internal
        canceled = sum(1 for r in job_runs if r.status == "CANCELED")
        ended = len(ok) + len(failed)
        durations = [d for r in ok if (d := r.duration) is not None]
        waits = [w for r in job_runs if (w := r.queue_wait) is not None]
        out[job] = {
            "runs": len(job_runs), "succeeded": len(ok), "failed_internal": internal, "failed_external": external,
            "canceled": canceled,
            "internal_failure_rate": _round(internal / ended, 4) if ended else None,
            "external_failure_rate": _round(external / ended, 4) if ended else None,
            "cancel_rate": _round(canceled / (ended + canceled), 4) if ended + canceled else None,
            "mean_seconds": _round(_mean(durations)), "p50_seconds": _round(percentile(durations, 50)),
            "p95_seconds": _round(percentile(durations, 95)),
            "queue_wait_mean_seconds": _round(_mean(waits)), "queue_wait_p95_seconds": _round(percentile(waits, 95)),
        }
    return out


def throughput(runs: Iterable[RunSample], *, now: float, hours: float = 24.0) -> dict:
    """Hospitals ingested per hour: distinct hospitals whose ingestion run succeeded (ended) in the
    last ``hours``, divided by ``hours``; and the same over the last hour."""
    def per_hour(window_hours: float) -> float:
        since = now - window_hours * 3600
        done = {r.hospital_key for r in runs if r.job == INGESTION_JOB and r.status == FINISHED_OK
                and r.hospital_key and r.end_time is not None and r.end_time >= since}
        return round(len(done) / window_hours, 2)

    runs = list(runs)
    return {"hospitals_per_hour_24h": per_hour(hours), "hospitals_per_hour_last_hour": per_hour(1.0)}


def coverage(listed: Iterable[str], ingested: Iterable[str], failed: Iterable[str], tried: Iterable[str]) -> dict:
    """The catalog's hospitals split four ways (each counted once): failed (in the dead-letter view),
    ingested (prices materialized, not failed), never tried (no run ever), and the rest (tried, not
    yet ingested: queued, running, or skipped)."""
    listed = set(listed)
    failed_now = set(failed) & listed
    ingested_ok = (set(ingested) & listed) - failed_now
    never = listed - set(tried) - failed_now - ingested_ok
    return {
        "listed": len(listed), "ingested": len(ingested_ok), "failed": len(failed_now), "never_tried": len(never),
        "in_progress_or_pending": len(listed - failed_now - ingested_ok - never),
    }


@dataclass(frozen=True)
class Thresholds:
    """What is alerted on (settings in docs/operations.md)."""

    max_internal_failure_rate: float = 0.01  # over the last 24 h, per job
    max_mean_ingestion_seconds: float = 30.0  # ingest_hospital, over the last 24 h
    min_runs: int = 1  # a rate over fewer finished runs is not judged


def breaches(metrics_24h: dict[str, dict], stale_marts: Iterable[str], limits: Thresholds) -> list[dict]:
    """Every threshold breached now, each with a stable ``id`` (so that an alert is sent when it
    starts, not on every evaluation) and a one-line ``line``."""
    out = []
    for job, m in sorted(metrics_24h.items()):
        rate = m.get("internal_failure_rate")
        if rate is not None and m["succeeded"] + m["failed_internal"] + m["failed_external"] >= limits.min_runs \
                and rate > limits.max_internal_failure_rate:
            out.append({"id": f"internal_failure_rate:{job}", "job": job, "value": rate,
                        "limit": limits.max_internal_failure_rate,
                        "line": f"{job}: internal failure rate {rate:.2%} over 24 h "
                                f"(limit {limits.max_internal_failure_rate:.2%}; {m['failed_internal']} failed)"})
    ingestion = metrics_24h.get(INGESTION_JOB, {})
    mean = ingestion.get("mean_seconds")
    if mean is not None and mean > limits.max_mean_ingestion_seconds:
        out.append({"id": "mean_ingestion_seconds", "job": INGESTION_JOB, "value": mean,
                    "limit": limits.max_mean_ingestion_seconds,
                    "line": f"{INGESTION_JOB}: mean run time {mean:.1f} s over 24 h "
                            f"(limit {limits.max_mean_ingestion_seconds:.0f} s)"})
    for mart in sorted(stale_marts):
        out.append({"id": f"stale:{mart}", "asset": mart, "line": f"{mart}: freshness policy failing (stale)"})
    return out


def build_report(
    runs: Sequence[RunSample],
    materializations: Sequence[MaterializationSample],
    *,
    partitions: Iterable[str],
    materialized: Iterable[str],
    failed_hospitals: Iterable[str] = (),
    tried: Iterable[str] = (),
    top: int = 10,
    now: float | None = None,
) -> dict:
    """The whole report as JSON-ready data."""
    import time

    now = time.time() if now is None else now
    failed_hospitals = list(failed_hospitals)
    daily = daily_run_stats(runs)
    per_day = daily_throughput(materializations)
    for row in daily:
        row.update(
            per_day.get(
                row["day"],
                {"materializations": 0, "rows_written": 0, "bytes_written": 0, "rows_per_second": None,
                 "bytes_per_second": None},
            )
        )
    partitions, materialized = list(partitions), list(materialized)
    return {
        "generated_at": now,
        "jobs_24h": job_metrics(r for r in runs if r.created_at >= now - DAY),
        "jobs": job_metrics(runs),
        "throughput": throughput(runs, now=now),
        "coverage": coverage(partitions, materialized, failed_hospitals, tried),
        "days": daily,
        "backlog": {**backlog(runs, partitions, materialized), "failed_hospitals": len(failed_hospitals)},
        "slowest_hospitals": slowest_hospitals(runs, top=top),
    }


def markdown(report: dict) -> str:
    """A compact Markdown rendering for the asset's metadata in the UI."""
    cols = ["day", "runs", "succeeded", "failed", "success_rate", "p50_duration_seconds", "p95_duration_seconds",
            "rows_per_second", "bytes_per_second"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in report["days"]:
        lines.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols) + " |")
    job_cols = ["job", "runs", "internal_failure_rate", "external_failure_rate", "canceled", "mean_seconds",
                "p50_seconds", "p95_seconds", "queue_wait_mean_seconds"]
    lines += ["", "**Jobs, last 24 h**", "", "| " + " | ".join(job_cols) + " |", "|" + "---|" * len(job_cols)]
    for job, m in report.get("jobs_24h", {}).items():
        lines.append("| " + " | ".join([job] + ["" if m.get(c) is None else str(m[c]) for c in job_cols[1:]]) + " |")
    lines += ["", "**Throughput**: " + ", ".join(f"{k}={v}" for k, v in report.get("throughput", {}).items()),
              "", "**Coverage**: " + ", ".join(f"{k}={v}" for k, v in report.get("coverage", {}).items())]
    lines += ["", "**Backlog**: " + ", ".join(f"{k}={v}" for k, v in report["backlog"].items()), "",
              "**Slowest hospitals**: "
              + (", ".join(f"{h['hospital_key']} ({h['duration_seconds']}s)" for h in report["slowest_hospitals"])
                 or "none")]
    return "\n".join(lines)
