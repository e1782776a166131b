"""A canonical fingerprint of the demo's outputs, to prove a refactoring changed none of them.

``run`` starts the demo end to end on a fresh instance exactly as ``make run`` does (the launch
command in a temporary DAGSTER_HOME and data folder, the bundled demo catalog on a free port, no
clicks): the catalog sensor discovers the hospitals, ingestion runs, the
``analytics_after_ingestion`` sensor builds the dbt marts, the exports and the published marts.
It waits, as ``price_pipeline_tests/integration/test_demo_end_to_end.py`` does, until every
hospital's latest ingestion run has finished and the exports and published marts were written by
a build that started after the last ingestion ended, then stops Dagster and fingerprints the
data folder. ``fingerprint`` does the last step on an existing data folder; ``compare`` compares
two fingerprints and exits 1 when they differ.

The fingerprint (JSON, sorted keys) holds, per table:

* ``prices`` (``lake/prices/*/prices.parquet``), ``prices_history`` and ``price_versions``
  (``lake/prices_history/``): every hospital's rows together;
* ``warehouse/<mart>``: every ``mart_*`` table of the DuckDB warehouse;
* ``published/<name>``: every table published to ``lake/marts/<name>/latest/``;
* ``exports/<file>``: every file under ``lake/exports/`` (CSV read as text, all columns VARCHAR,
  so the comparison sees exactly what the file says);

its row count, its columns and types, and ``content_sha256``: the SHA-256 of the sorted SHA-256s
of its rows (each row cast to DuckDB's text form of a struct, NULLs distinct from the string
'NULL'), so the row order of a file does not matter and every value does. Export files also get
``bytes_sha256`` of the raw file; ``compare`` reports byte differences of files whose bytes were
equal in both fingerprints' own ``--repeat`` runs, i.e. files that are deterministic.

Columns that depend on the run rather than on the data are replaced by their NULL flag (the
value is dropped, whether it is set is kept): ``EXCLUDED_COLUMNS`` below; URLs of the demo
catalog have its origin (a free port per run) replaced (``NORMALISED_COLUMNS``). The fingerprint
lists every such column per table (``excluded_columns``) so a reviewer sees them. Files
whose name or content is a run's timestamp (the dated snapshots ``marts/<name>/built_at=…/``,
``marts/_latest.json``) are not fingerprinted; their ``latest/`` copies are.

    .venv/bin/python benchmarks/demo_fingerprint.py run --out fp.json [--repeat 2] [--keep DIR]
    .venv/bin/python benchmarks/demo_fingerprint.py fingerprint DATA_DIR --out fp.json
    .venv/bin/python benchmarks/demo_fingerprint.py compare baseline.json fp.json

``make demo-fingerprint`` runs it (under /tmp/pp-heavy.lock) and compares with
``BASELINE=path`` when given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The demo e2e test's own helpers: the tool waits for the demo exactly as that test does.
from price_pipeline_tests.integration.dagster_process import (  # noqa: E402
    free_port,
    latest_run_per_hospital,
    stop_dagster,
)

# The command `make run` runs (Makefile, target `run`), after `make manifest`.
LAUNCH_COMMAND = [sys.executable, "-m", "price_pipeline.launch"]
DEADLINE_SECONDS = 900  # the e2e test allows 300 s on an idle machine; this one shares its cores
SENSOR_INTERVAL_SECONDS = "5"  # as in the e2e test

# Column name -> why its value depends on the run, not on the demo's data. Wherever such a
# column appears, its value is replaced by `value IS NULL`.
EXCLUDED_COLUMNS = {
    "first_seen_at": "wall-clock time the pipeline first normalised the file version",
    "last_seen_at": "wall-clock time the pipeline last saw the file version listed",
    "superseded_at": "wall-clock time the file version stopped being current",
    "validated_at": "wall-clock time the conformance report row was written",
    "built_at": "wall-clock time of the build that published the table",
    "ingested_at": "wall-clock time of the ingestion run",
    "run_id": "Dagster run id",
}

# Column name -> why part of its value depends on the run: the demo catalog is served on a free
# port, so the origin of its URLs (http://127.0.0.1:<port>) is replaced by a placeholder and the
# rest of the URL is compared.
NORMALISED_COLUMNS = {
    "url": "the demo catalog's port differs between runs: the origin http://127.0.0.1:<port> is replaced",
}
DEMO_ORIGIN_PATTERN = r"^https?://127\.0\.0\.1:[0-9]+"

FINGERPRINT_VERSION = 1


# ---------------------------------------------------------------- fingerprinting a data folder


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def table_fingerprint(con: duckdb.DuckDBPyConnection, relation: str) -> dict:
    """Rows, columns, excluded columns and the order-free content hash of one relation."""
    columns = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # noqa: S608
    selected, excluded = [], {}
    for name, *_ in columns:
        if name in EXCLUDED_COLUMNS:
            excluded[name] = EXCLUDED_COLUMNS[name]
            selected.append(f"({_quote(name)} IS NULL) AS {_quote(name + '__is_null')}")
        elif name in NORMALISED_COLUMNS:
            excluded[name] = NORMALISED_COLUMNS[name]
            selected.append(f"regexp_replace({_quote(name)}, '{DEMO_ORIGIN_PATTERN}', 'http://demo') AS {_quote(name)}")
        else:
            selected.append(_quote(name))
    rows, content = con.execute(
        f"""
        SELECT count(*), coalesce(sha256(string_agg(row_hash, ',' ORDER BY row_hash)), '')
        FROM (SELECT sha256(CAST(r AS VARCHAR)) AS row_hash
              FROM (SELECT {", ".join(selected)} FROM {relation}) AS r)
        """  # noqa: S608
    ).fetchone()
    return {
        "rows": rows,
        "columns": [[name, column_type] for name, column_type, *_ in columns],
        "excluded_columns": excluded,
        "content_sha256": content,
    }


def _parquet(glob: str) -> str:
    return f"read_parquet({_sql_string(glob)}, hive_partitioning = false, union_by_name = true)"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_data_dir(data_dir: Path) -> dict:
    """The fingerprint of a demo's data folder (lake and warehouse)."""
    lake = data_dir / "lake"
    tables: dict[str, dict] = {}
    con = duckdb.connect()
    try:
        lake_tables = {
            "prices": lake / "prices" / "*" / "prices.parquet",
            "prices_history": lake / "prices_history" / "*" / "file_sha256=*.parquet",
            "price_versions": lake / "prices_history" / "*" / "versions.parquet",
        }
        for name, glob in lake_tables.items():
            if list(glob.parent.parent.glob(f"{glob.parent.name}/{glob.name}")):
                tables[name] = table_fingerprint(con, _parquet(str(glob)))

        published = lake / "marts"
        for latest in sorted(published.glob("*/latest")):
            tables[f"published/{latest.parent.name}"] = table_fingerprint(con, _parquet(str(latest / "*.parquet")))

        for path in sorted((lake / "exports").rglob("*")):
            if not path.is_file():
                continue
            name = f"exports/{path.relative_to(lake / 'exports').as_posix()}"
            if path.suffix == ".parquet":
                entry = table_fingerprint(con, _parquet(str(path)))
            elif path.suffix == ".csv":
                entry = table_fingerprint(
                    con, f"read_csv({_sql_string(str(path))}, header = true, all_varchar = true, auto_detect = true)"
                )
            else:
                entry = {}
            entry["bytes_sha256"] = _file_sha256(path)
            entry["bytes"] = path.stat().st_size
            tables[name] = entry

        warehouse = data_dir / "warehouse.duckdb"
        if warehouse.exists():
            con.execute(f"ATTACH {_sql_string(str(warehouse))} AS warehouse (READ_ONLY)")
            marts = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'warehouse' "
                "AND table_type = 'BASE TABLE' AND table_name LIKE 'mart\\_%' ESCAPE '\\' ORDER BY 1"
            ).fetchall()]
            for mart in marts:
                tables[f"warehouse/{mart}"] = table_fingerprint(con, f"warehouse.main.{_quote(mart)}")
    finally:
        con.close()
    return {"version": FINGERPRINT_VERSION, "excluded_column_rules": {**EXCLUDED_COLUMNS, **NORMALISED_COLUMNS},
            "tables": tables}


