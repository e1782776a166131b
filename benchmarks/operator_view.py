#!/usr/bin/env python3
"""The operator's view at national size (issue 13): is it still usable with 6,100 hospitals?

Builds an instance holding ``--hospitals`` hospital partitions and their run history: one
``ingest_hospital`` run per hospital with its partition tags (the worst case: the catalog sensor
batches a first load, but ``backfill`` and ``retry-failed`` queue one run per hospital), a
``prices`` materialization for each succeeded one, and ``--failed-fraction`` failed runs written
as a real failed run writes them: the planned materialization of each ingestion asset, a step
failure of ``mrf_files`` carrying ``failure_kind``/``failure_reason`` (as ``@classified``
records) and the run failure. The instance is the embedded one (SQLite, as ``make run``), or
with ``--postgres`` the same instance configuration on PostgreSQL (run and event storage; a fresh
database, dropped afterwards).

Then starts ``dagster dev`` on it and times, in headless Chromium
(``price_pipeline_tests/browser.py``), from navigation until the page shows its content:

* the ``prices`` asset page (``/assets/prices``), until "Latest materialization" is shown;
* its partitions tab (``?view=partitions``), until the partition counts and the first
  hospital's key are shown;
* the runs page filtered to failures (``/runs?q[0]=status:FAILURE``), until the newest failed
  run's id is listed;

each cold (first visit, after the code location has loaded) and warm (second visit), and from
the command line ``price-pipeline failed-hospitals --json`` (a fresh process, as an operator runs
it; wall and CPU seconds), checking that it lists exactly the failed hospitals. For scale, the
same process start with nothing but ``import dagster`` is timed too: ``cli_vs_import`` is the
answer's share above that floor. One ``RESULT`` line; exit 1 when an answer takes longer than
``--max-seconds`` (3) or the view lists the wrong hospitals.

    flock /tmp/pp-heavy.lock .venv/bin/python benchmarks/operator_view.py --hospitals 6100
    flock /tmp/pp-heavy.lock .venv/bin/python benchmarks/operator_view.py --hospitals 6100 --postgres

Populating 6,100 runs into SQLite takes ~10 minutes on the loaded 2-core machine; ``--home DIR``
keeps the populated instance in DIR and reuses it on the next call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from price_pipeline.defs.ops.retries import FAILURE_KIND, FAILURE_REASON  # noqa: E402
from price_pipeline.lib.ops.deadletter import INGESTION_ASSET_NAMES  # noqa: E402
from price_pipeline.settings import PROJECT_ROOT  # noqa: E402
from price_pipeline_tests.browser import chromium_binary, headless_chromium  # noqa: E402
from price_pipeline_tests.integration.dagster_process import dagster_dev, wait_for  # noqa: E402

POPULATED = "operator_view_populated.json"
REASON = "permanent: not a price file: an HTML page was served instead of data"


def _store(instance: dg.DagsterInstance, run_id: str, event, *, level: str = "DEBUG", message: str = "") -> None:
    from dagster._core.events.log import EventLogEntry

    instance.store_event(EventLogEntry(
        error_info=None, level=level, user_message=message, run_id=run_id, timestamp=time.time(),
        step_key=event.step_key, job_name="ingest_hospital", dagster_event=event,
    ))


def write_failed_run_events(instance: dg.DagsterInstance, run_id: str, key: str) -> None:
    """What a real ingest_hospital run failing at its download leaves in the event log."""
    # Dagster internals, as its own tests write run history (no public API stores a step failure).
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType
    from dagster._core.execution.plan.objects import StepFailureData, UserFailureData
    from dagster._utils.error import SerializableErrorInfo

    for asset in INGESTION_ASSET_NAMES:
        _store(instance, run_id, DagsterEvent.build_asset_materialization_planned_event(
            "ingest_hospital", asset, AssetMaterializationPlannedData(dg.AssetKey(asset), partition=key)))
    _store(instance, run_id, DagsterEvent(
        event_type_value=DagsterEventType.STEP_FAILURE.value,
        job_name="ingest_hospital",
        step_key="mrf_files",
        event_specific_data=StepFailureData(
            error=SerializableErrorInfo(REASON, [], "Failure"),
            user_failure_data=UserFailureData(
                label="intentional-failure", description=REASON,
                metadata={FAILURE_KIND: dg.MetadataValue.text("permanent"),
                          FAILURE_REASON: dg.MetadataValue.text(REASON)},
            ),
        ),
    ), level="ERROR", message=REASON)
    _store(instance, run_id, DagsterEvent(
        event_type_value=DagsterEventType.RUN_FAILURE.value, job_name="ingest_hospital",
        message='Execution of run for "ingest_hospital" failed. Steps failed: [\'mrf_files\'].',
    ), level="ERROR")


def populate(instance: dg.DagsterInstance, n: int, failed_fraction: float, seed: int) -> tuple[list[str], dict]:
    """Partitions and run history; returns (keys, {failed hospital: run id})."""
    from dagster._core.test_utils import create_run_for_test

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
            write_failed_run_events(instance, run.run_id, key)
        else:
            instance.report_runless_asset_event(
                dg.AssetMaterialization("prices", partition=key, metadata={"dagster/row_count": rng.randrange(50, 50000)})
            )
    return keys, failed


def timed_page(page, url: str, *needles: str, seen: dict, name: str, timeout: float = 120) -> float:
    """Seconds from navigation until every needle is in the page's text; the text is kept in ``seen``."""
    page.navigate("about:blank")
    time.sleep(0.3)
    started = time.perf_counter()
    page.navigate(url)
    seen[name] = page.wait_for_text(*needles, timeout=timeout)[:1500]
    return round(time.perf_counter() - started, 2)


