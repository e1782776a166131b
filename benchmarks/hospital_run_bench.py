"""A big hospital's whole run against the speed of its parser (issue 12).

Generates (or reuses, cached in ``--work-dir``) four CMS v3.0 files with the project's own
generator (:mod:`price_pipeline.demo.gen_mrf`): 1 GB tall (20 payer/plan pairs), 1 GB wide
(50 payer groups), 1 GB JSON and 3 GB tall (``--scale`` multiplies every size). Each is served
over local HTTP by the demo server (a ``--data-dir`` holding only that file), and timed, each
command a separate process:

(a) the ``ingest_hospital`` job for that hospital (``dagster job execute ... -j ingest_hospital``
    with the hospital's partition tag: the in-process run a run worker executes) on a fresh
    Dagster instance and lake, after the catalog assets ran; peak RSS of the run process and
    its children (summed over the process tree, sampled every 50 ms) and the per-step times
    (from the run's step stats); then the same job again, with nothing changed (the rerun);
(b) ``price-pipeline parse`` of the same file;
(c) once, DuckDB (``preserve_insertion_order=false``, ``memory_limit='1GB'``) copying the tall
    file to Parquet: the machine's yardstick.

It also runs every demo hospital once (fresh instance) and prints the run-time distribution
over the demo hospitals and the three 1 GB files (mean, p50, p95, max).

``--tiny`` measures the fixed cost of a run instead: one small demo hospital's ``ingest_hospital``
run (the same command), ``--repeat`` times, each on a fresh instance; per run the process's wall
and CPU seconds (user + system, children included), the run's own seconds (start to end in the
run record), and the steps and events it stored. ``--code-root DIR`` runs another checkout's
``price_pipeline`` (a worktree of main, say) with this environment: a before/after in one session.

Targets (exit status 1 when one is missed):
  * each 1 GB file's run <= 3x its parse; the tall run <= 4x DuckDB;
  * peak RSS of every run <= 1.5 GB; the 3 GB file's peak within 10 % of the 1 GB tall file's;
  * a rerun of an unchanged hospital <= 10 % of its first run.

    flock /tmp/pp-heavy.lock .venv/bin/python benchmarks/hospital_run_bench.py            # full size
    .venv/bin/python benchmarks/hospital_run_bench.py --scale 0.02 --no-demo                # quick look
    .venv/bin/python benchmarks/hospital_run_bench.py --tiny --repeat 3                     # fixed cost per run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from price_pipeline.demo.server import DemoCatalogServer  # noqa: E402
from price_pipeline.launch import prepare_dagster_home  # noqa: E402

BIN = Path(sys.executable).parent
MB = 2**20
STEPS = ("mrf_files", "mrf_parsed", "prices", "price_changes", "conformance_reports")
# name, format, size (MB at --scale 1), payer/plan pairs
FILES = (
    ("tall", "tall", 1024, 20),
    ("wide", "wide", 1024, 50),
    ("json", "json", 1024, 20),
    ("tall3", "tall", 3072, 20),
)
TARGET_RUN_OVER_PARSE = 3.0
TARGET_RUN_OVER_DUCKDB = 4.0
TARGET_PEAK_BYTES = 1.5 * 2**30
TARGET_PEAK_GROWTH = 1.10
TARGET_RERUN = 0.10

STEP_STATS = """
import json, sys
import dagster as dg
with dg.DagsterInstance.get() as instance:
    record = instance.get_run_records(limit=1)[0]
    stats = instance.get_run_step_stats(record.dagster_run.run_id)
    print(json.dumps({"status": record.dagster_run.status.value,
                      "steps": {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in stats}}))