# ---------------------------------------------------------------- running the demo


class DemoFailed(RuntimeError):
    """The demo's final analytics build failed: waiting longer cannot help."""


def _demo_finished(home: Path):
    """True once every hospital's newest ingestion run has finished (a failed batch replaced by its
    split runs), no run is in flight, and `exports` and `published_marts` were both written by a
    run that started after the last ingestion ended. Mirrors test_demo_end_to_end.py."""
    import dagster as dg

    range_start = "dagster/asset_partition_range_start"  # Dagster's tag of a run over a partition range
    with dg.DagsterInstance.from_config(str(home)) as instance:
        order = list(instance.get_dynamic_partitions("hospitals"))
        if not order:
            return False
        if instance.get_run_records(dg.RunsFilter(statuses=[
            dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
        ])):
            return False
        records = instance.get_run_records(dg.RunsFilter(job_name="ingest_hospital"))
        latest = latest_run_per_hospital(instance, records)
        if set(latest) != set(order):
            return False
        if any(r.dagster_run.tags.get(range_start) and r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
               for r in latest.values()):
            return False
        last_end = max(r.end_time or 0 for r in records)
        for build in instance.get_run_records(dg.RunsFilter(job_name="build_analytics")):
            if (build.start_time or 0) > last_end and build.dagster_run.status == dg.DagsterRunStatus.FAILURE:
                raise DemoFailed(f"build_analytics run {build.dagster_run.run_id} failed")
        for asset in ("exports", "published_marts"):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            if event is None:
                return False
            build = instance.get_run_record_by_id(event.run_id)
            if build is None or (build.start_time or 0) <= last_end:
                return False
        statuses = {key: r.dagster_run.status.value for key, r in latest.items()}
        return statuses