def timed_process(command: list[str], env: dict) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(wall, 2), round(cpu, 2), out


@contextlib.contextmanager
def postgres_database(admin_url: str):
    """A fresh database (yielding its URL), dropped afterwards."""
    import sqlalchemy as sa

    name = f"fix13_ops_operator_view_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()


def prepare_home(home: Path, pg_url: str | None) -> None:
    """DAGSTER_HOME with the embedded instance configuration; on PostgreSQL the same file plus
    Postgres run, event and schedule storage (compute logs stay local: no page here reads them)."""
    from price_pipeline.launch import prepare_dagster_home

    prepare_dagster_home(home, production=False)
    if pg_url is None:
        return
    config = (PROJECT_ROOT / "dagster.yaml").read_text()
    target = home / "dagster.yaml"
    target.unlink()
    target.write_text(config + "\nstorage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n")
    os.environ["DAGSTER_PG_URL"] = pg_url
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.upgrade()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hospitals", type=int, default=6100)
    p.add_argument("--failed-fraction", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-seconds", type=float, default=3.0)
    p.add_argument("--postgres", action="store_true", help="run and event storage on PostgreSQL (fresh database)")
    p.add_argument("--postgres-admin-url", default=os.environ.get(
        "PRICE_PIPELINE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--home", type=Path, default=None,
                   help="(SQLite) keep the populated DAGSTER_HOME here and reuse it when already populated")
    p.add_argument("--skip-browser", action="store_true", help="time the command line only")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / ".work" / "operator_view.json")
    args = p.parse_args(argv)
    binary = chromium_binary()
    if binary is None and not args.skip_browser:
        sys.exit("no chromium on PATH (Debian: apt-get install -y chromium)")

    storage = "postgres" if args.postgres else "sqlite"
    with contextlib.ExitStack() as stack:
        tmp_path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pp-operator-view-")))
        pg_url = stack.enter_context(postgres_database(args.postgres_admin_url)) if args.postgres else None
        home = args.home if (args.home and not args.postgres) else tmp_path / "dagster_home"
        marker = home / POPULATED
        populated = json.loads(marker.read_text()) if marker.exists() else None
        if populated and (populated["hospitals"], populated["failed_fraction"], populated["seed"]) != (
                args.hospitals, args.failed_fraction, args.seed):
            sys.exit(f"{home} holds another population ({populated['hospitals']} hospitals): use another --home")
        prepare_home(home, pg_url)
        if populated is None:
            started = time.perf_counter()
            with dg.DagsterInstance.from_config(str(home)) as instance:
                keys, failed = populate(instance, args.hospitals, args.failed_fraction, args.seed)
            populate_s = round(time.perf_counter() - started, 1)
            marker.write_text(json.dumps({"hospitals": args.hospitals, "failed_fraction": args.failed_fraction,
                                          "seed": args.seed, "keys": keys, "failed": failed, "populate_s": populate_s}))
        else:
            keys, failed, populate_s = populated["keys"], populated["failed"], populated["populate_s"]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            newest_failed_run = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=1)[0]
        print(f"{storage}: {len(keys)} partitions, {len(failed)} failed runs (written in {populate_s} s)", flush=True)

        env = {
            "PRICE_PIPELINE_DATA_DIR": str(tmp_path / "data"),
            # nothing to discover: the sensors must not change the history being measured
            "PRICE_PIPELINE_CATALOG_URL": "http://127.0.0.1:9/api/v1/hospitals",
            **({"DAGSTER_PG_URL": pg_url} if pg_url else {}),
        }
        timings: dict[str, list[float]] = {}
        seen: dict[str, str] = {}
        if not args.skip_browser:
            timings.update(browser_timings(binary, home, env, tmp_path, keys, newest_failed_run.run_id, seen))

        cli_env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        python = str(Path(sys.executable))
        cli = str(Path(sys.executable).parent / "price-pipeline")
        cpu: dict[str, list[float]] = {}
        for _ in range(2):
            wall, cpu_s, _ = timed_process([python, "-c", "import dagster"], cli_env)
            timings.setdefault("import_dagster", []).append(wall)
            cpu.setdefault("import_dagster", []).append(cpu_s)
            wall, cpu_s, out = timed_process([cli, "failed-hospitals", "--json"], cli_env)
            timings.setdefault("cli_failed_hospitals", []).append(wall)
            cpu.setdefault("cli_failed_hospitals", []).append(cpu_s)
        listed = {json.loads(line)["hospital_key"] for line in out.splitlines() if line.strip()}

    load = os.getloadavg()
    answers = {k: v for k, v in timings.items() if k != "import_dagster"}
    worst = {name: max(values) for name, values in answers.items()}
    missed = [f"{name} {seconds} s > {args.max_seconds} s" for name, seconds in worst.items() if seconds > args.max_seconds]
    if listed != set(failed):
        missed.append(f"failed-hospitals listed {len(listed)} hospitals, {len(failed)} failed "
                      f"({len(listed - set(failed))} wrong, {len(set(failed) - listed)} missing)")
    ratios = {
        # the command's own work above a bare Python + Dagster start (the floor of any CLI call)
        "cli_vs_import": round(min(timings["cli_failed_hospitals"]) / min(timings["import_dagster"]), 2),
        "worst_vs_target": round(max(worst.values()) / args.max_seconds, 2),
    }
    for page in ("asset_page", "partitions_tab", "failed_runs"):
        if page in timings:
            ratios[f"{page}_cold_vs_warm"] = round(timings[page][0] / max(timings[page][1], 0.01), 2)
    report = {"storage": storage, "hospitals": args.hospitals, "failed": len(failed), "listed": len(listed),
              "populate_s": populate_s, "timings_s": timings, "cpu_s": cpu, "ratios": ratios,
              "loadavg_after": [round(x, 2) for x in load], "missed": missed, "page_text": seen}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for m in missed:
        print(f"MISSED: {m}")
    print("RESULT " + " ".join([
        f"storage={storage}", f"hospitals={args.hospitals}", f"failed={len(failed)}", f"listed={len(listed)}",
        *(f"{k}_s={'/'.join(str(v) for v in vs)}" for k, vs in timings.items()),
        f"cli_cpu_s={'/'.join(str(v) for v in cpu['cli_failed_hospitals'])}",
        *(f"{k}={v}" for k, v in ratios.items()),
        f"load1={load[0]:.1f}", f"ok={'no' if missed else 'yes'}"]), flush=True)
    return 1 if missed else 0