"""

# The newest run's step count, event count (everything it stored) and its own duration.
RUN_COUNTS = """
import json
import dagster as dg
with dg.DagsterInstance.get() as instance:
    record = instance.get_run_records(limit=1)[0]
    run_id = record.dagster_run.run_id
    events = instance.get_records_for_run(run_id, limit=100_000).records
    stats = instance.get_run_step_stats(run_id)
    kinds = {}
    for e in events:
        kind = e.event_log_entry.dagster_event_type
        kinds[kind.value if kind else "LOG"] = kinds.get(kind.value if kind else "LOG", 0) + 1
    print(json.dumps({"status": record.dagster_run.status.value, "steps": len(stats),
                      "step_keys": sorted(s.step_key for s in stats), "events": len(events), "kinds": kinds,
                      "run_s": (record.end_time or 0) - (record.start_time or 0)}))
"""

DUCKDB_COPY = """
import sys, duckdb
con = duckdb.connect(config={"preserve_insertion_order": False, "memory_limit": "1GB"})
con.execute(f"COPY (SELECT * FROM read_csv('{sys.argv[1]}', skip=2, header=true)) TO '{sys.argv[2]}' (FORMAT parquet)")
"""


# --- measuring ---------------------------------------------------------------------------------

LAST_CPU = [0.0]  # CPU seconds of the last run_measured process


def _tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants, in bytes (0 when it is gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(command: list[str], env: dict[str, str], *, check: bool = True,
                 cwd: Path = ROOT) -> tuple[float, int, str]:
    """(seconds, peak tree RSS bytes, stdout) of one process; its CPU seconds (user + system,
    waited-for children included) in ``LAST_CPU[0]``."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    LAST_CPU[0] = _children_cpu() - cpu_before
    stop.set()
    sampler.join()
    if check and proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(command)}\n{out[-3000:]}\n{err[-5000:]}")
    return elapsed, peak, out


# --- files -------------------------------------------------------------------------------------


def ensure_file(work: Path, fmt: str, size_mb: float, payers: int) -> Path:
    """The cached generated file (generated once, deterministic: seed 1)."""
    ext = "json" if fmt == "json" else "csv"
    label = f"{size_mb:g}".replace(".", "_")
    path = work / f"{fmt}-{label}mb-{payers}p-s1.{ext}"
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        subprocess.run([sys.executable, "-m", "price_pipeline.demo.gen_mrf", "--format", fmt, "--size-mb",
                        str(size_mb), "--payers", str(payers), "--seed", "1", "--out", str(path)], cwd=ROOT, check=True)
    return path


# --- one hospital run --------------------------------------------------------------------------


class Instance:
    """A fresh Dagster home + lake pointed at one demo server, with the catalog assets run."""

    def __init__(self, tmp: Path, server: DemoCatalogServer, code_root: Path = ROOT):
        host = server.catalog_url.split("/")[2]
        home = tmp / "dagster_home"
        prepare_dagster_home(home, production=False)
        self.code_root = code_root
        self.env = {
            **os.environ,
            **({"PYTHONPATH": str(code_root)} if code_root != ROOT else {}),
            "PRICE_PIPELINE_CATALOG_URL": server.catalog_url,
            "PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS": host,
            "DAGSTER_HOME": str(home),
            "PRICE_PIPELINE_DATA_DIR": str(tmp / "data"),
        }
        run_measured([str(BIN / "dagster"), "asset", "materialize", "-m", "price_pipeline.definitions", "-a",
                      "ingestion", "--select", "hospital_catalog,hospitals"], self.env, cwd=code_root)

    def hospital_keys(self) -> list[str]:
        """The catalog's hospital keys, added as partitions (the catalog sensor's job in production)."""
        code = (
            "import dagster as dg, json\n"
            "from price_pipeline.lib.discovery.catalog import fetch_catalog, hospital_key\n"
            "from price_pipeline.settings import Settings\n"
            "keys = [hospital_key(h) for h in fetch_catalog(Settings.from_env().catalog_url)]\n"
            "with dg.DagsterInstance.get() as i:\n"
            "    i.add_dynamic_partitions('hospitals', keys)\n"
            "print(json.dumps(keys))\n"
        )
        return json.loads(subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                                         check=True).stdout)

    def run(self, key: str) -> dict:
        """The ingest_hospital job for ``key``, as its own process; seconds, peak RSS, steps."""
        seconds, peak, _ = run_measured(
            [str(BIN / "dagster"), "job", "execute", "-m", "price_pipeline.definitions", "-a", "ingestion",
             "-j", "ingest_hospital", "--tags", json.dumps({"dagster/partition": key})],
            self.env, check=False, cwd=self.code_root)
        stats = json.loads(subprocess.run([sys.executable, "-c", STEP_STATS], env=self.env, capture_output=True,
                                          text=True, check=True).stdout)
        return {"seconds": seconds, "peak": peak, "status": stats["status"], "steps": stats["steps"]}

    def run_counted(self, key: str) -> dict:
        """The ingest_hospital job for ``key`` as its own process: wall and CPU seconds of the
        process, the run's own seconds, its steps and stored events."""
        seconds, _, _ = run_measured(
            [str(BIN / "dagster"), "job", "execute", "-m", "price_pipeline.definitions", "-a", "ingestion",
             "-j", "ingest_hospital", "--tags", json.dumps({"dagster/partition": key})],
            self.env, check=False, cwd=self.code_root)
        cpu = LAST_CPU[0]
        counts = json.loads(subprocess.run([sys.executable, "-c", RUN_COUNTS], env=self.env, capture_output=True,
                                           text=True, check=True, cwd=self.code_root).stdout)
        return {"seconds": seconds, "cpu": cpu, **counts}