def run_demo(work: Path) -> tuple[Path, dict]:
    """Run the demo in `work` (fresh DAGSTER_HOME and data folder); return the data folder and
    each hospital's latest ingestion status."""
    home, data = work / "dagster_home", work / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRICE_PIPELINE_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "PRICE_PIPELINE_MODE": "embedded",
        "PRICE_PIPELINE_DATA_DIR": str(data),
        "PRICE_PIPELINE_DEMO_PORT": str(free_port()),
        "PRICE_PIPELINE_UI_HOST": "127.0.0.1",
        "PRICE_PIPELINE_UI_PORT": str(free_port()),
        "PRICE_PIPELINE_CATALOG_SENSOR_INTERVAL": SENSOR_INTERVAL_SECONDS,
    })
    home.mkdir(parents=True)
    started = time.monotonic()
    with (work / "launch.log").open("wb") as log:
        process = subprocess.Popen(LAUNCH_COMMAND, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        statuses = None
        try:
            while time.monotonic() - started < DEADLINE_SECONDS:
                if process.poll() is not None:
                    raise RuntimeError(f"the demo exited early ({process.returncode}); see {work / 'launch.log'}")
                try:
                    statuses = _demo_finished(home)
                except DemoFailed as exc:
                    raise RuntimeError(f"{exc}; see {work / 'launch.log'}") from exc
                except Exception:  # the instance may still be initialising its storage
                    statuses = None
                if statuses:
                    break
                time.sleep(3)
            else:
                raise TimeoutError(f"the demo did not finish within {DEADLINE_SECONDS}s; see {work / 'launch.log'}")
        finally:
                    stop_dagster(process, home)
    print(f"demo finished in {time.monotonic() - started:.0f}s: {len(statuses)} hospitals, "
          f"{sum(1 for s in statuses.values() if s == 'SUCCESS')} ingested", flush=True)
    return data, statuses


# ---------------------------------------------------------------- comparing


def compare(a: dict, b: dict) -> list[str]:
    """The differences between two fingerprints, one line each (empty: identical)."""
    differences = []
    ta, tb = a["tables"], b["tables"]
    for name in sorted(set(ta) - set(tb)):
        differences.append(f"{name}: only in the first")
    for name in sorted(set(tb) - set(ta)):
        differences.append(f"{name}: only in the second")
    for name in sorted(set(ta) & set(tb)):
        x, y = ta[name], tb[name]
        for field in ("rows", "columns", "excluded_columns", "content_sha256"):
            if x.get(field) != y.get(field):
                differences.append(f"{name}: {field} differs ({x.get(field)!r} vs {y.get(field)!r})"
                                   if field != "content_sha256" else f"{name}: content differs")
        # Raw bytes only where each side's repeated runs agreed on them (deterministic files).
        if "bytes_sha256" in x and x.get("bytes_deterministic", True) and y.get("bytes_deterministic", True) \
                and x["bytes_sha256"] != y.get("bytes_sha256"):
            differences.append(f"{name}: raw bytes differ")
    return differences


def merge_repeats(fingerprints: list[dict]) -> dict:
    """One fingerprint from repeated runs; fails unless their contents agree, and marks each file
    whose raw bytes differed between the runs as not byte-deterministic."""
    first = fingerprints[0]
    for other in fingerprints[1:]:
        content = [d for d in compare(first, other) if not d.endswith("raw bytes differ")]
        if content:
            raise SystemExit("the demo is not deterministic between two runs:\n" + "\n".join(content))
    for name, table in first["tables"].items():
        if "bytes_sha256" in table:
            table["bytes_deterministic"] = all(f["tables"][name]["bytes_sha256"] == table["bytes_sha256"]
                                               for f in fingerprints)
    first["repeats"] = len(fingerprints)
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the demo on a fresh instance and fingerprint its outputs")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--repeat", type=int, default=1, help="runs; with 2+ the runs must agree")
    run.add_argument("--keep", type=Path, help="keep each run's DAGSTER_HOME and data under this folder")
    run.add_argument("--compare", type=Path, help="a baseline fingerprint to compare with (exit 1 on a difference)")
    one = sub.add_parser("fingerprint", help="fingerprint an existing data folder")
    one.add_argument("data_dir", type=Path)
    one.add_argument("--out", type=Path, required=True)
    cmp = sub.add_parser("compare", help="compare two fingerprints (exit 1 on a difference)")
    cmp.add_argument("first", type=Path)
    cmp.add_argument("second", type=Path)
    args = parser.parse_args(argv)

    if args.command == "compare":
        return _report(json.loads(args.first.read_text()), json.loads(args.second.read_text()))
    if args.command == "fingerprint":
        result = fingerprint_data_dir(args.data_dir)
    else:
        results = []
        for i in range(args.repeat):
            work = Path(tempfile.mkdtemp(prefix="demo-fingerprint-"))
            try:
                data, statuses = run_demo(work)
                result = fingerprint_data_dir(data)
                result["hospital_runs"] = dict(sorted(statuses.items()))
                results.append(result)
            finally:
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(work), str(args.keep / f"run-{i + 1}"))
                else:
                    shutil.rmtree(work, ignore_errors=True)
        result = merge_repeats(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    excluded = sorted({f"{name}.{c}" for name, t in result["tables"].items() for c in t.get("excluded_columns", {})})
    print(f"fingerprint of {len(result['tables'])} tables written to {args.out}; "
          f"run-dependent columns (timestamps: only the NULL flag kept; url: origin replaced): {', '.join(excluded) or 'none'}")
    if args.command == "run" and args.compare:
        return _report(json.loads(args.compare.read_text()), result)
    return 0


def _report(a: dict, b: dict) -> int:
    differences = compare(a, b)
    for line in differences:
        print(line)
    print(f"RESULT demo_fingerprint tables={len(b['tables'])} differences={len(differences)}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
