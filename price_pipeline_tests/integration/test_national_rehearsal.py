"""The national rehearsal's small variant (issue 13): 100 hospitals with tiny files on several
faulty hosts through the real platform (daemon, sensors, run queue, analytics sensor) from a
fresh instance, three days, and the benchmark's own checks.

It asserts what must hold at any size: the run settles each day, every hospital is accounted
for (current prices or the failed-hospitals view with a reason), no internal failure, no
per-host run limit exceeded, zero data loss, prices equal to the direct parse, analytics
caught up after each day. The day-1 time ratio to the library baseline is measured and
reported but only loosely bounded here: at N = 100 the platform's fixed costs (start-up,
the analytics build, the quiet period before the Great Expectations runs) dominate; the
2x target is for N = 1,000 (benchmarks/README.md). About 5.5-7.5 minutes on the 2-core machine, so
it runs in `make test`; `make rehearsal` runs the full-size rehearsal. Its time bound leaves room
for a slow day: in one clean-clone CI run (2026-12-07) every slow test of the suite took ~2x its
usual time and this one 12.0 minutes, at the old 12-minute bound.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from price_pipeline.settings import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(1140)
def test_small_national_rehearsal_meets_its_targets(tmp_path):
    out = tmp_path / "rehearsal.json"
    command = [
        sys.executable, str(PROJECT_ROOT / "benchmarks" / "national_rehearsal.py"),
        "--hospitals", "100", "--hosts", "4", "--scale", "0.002", "--seed", "5",
        "--trickle-seconds", "20", "--trickle-interval", "4", "--day-timeout", "420",
        # the sensors' fixed waits (catalog tick, follow-up ticks, the expectations' quiet period)
        # come every day and dominate 100 tiny hospitals; production keeps its defaults
        "--sensor-interval", "3",
        "--max-platform-ratio", "10", "--max-rehearsal-minutes", "16",
        "--work-dir", str(tmp_path / "work"), "--out", str(out),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1080)
    output = result.stdout + result.stderr
    result_lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(result_lines) == 1, output[-4000:]
    print(result_lines[0])  # the measured figures, for -s / -rP
    report = json.loads(out.read_text())
    assert report["missed"] == [] and result.returncode == 0, (report["missed"], output[-4000:])

    # what the checks saw, so a silently empty rehearsal cannot pass
    assert report["catalog"]["hospitals"] == 100 and report["catalog"]["broken"] >= 1
    assert all(report[day]["settled"] for day in ("day1", "day2", "day3"))
    assert report["coverage"]["accounted_pct"] == 100.0 and report["coverage"]["with_prices"] >= 90
    assert report["failures"]["internal"] == 0
    assert report["data_loss"]["served"]["lost"] == 0 and report["data_loss"]["partial"]["partial"] == 0
    # distinct byte sequences served (tiny generated files of one layout can be byte-identical)
    served = report["data_loss"]["served"]
    assert served["served"] >= 20 and served["served"] == served["in_lake"] + served["rejected_with_reason"]
    assert report["prices_vs_direct_parse"]["mismatched_count"] == 0
    assert report["prices_vs_direct_parse"]["missing_count"] == 0
    # hospitals ran in batches: far fewer ingestion runs than hospitals on day 1
    assert report["day1"]["ingestion_jobs"]["runs"] < 60
    assert max(report["host_concurrency"].values()) <= 2


def _rehearsal_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("national_rehearsal", PROJECT_ROOT / "benchmarks" / "national_rehearsal.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("national_rehearsal", module)
    spec.loader.exec_module(module)
    return module


def test_a_platform_that_died_at_start_ends_the_rehearsal_at_once(tmp_path):
    """A platform whose start failed (here: the storage migration, as once under load) is
    reported at once, not waited for: before, the harness slept 3 s, opened the instance itself
    (racing launch.py's migration) and then polled a dead platform for its whole day timeout."""
    import time

    rehearsal = _rehearsal_module()
    platform = rehearsal.Platform.__new__(rehearsal.Platform)  # only the process and its log
    platform.work, platform.home = tmp_path, tmp_path / "dagster_home"
    (tmp_path / "platform.log").write_bytes(b"alembic.util.exc.CommandError: Requested revision ... overlaps\n")
    platform.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    platform.process.wait()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with status 3"):
        platform.instance()
    watcher = rehearsal.Watcher(None, alive=platform.check_alive)
    with pytest.raises(RuntimeError, match="exited with status 3"):
        watcher.poll()
    assert time.monotonic() - started < 5