def bench_file(name: str, path: Path, tmp: Path, code_root: Path = ROOT) -> dict:
    data = tmp / "data"
    (data / "files").mkdir(parents=True)
    if _same_fs(path, data):
        os.link(path, data / "files" / path.name)
    else:
        shutil.copy(path, data / "files")
    ccn = f"99{[f[0] for f in FILES].index(name):04d}"
    catalog = {"hospitals": [{"id": f"bench-{name}", "ccn": ccn,
                              "name": f"Benchmark hospital {name}", "state": "NY",
                              "files": [{"name": path.name}]}]}
    (data / "catalog.json").write_text(json.dumps(catalog))
    with DemoCatalogServer(data_dir=data) as server:
        instance = Instance(tmp / "instance", server, code_root)
        (key,) = instance.hospital_keys()
        first = instance.run(key)
        rerun = instance.run(key)
    parse_s, parse_peak, _ = run_measured([str(BIN / "price-pipeline"), "parse", str(path), "--out", str(tmp / "parse")],
                                          dict(os.environ))
    return {"name": name, "bytes": path.stat().st_size, "run": first, "rerun": rerun, "parse_s": parse_s,
            "parse_peak": parse_peak}


def _same_fs(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def duckdb_yardstick(path: Path, tmp: Path) -> float:
    seconds, _, _ = run_measured([sys.executable, "-c", DUCKDB_COPY, str(path), str(tmp / "duck.parquet")],
                                 dict(os.environ))
    return seconds


def demo_runs(tmp: Path) -> list[dict]:
    with DemoCatalogServer() as server:
        instance = Instance(tmp, server)
        out = []
        for key in instance.hospital_keys():
            result = instance.run(key)
            result["key"] = key
            out.append(result)
    return out


def tiny_runs(tmp: Path, key: str, repeat: int, code_root: Path) -> list[dict]:
    """``repeat`` first runs of one demo hospital, each on a fresh instance and lake."""
    out = []
    with DemoCatalogServer() as server:
        for i in range(repeat):
            instance = Instance(tmp / f"tiny-{i}", server, code_root)
            if key not in instance.hospital_keys():
                sys.exit(f"{key} is not a demo hospital")
            out.append(instance.run_counted(key))
    return out


def tiny_main(args: argparse.Namespace) -> int:
    """The fixed cost of one small hospital's run (see the module doc)."""
    code_root = args.code_root.resolve()
    with tempfile.TemporaryDirectory(prefix="pp-hrb-tiny-", dir=args.work_dir) as tmp:
        runs = tiny_runs(Path(tmp), args.hospital, args.repeat, code_root)
    print(f"{'run':>4}{'wall s':>8}{'CPU s':>8}{'run s':>8}{'steps':>7}{'events':>8}  status")
    for i, r in enumerate(runs):
        print(f"{i:>4}{r['seconds']:>8.2f}{r['cpu']:>8.2f}{r['run_s']:>8.2f}{r['steps']:>7}{r['events']:>8}  {r['status']}")
    print("steps: " + ", ".join(runs[-1]["step_keys"]))
    print("events by type: " + ", ".join(f"{k}={v}" for k, v in sorted(runs[-1]["kinds"].items())))
    fields = {
        "mode": "tiny", "hospital": args.hospital, "code_root": code_root.name, "runs": len(runs),
        "wall_s": round(statistics.median(r["seconds"] for r in runs), 2),
        "cpu_s": round(statistics.median(r["cpu"] for r in runs), 2),
        "run_s": round(statistics.median(r["run_s"] for r in runs), 2),
        "steps": runs[-1]["steps"], "events": runs[-1]["events"],
        "load1": round(os.getloadavg()[0], 2),
        "ok": "yes" if all(r["status"] == "SUCCESS" for r in runs) else "no",
    }
    print("RESULT " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return 0 if fields["ok"] == "yes" else 1


# --- report ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every file size (1.0 = 1 GB / 3 GB)")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / ".work" / "hospital_run")
    ap.add_argument("--only", nargs="*", choices=[f[0] for f in FILES], help="just these files")
    ap.add_argument("--no-demo", action="store_true", help="skip the demo hospitals' runs")
    ap.add_argument("--tiny", action="store_true", help="only the fixed cost of one small demo hospital's run")
    ap.add_argument("--hospital", default="ccn-450987", help="--tiny: the demo hospital (default: a 6 KB tall CSV)")
    ap.add_argument("--repeat", type=int, default=3, help="--tiny: runs, each on a fresh instance (medians)")
    ap.add_argument("--code-root", type=Path, default=ROOT,
                    help="whose price_pipeline the runs execute (another checkout; default this one)")
    args = ap.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        return tiny_main(args)
    chosen = [f for f in FILES if not args.only or f[0] in args.only]

    results, misses = [], []
    with tempfile.TemporaryDirectory(prefix="pp-hrb-", dir=args.work_dir) as tmp_root:
        tmp_root = Path(tmp_root)
        paths = {name: ensure_file(args.work_dir, fmt, round(size * args.scale, 3), payers)
                 for name, fmt, size, payers in chosen}
        duck_s = None
        if "tall" in paths:
            duck_s = duckdb_yardstick(paths["tall"], tmp_root)
            print(f"duckdb yardstick (tall -> parquet): {duck_s:.1f} s", flush=True)
        for name, path in paths.items():
            print(f"running {name} ({path.stat().st_size / MB:.0f} MB) ...", flush=True)
            results.append(bench_file(name, path, tmp_root / name, args.code_root.resolve()))
            r = results[-1]
            print(f"  run {r['run']['seconds']:.1f} s ({r['run']['status']}), rerun {r['rerun']['seconds']:.1f} s, "
                  f"parse {r['parse_s']:.1f} s", flush=True)
        demo = [] if args.no_demo else demo_runs(tmp_root / "demo")

    print()
    print(f"{'file':<7}{'MB':>7}{'run s':>8}{'parse s':>9}{'run MB/s':>10}{'run/parse':>11}{'peak RSS':>10}"
          f"{'rerun s':>9}{'rerun %':>9}  status")
    for r in results:
        run = r["run"]
        print(f"{r['name']:<7}{r['bytes'] / MB:>7.0f}{run['seconds']:>8.1f}{r['parse_s']:>9.1f}"
              f"{r['bytes'] / MB / run['seconds']:>10.1f}{run['seconds'] / r['parse_s']:>11.2f}"
              f"{run['peak'] / 2**30:>9.2f}G{r['rerun']['seconds']:>9.1f}"
              f"{100 * r['rerun']['seconds'] / run['seconds']:>8.1f}%  {run['status']}")
    print()
    print("per step (s)  " + "".join(f"{s:>20}" for s in STEPS))
    for r in results:
        for label, run in (("", r["run"]), ("rerun", r["rerun"])):
            print(f"{(r['name'] + ' ' + label):<14}" + "".join(f"{run['steps'].get(s, float('nan')):>20.2f}" for s in STEPS))
    if duck_s:
        print(f"\nDuckDB yardstick: {duck_s:.1f} s")

    by = {r["name"]: r for r in results}
    for r in results:
        run = r["run"]
        if run["status"] != "SUCCESS":
            misses.append(f"{r['name']}: run {run['status']}")
        if r["name"] != "tall3" and run["seconds"] > TARGET_RUN_OVER_PARSE * r["parse_s"]:
            misses.append(f"{r['name']}: run/parse {run['seconds'] / r['parse_s']:.2f} > {TARGET_RUN_OVER_PARSE}")
        if run["peak"] > TARGET_PEAK_BYTES:
            misses.append(f"{r['name']}: peak RSS {run['peak'] / 2**30:.2f} GB > 1.5 GB")
        if r["rerun"]["seconds"] > TARGET_RERUN * run["seconds"]:
            misses.append(f"{r['name']}: rerun {100 * r['rerun']['seconds'] / run['seconds']:.1f} % > 10 %")
    if duck_s and "tall" in by and by["tall"]["run"]["seconds"] > TARGET_RUN_OVER_DUCKDB * duck_s:
        misses.append(f"tall: run/duckdb {by['tall']['run']['seconds'] / duck_s:.2f} > {TARGET_RUN_OVER_DUCKDB}")
    growth = None
    if "tall" in by and "tall3" in by:
        growth = by["tall3"]["run"]["peak"] / by["tall"]["run"]["peak"]
        if growth > TARGET_PEAK_GROWTH:
            misses.append(f"tall3: peak {growth:.2f}x the 1 GB file's > {TARGET_PEAK_GROWTH}")

    distribution = [r["run"]["seconds"] for r in results if r["name"] != "tall3"] + [d["seconds"] for d in demo]
    if demo:
        print("\ndemo hospitals: " + ", ".join(f"{d['key']} {d['seconds']:.1f}s {d['status']}" for d in demo))
    if distribution:
        print(f"run time over {len(demo)} demo hospitals + {len(distribution) - len(demo)} generated files: "
              f"mean {statistics.mean(distribution):.1f} s, p50 {statistics.median(distribution):.1f} s, "
              f"p95 {pct(distribution, 0.95):.1f} s, max {max(distribution):.1f} s")
    for miss in misses:
        print(f"MISSED: {miss}")

    fields = {"scale": args.scale}
    for r in results:
        fields[f"{r['name']}_run_s"] = round(r["run"]["seconds"], 1)
        fields[f"{r['name']}_parse_s"] = round(r["parse_s"], 1)
        fields[f"{r['name']}_ratio"] = round(r["run"]["seconds"] / r["parse_s"], 2)
        fields[f"{r['name']}_peak_gb"] = round(r["run"]["peak"] / 2**30, 2)
        fields[f"{r['name']}_rerun_pct"] = round(100 * r["rerun"]["seconds"] / r["run"]["seconds"], 1)
    if duck_s:
        fields["duckdb_s"] = round(duck_s, 1)
        if "tall" in by:
            fields["tall_vs_duckdb"] = round(by["tall"]["run"]["seconds"] / duck_s, 2)
    if growth is not None:
        fields["tall3_peak_growth"] = round(growth, 2)
    if distribution:
        fields.update(mean_s=round(statistics.mean(distribution), 1), p50_s=round(statistics.median(distribution), 1),
                      p95_s=round(pct(distribution, 0.95), 1), max_s=round(max(distribution), 1))
    fields["ok"] = "no" if misses else "yes"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
