"""The ops report's computations and the seed's metrics and thresholds (lib/ops/report.py)."""

from __future__ import annotations

import pytest

from price_pipeline.lib.ops import report as r


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