def browser_timings(binary: str, home: Path, env: dict, tmp_path: Path, keys: list[str], failed_run_id: str,
                    seen: dict) -> dict:
    """Cold and warm seconds of the three pages, in headless Chromium against ``dagster dev``
    (on the dagster.yaml prepare_home wrote)."""
    import urllib.request

    timings: dict[str, list[float]] = {}
    with dagster_dev(home, env, prepare=False) as (_, port):
        base = f"http://127.0.0.1:{port}"

        def up():
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(up, timeout=240, what="the Dagster webserver")
        with headless_chromium(binary, log_path=tmp_path / "chromium.log") as page:
            # the code location must be loaded before the asset page can render (not an operator's
            # wait once the platform runs: it loads once, at start)
            page.navigate(f"{base}/locations")
            page.wait_for_text("Loaded", timeout=300)
            for _ in range(2):
                # the latest materialization's row count, not just the heading (shown even when empty)
                timings.setdefault("asset_page", []).append(timed_page(
                    page, f"{base}/assets/prices", "Latest materialization", "Row count", seen=seen, name="asset_page"))
                timings.setdefault("partitions_tab", []).append(timed_page(
                    page, f"{base}/assets/prices?view=partitions", f"{len(keys):,}", keys[0],
                    seen=seen, name="partitions_tab"))
                timings.setdefault("failed_runs", []).append(timed_page(
                    page, f"{base}/runs?q%5B0%5D=status%3AFAILURE", failed_run_id[:8], seen=seen, name="failed_runs"))
    return timings


if __name__ == "__main__":
    raise SystemExit(main())
