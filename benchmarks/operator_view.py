#!/usr/bin/env python3
"""The operator's view at national size (issue 13): is it still usable with 6,100 hospitals?

Builds a fresh embedded instance (SQLite, as ``make run``) holding ``--hospitals`` hospital
partitions and their run history: one ``ingest_hospital`` run per hospital with its partition
tags, a ``prices`` materialization for each succeeded one, and ``--failed-fraction`` failed runs
with a step failure carrying ``failure_kind``/``failure_reason`` (as ``@classified`` records).
Then starts ``dagster dev`` on it and times, in headless Chromium (``price_pipeline_tests/browser.py``),
from navigation until the page shows its content:

* the ``prices`` asset page (``/assets/prices``), until "Latest materialization" is shown;
* its partitions tab (``?view=partitions``), until the last hospital's key is listed;
* the runs page filtered to failures (``/runs?q[0]=status:FAILURE``), until the newest failed
  run's id is listed;

each cold (first visit) and warm (second), and from the command line
``price-pipeline failed-hospitals --json`` (a fresh process, as an operator runs it), checking
that it lists exactly the failed hospitals. One ``RESULT`` line; exit 1 when an answer takes
longer than ``--max-seconds`` (3).

    flock /tmp/pp-heavy.lock .venv/bin/python benchmarks/operator_view.py --hospitals 6100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from price_pipeline.defs.ops.retries import FAILURE_KIND, FAILURE_REASON  # noqa: E402
from price_pipeline_tests.browser import chromium_binary, headless_chromium  # noqa: E402
from price_pipeline_tests.integration.dagster_process import dagster_dev, wait_for  # noqa: E402


def populate(instance: dg.DagsterInstance, n: int, failed_fraction: float, seed: int) -> tuple[list[str], dict]:
    """Partitions and run history; returns (keys, {failed hospital: run id})."""
    # Dagster internals, as its own tests write run history (no public API stores a step failure).
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry
    from dagster._core.execution.plan.objects import StepFailureData, UserFailureData
    from dagster._core.test_utils import create_run_for_test
    from dagster._utils.error import SerializableErrorInfo

    rng = random.Random(seed)
    keys = [f"ccn-{500000 + i:06d}" for i in range(n)]
    instance.add_dynamic_partitions("hospitals", keys)
    failed: dict[str, str] = {}
    for key in keys:
        is_failed = rng.random() < failed_fraction
        tags = {"dagster/partition": key, "price_pipeline/hospital": key, "price_pipeline/layer": "ingestion",
                "price_pipeline/host": f"host-{rng.randrange(40)}.example.org"}
        run = create_run_for_test(instance, job_name="ingest_hospital", tags=tags,
                                  status=dg.DagsterRunStatus.FAILURE if is_failed else dg.DagsterRunStatus.SUCCESS)
        if is_failed:
            failed[key] = run.run_id
            reason = "permanent: not a price file: an HTML page was served instead of data"
            event = DagsterEvent(
                event_type_value=DagsterEventType.STEP_FAILURE.value,
                job_name="ingest_hospital",
                step_key="mrf_files",
                event_specific_data=StepFailureData(
                    error=SerializableErrorInfo(reason, [], "Failure"),
                    user_failure_data=UserFailureData(
                        label="intentional-failure", description=reason,
                        metadata={FAILURE_KIND: dg.MetadataValue.text("permanent"),
                                  FAILURE_REASON: dg.MetadataValue.text(reason)},
                    ),
                ),
            )
            instance.store_event(EventLogEntry(
                error_info=None, level="ERROR", user_message=reason, run_id=run.run_id,
                timestamp=time.time(), step_key="mrf_files", job_name="ingest_hospital", dagster_event=event,
            ))
        else:
            instance.report_runless_asset_event(
                dg.AssetMaterialization("prices", partition=key, metadata={"dagster/row_count": rng.randrange(50, 50000)})
            )
    return keys, failed


def timed_page(page, url: str, *needles: str, timeout: float = 120) -> float:
    page.navigate("about:blank")
    time.sleep(0.3)
    started = time.perf_counter()
    page.navigate(url)
    page.wait_for_text(*needles, timeout=timeout)
    return round(time.perf_counter() - started, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hospitals", type=int, default=6100)
    p.add_argument("--failed-fraction", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-seconds", type=float, default=3.0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / ".work" / "operator_view.json")
    args = p.parse_args(argv)
    binary = chromium_binary()
    if binary is None:
        sys.exit("no chromium on PATH")

    with tempfile.TemporaryDirectory(prefix="pp-operator-view-") as tmp:
        tmp_path = Path(tmp)
        home = tmp_path / "dagster_home"
        from price_pipeline.launch import prepare_dagster_home

        prepare_dagster_home(home, production=False)
        started = time.perf_counter()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            keys, failed = populate(instance, args.hospitals, args.failed_fraction, args.seed)
            newest_failed_run = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=1)[0]
        populate_s = round(time.perf_counter() - started, 1)
        print(f"{len(keys)} partitions, {len(failed)} failed runs written in {populate_s} s", flush=True)

        env = {
            "PRICE_PIPELINE_DATA_DIR": str(tmp_path / "data"),
            # nothing to discover: the sensors must not change the history being measured
            "PRICE_PIPELINE_CATALOG_URL": "http://127.0.0.1:9/api/v1/hospitals",
        }
        timings: dict[str, list[float]] = {}
        with dagster_dev(home, env) as (_, port):
            base = f"http://127.0.0.1:{port}"

            def up():
                import urllib.request

                try:
                    with urllib.request.urlopen(f"{base}/server_info", timeout=5) as r:
                        return r.status == 200
                except OSError:
                    return False

            wait_for(up, timeout=180, what="the Dagster webserver")
            with headless_chromium(binary, log_path=tmp_path / "chromium.log") as page:
                # the code location must be loaded before the asset page can render
                page.navigate(f"{base}/assets/prices")
                page.wait_for_text("Latest materialization", timeout=240)
                for _ in range(2):
                    timings.setdefault("asset_page", []).append(
                        timed_page(page, f"{base}/assets/prices", "Latest materialization"))
                    timings.setdefault("partitions_tab", []).append(
                        timed_page(page, f"{base}/assets/prices?view=partitions", keys[-1]))
                    timings.setdefault("failed_runs", []).append(
                        timed_page(page, f"{base}/runs?q%5B0%5D=status%3AFAILURE", newest_failed_run.run_id[:8]))

        cli_env = {**os.environ, "DAGSTER_HOME": str(home)}
        cli = Path(sys.executable).parent / "price-pipeline"
        for _ in range(2):
            t0 = time.perf_counter()
            out = subprocess.run([str(cli), "failed-hospitals", "--json"], env=cli_env, capture_output=True,
                                 text=True, check=True).stdout
            timings.setdefault("cli_failed_hospitals", []).append(round(time.perf_counter() - t0, 2))
        listed = {json.loads(line)["hospital_key"] for line in out.splitlines() if line.strip()}
        if listed != set(failed):
            sys.exit(f"failed-hospitals listed {len(listed)} hospitals, {len(failed)} failed")

    worst = {name: max(values) for name, values in timings.items()}
    missed = [f"{name} {seconds} s > {args.max_seconds} s" for name, seconds in worst.items() if seconds > args.max_seconds]
    report = {"hospitals": args.hospitals, "failed": len(failed), "populate_s": populate_s, "timings_s": timings,
              "missed": missed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for m in missed:
        print(f"MISSED: {m}")
    print("RESULT " + " ".join([f"hospitals={args.hospitals}", f"failed={len(failed)}",
                                *(f"{k}_s={'/'.join(str(v) for v in vs)}" for k, vs in timings.items()),
                                f"ok={'no' if missed else 'yes'}"]), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
