"""Overhead of one hospital run: Dagster vs the same library calls without Dagster.

A national run is ~6,100 hospital runs, so the fixed cost of each (process start, code
location import, run bookkeeping) matters as much as parsing speed. This benchmark serves the
demo catalog on localhost and, for the same hospital, times as separate processes:

* ``dagster``: ``dagster asset materialize --select mrf_files,mrf_parsed,prices --partition K``
  against the ``ingestion`` code location on a fresh SQLite instance (what a run worker does);
* ``library``: a plain Python process running the same three library steps the assets run
  (``fetch_hospital_files``, ``parse_hospital_files``, ``build_hospital_prices_with_history``)
  on its own lake — the baseline.

It prints both times and the overhead, ends with one ``RESULT`` line and exits non-zero when
the Dagster overhead per hospital run exceeds ``--max-overhead-seconds`` (default 6).

    .venv/bin/python benchmarks/run_one_hospital.py [--repeat 3] [--hospital ccn-360301]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from price_pipeline.demo.server import DemoCatalogServer  # noqa: E402
from price_pipeline.launch import prepare_dagster_home  # noqa: E402

BIN = Path(sys.executable).parent

LIBRARY_RUN = """
import sys, tempfile
from price_pipeline.settings import Settings
from price_pipeline.lib.fetch import fetch_hospital_files
from price_pipeline.lib.parse import parse_hospital_files, record_header_claims
from price_pipeline.lib.prices import build_hospital_prices_with_history
from price_pipeline.lib.discovery.catalog import fetch_catalog, hospital_key
from price_pipeline.lib.registry import Registry
from price_pipeline.lib.lake.storage import open_lake
key = sys.argv[1]
settings = Settings.from_env()
lake, registry = open_lake(settings.lake_url), Registry(settings.registry_url)
hospital = next(h for h in fetch_catalog(settings.catalog_url) if hospital_key(h) == key)
with tempfile.TemporaryDirectory() as scratch:
    fetch_hospital_files(key, [f.url for f in hospital.files], lake=lake, registry=registry,
                         settings=settings, scratch_dir=scratch)
    versions = parse_hospital_files(key, lake=lake, scratch_dir=scratch, settings=settings)
    record_header_claims(key, versions, registry=registry)
    rows = build_hospital_prices_with_history(key, lake=lake, scratch_dir=scratch).rows
print(rows)
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"command failed: {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospital", default="ccn-360301", help="demo hospital key (default: 2,000-row tall file)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-overhead-seconds", type=float, default=6.0)
    args = parser.parse_args()

    with DemoCatalogServer() as server, tempfile.TemporaryDirectory(prefix="pp-bench-") as tmp:
        tmp_path = Path(tmp)
        host = server.catalog_url.split("/")[2]
        base_env = {
            **os.environ,
            "PRICE_PIPELINE_CATALOG_URL": server.catalog_url,
            "PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS": host,
        }
        home = tmp_path / "dagster_home"
        prepare_dagster_home(home, production=False)
        dagster_env = {**base_env, "DAGSTER_HOME": str(home), "PRICE_PIPELINE_DATA_DIR": str(tmp_path / "dagster")}
        materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "price_pipeline.definitions", "-a", "ingestion"]
        timed([*materialize, "--select", "hospital_catalog,hospitals"], dagster_env)
        subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"], env=dagster_env, capture_output=True, check=False
        )
        add = f"import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('hospitals', ['{args.hospital}'])"
        subprocess.run([sys.executable, "-c", add], env=dagster_env, check=True)

        dagster_times, library_times = [], []
        for i in range(args.repeat):
            dagster_times.append(
                timed([*materialize, "--select", "mrf_files,mrf_parsed,prices", "--partition", args.hospital], dagster_env)
            )
            library_env = {**base_env, "PRICE_PIPELINE_DATA_DIR": str(tmp_path / f"library-{i}")}
            library_times.append(timed([sys.executable, "-c", LIBRARY_RUN, args.hospital], library_env))

    dagster_s, library_s = statistics.median(dagster_times), statistics.median(library_times)
    overhead = dagster_s - library_s
    print(f"{'side':<10}{'median s':>10}  runs")
    print(f"{'dagster':<10}{dagster_s:>10.2f}  {[round(t, 2) for t in dagster_times]}")
    print(f"{'library':<10}{library_s:>10.2f}  {[round(t, 2) for t in library_times]}")
    print(f"dagster/library = {dagster_s / library_s:.2f}; overhead per hospital run = {overhead:.2f} s")
    ok = overhead <= args.max_overhead_seconds
    if not ok:
        print(f"MISSED: overhead {overhead:.2f} s > {args.max_overhead_seconds} s")
    print(
        "RESULT "
        + " ".join(
            f"{k}={v}"
            for k, v in {
                "dagster_s": round(dagster_s, 2),
                "library_s": round(library_s, 2),
                "ratio": round(dagster_s / library_s, 2),
                "overhead_s": round(overhead, 2),
                "ok": "yes" if ok else "no",
            }.items()
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
