#!/usr/bin/env python3
"""Parse-to-Parquet throughput and memory benchmark (issue 3: "Speed and memory").

Not part of the test run. Generates ~``--size-mb`` files of each CMS layout with the shared
deterministic generator ``gen_mrf.py`` (tall; wide with 50 payer|plan groups; JSON), caches
them in ``--work-dir``, then measures, each in its own subprocess and on the same file:

* ours: ``price_pipeline.lib.parse.mrf.parse_to_parquet``;
* tall baseline: DuckDB ``read_csv`` -> ``COPY ... TO parquet``;
* wide baseline: DuckDB ``UNPIVOT`` of the 50 payer|plan column groups -> Parquet;
* JSON baseline: ``ijson.items(f, 'standard_charge_information.item')`` flattened to one row
  per payer record (one per charge without payers), written to Parquet in Arrow batches.

Every measurement is repeated ``--repeat`` times and the median is reported. Peak RSS is
the larger of the child's ``ru_maxrss`` (``os.wait4``) and the sampled sum of the RSS of the
child's whole process tree (so worker processes, if any, are counted). Finally a 3x larger
tall file is parsed (ours only) to show that memory does not grow with the file size.

Prints a table, then ONE line ``RESULT ...``; exits 1 when a target is missed:
tall/wide ratio >= 1.0, JSON ratio >= 2.0, peak RSS <= 1024 MB for every format and for the
3 GB tall file, and the 3 GB RSS within 25% (+64 MB) of the 1 GB tall RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAYERS = 50
SEED = 7
RSS_CEILING_MB = 1024
TARGETS = {"tall": 1.0, "wide": 1.0, "json": 2.0}
EXT = {"tall": "csv", "wide": "csv", "json": "json"}
CALIBRATION_ROWS = {"tall": 40_000, "wide": 4_000, "json": 2_000}


# ---------------------------------------------------------------------------------------
# File generation (cached)
# ---------------------------------------------------------------------------------------
def _gen(gen_mrf: Path, fmt: str, rows: int, out: Path, jobs: int) -> dict:
    cmd = [sys.executable, str(gen_mrf), "--format", fmt, "--rows", str(rows), "--payers", str(PAYERS),
           "--seed", str(SEED), "--out", str(out), "--jobs", str(jobs)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stderr.strip().splitlines()[-1])


def ensure_file(gen_mrf: Path, work: Path, fmt: str, size_mb: int, jobs: int) -> Path:
    """Generate (once) a file of about ``size_mb`` MB; the row count comes from a small sample."""
    cal = work / f"calibration_{fmt}.json"
    if cal.exists():
        info = json.loads(cal.read_text())
    else:
        tmp = work / f"calibration_{fmt}.tmp"
        info = _gen(gen_mrf, fmt, CALIBRATION_ROWS[fmt], tmp, jobs)
        tmp.unlink()
        cal.write_text(json.dumps(info))
    rows = max(1, round(size_mb * 1e6 * info["data_rows"] / info["bytes"]))
    out = work / f"{fmt}_{size_mb}mb_r{rows}_p{PAYERS}_s{SEED}.{EXT[fmt]}"
    if out.exists():
        return out
    tmp = out.with_suffix(".partial")
    print(f"generating {out.name} ...", file=sys.stderr, flush=True)
    summary = _gen(gen_mrf, fmt, rows, tmp, jobs)
    tmp.rename(out)
    print(f"  {summary['bytes'] / 1e6:.0f} MB in {summary['seconds']:.0f} s", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------------------------------
# The measured workloads (run in a child process: ``parse_bench.py --run KIND SRC OUT``)
# ---------------------------------------------------------------------------------------
def run_ours(src: str, out: str) -> int:
    from price_pipeline.lib.parse.mrf import parse_to_parquet

    s = parse_to_parquet(src, out)
    if not s.ok:
        raise SystemExit(f"parse failed: {[f.as_dict() for f in s.findings[:5]]}")
    return s.rows_parsed


def _duck():
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads=2")
    con.execute("SET preserve_insertion_order=false")
    return con


# DuckDB at its best: explicit dialect (no sniffing), all_varchar (no type detection/casting; our
# parser also reads every column as text before cleaning), parallel reading, Parquet's default
# (snappy) compression, threads=2 and preserve_insertion_order=false (see _duck).
_READ_CSV = ("read_csv(?, header=true, skip=2, delim=',', quote='\"', escape='\"', new_line='\\n', "
             "all_varchar=true, parallel=true, strict_mode=false)")


def run_duckdb_tall(src: str, out: str) -> int:
    con = _duck()
    con.execute(f"COPY (SELECT * FROM {_READ_CSV}) TO '{out}' (FORMAT parquet)", [src])  # noqa: S608
    return con.execute("SELECT count(*) FROM read_parquet(?)", [out]).fetchone()[0]


def _wide_groups(src: str) -> tuple[list[str], list[tuple[str, list[str]]], list[str]]:
    """Base columns and the payer|plan groups (same 9 fields each) of a wide file's row 3."""
    with open(src, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        next(rows)
        next(rows)
        cols = next(rows)
    fields: list[str] = []
    groups: dict[str, dict[str, str]] = {}
    base = []
    for c in cols:
        parts = c.split("|")
        if len(parts) >= 3 and parts[0] != "code":
            if parts[0] == "standard_charge" and len(parts) == 4:
                payer_plan, fld = "|".join(parts[1:3]), parts[3]
            elif parts[0] != "standard_charge":
                payer_plan, fld = "|".join(parts[1:3]), parts[0]
            else:
                base.append(c)
                continue
            groups.setdefault(payer_plan, {})[fld] = c
            if fld not in fields:
                fields.append(fld)
        else:
            base.append(c)
    out = [(pp, [g.get(f) for f in fields]) for pp, g in groups.items()]
    return base, out, fields


def run_duckdb_wide(src: str, out: str) -> int:
    base, groups, fields = _wide_groups(src)
    con = _duck()

    def q(c):
        return '"' + c.replace('"', '""') + '"'

    ons = ", ".join("(" + ", ".join(q(c) for c in cols) + ") AS " + q(pp) for pp, cols in groups)
    # With several value columns DuckDB drops a row when any value is NULL, so keep NULLs and drop
    # only the all-empty payer|plan groups (as our parser does).
    vals = ", ".join(q(f) for f in fields)
    sql = (f"COPY (SELECT * FROM {_READ_CSV} UNPIVOT INCLUDE NULLS (({vals}) FOR payer_plan IN ({ons})) "  # noqa: S608
           f"WHERE coalesce({vals}) IS NOT NULL) TO '{out}' (FORMAT parquet)")
    con.execute(sql, [src])
    return con.execute("SELECT count(*) FROM read_parquet(?)", [out]).fetchone()[0]


def run_ijson(src: str, out: str) -> int:
    """A fair ijson baseline: items() (yajl2_c), flattened column-wise, Parquet in batches."""
    import ijson
    import pyarrow as pa
    import pyarrow.parquet as pq

    s, f64 = pa.string(), pa.float64()
    codes_t = pa.list_(pa.struct([("code", s), ("type", s)]))
    schema = pa.schema([
        ("source_path", s), ("description", s), ("codes", codes_t), ("modifiers", s), ("setting", s),
        ("billing_class", s), ("drug_unit_of_measurement", f64), ("drug_type_of_measurement", s),
        ("gross_charge", f64), ("discounted_cash", f64), ("minimum", f64), ("maximum", f64),
        ("payer_name", s), ("plan_name", s), ("negotiated_dollar", f64), ("negotiated_percentage", f64),
        ("negotiated_algorithm", s), ("estimated_amount", f64), ("median_amount", f64),
        ("percentile_10th", f64), ("percentile_90th", f64), ("count", s), ("methodology", s),
        ("additional_payer_notes", s), ("additional_generic_notes", s),
    ])
    payer_keys = [("payer_name", "payer_name"), ("plan_name", "plan_name"),
                  ("standard_charge_dollar", "negotiated_dollar"),
                  ("standard_charge_percentage", "negotiated_percentage"),
                  ("standard_charge_algorithm", "negotiated_algorithm"), ("estimated_amount", "estimated_amount"),
                  ("median_amount", "median_amount"), ("10th_percentile", "percentile_10th"),
                  ("90th_percentile", "percentile_90th"), ("count", "count"), ("methodology", "methodology"),
                  ("additional_payer_notes", "additional_payer_notes")]
    names = schema.names
    cols: dict[str, list] = {n: [] for n in names}
    ap = {n: cols[n].append for n in names}
    writer = pq.ParquetWriter(out, schema, compression="zstd", compression_level=1)
    total = 0
    pending = 0
    empty_payer = {}
    with open(src, "rb") as fh:
        for i, it in enumerate(ijson.items(fh, "standard_charge_information.item", use_float=True)):
            drug = it.get("drug_information") or {}
            for j, sc in enumerate(it.get("standard_charges") or ()):
                mods = sc.get("modifier_code")
                mods = "|".join(mods) if mods else None
                payers = sc.get("payers_information") or (empty_payer,)
                for k, p in enumerate(payers):
                    ap["source_path"](f"standard_charge_information[{i}].standard_charges[{j}]"
                                      f".payers_information[{k}]")
                    ap["description"](it.get("description"))
                    ap["codes"](it.get("code_information"))
                    ap["modifiers"](mods)
                    ap["setting"](sc.get("setting"))
                    ap["billing_class"](sc.get("billing_class"))
                    ap["drug_unit_of_measurement"](drug.get("unit"))
                    ap["drug_type_of_measurement"](drug.get("type"))
                    ap["gross_charge"](sc.get("gross_charge"))
                    ap["discounted_cash"](sc.get("discounted_cash"))
                    ap["minimum"](sc.get("minimum"))
                    ap["maximum"](sc.get("maximum"))
                    ap["additional_generic_notes"](sc.get("additional_generic_notes"))
                    for key, dst in payer_keys:
                        ap[dst](p.get(key))
                    pending += 1
            if pending >= 131_072:
                writer.write_table(pa.Table.from_pydict(cols, schema=schema))
                total += pending
                pending = 0
                for n in names:
                    cols[n].clear()
    if pending:
        writer.write_table(pa.Table.from_pydict(cols, schema=schema))
        total += pending
    writer.close()
    return total


RUNNERS = {"ours": run_ours, "duckdb_tall": run_duckdb_tall, "duckdb_wide": run_duckdb_wide, "ijson": run_ijson}


def child_main(kind: str, src: str, out: str) -> None:
    t0 = time.perf_counter()
    rows = RUNNERS[kind](src, out)
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "rows": rows}))


# ---------------------------------------------------------------------------------------
# Measurement harness
# ---------------------------------------------------------------------------------------
def _tree_rss_kb(pid: int) -> int:
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measure(kind: str, src: Path, out: Path) -> dict:
    """Run one workload in a child process; wall seconds (in-child), rows, peak RSS (MB)."""
    if out.exists():
        out.unlink()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--run", kind, str(src), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO))
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            done.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out_b, err_b = proc.stdout.read(), proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed on {src.name}: {err_b.decode(errors='replace')[-2000:]}")
    res = json.loads(out_b.decode().strip().splitlines()[-1])
    res["rss_mb"] = max(peak[0], ru.ru_maxrss) / 1024
    # CPU seconds of the whole child (all its threads, start-up included): unlike wall time,
    # hardly affected by other load on the machine, so it shows how much work each side does.
    res["cpu_s"] = ru.ru_utime + ru.ru_stime
    res["out_mb"] = out.stat().st_size / 1e6
    out.unlink()
    return res


def measure_median(kind: str, src: Path, out: Path, repeat: int) -> dict:
    runs = [measure(kind, src, out) for _ in range(repeat)]
    secs = statistics.median(r["seconds"] for r in runs)
    return {"seconds": secs, "all_seconds": [round(r["seconds"], 2) for r in runs], "rows": runs[0]["rows"],
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "rss_mb": max(r["rss_mb"] for r in runs), "out_mb": runs[0]["out_mb"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gen-mrf", type=Path, default=REPO.parent / "shared" / "tools" / "gen_mrf.py")
    ap.add_argument("--size-mb", type=int, default=1000)
    ap.add_argument("--work-dir", type=Path, default=REPO / "benchmarks" / ".work")
    ap.add_argument("--skip-3gb", action="store_true", help="skip the 3x-size tall file (RSS growth check)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--formats", default="tall,wide,json")
    ap.add_argument("--jobs", type=int, default=2, help="generator processes")
    ap.add_argument("--run", nargs=3, metavar=("KIND", "SRC", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.run:
        child_main(*a.run)
        return 0
    if not a.gen_mrf.exists():
        print(f"gen_mrf.py not found at {a.gen_mrf}; pass --gen-mrf PATH", file=sys.stderr)
        return 2
    a.work_dir.mkdir(parents=True, exist_ok=True)
    formats = [f for f in a.formats.split(",") if f]
    baseline = {"tall": "duckdb_tall", "wide": "duckdb_wide", "json": "ijson"}
    lines = []
    hdr = (f"{'format':<6} {'side':<12} {'file MB':>8} {'rows':>11} {'sec':>7} {'MB/s':>7} {'rows/s':>10} "
           f"{'peak RSS MB':>11} {'CPU s':>6}  runs(s)")
    results: dict[str, dict] = {}
    failures = []
    for fmt in formats:
        src = ensure_file(a.gen_mrf, a.work_dir, fmt, a.size_mb, a.jobs)
        mb = src.stat().st_size / 1e6
        ours = measure_median("ours", src, a.work_dir / f"out_{fmt}_ours.parquet", a.repeat)
        base = measure_median(baseline[fmt], src, a.work_dir / f"out_{fmt}_base.parquet", a.repeat)
        ratio = (mb / ours["seconds"]) / (mb / base["seconds"])
        results[fmt] = {"ours": ours, "base": base, "ratio": ratio, "mb": mb}
        for side, r in (("ours", ours), (baseline[fmt], base)):
            lines.append(f"{fmt:<6} {side:<12} {mb:>8.0f} {r['rows']:>11,} {r['seconds']:>7.2f} "
                         f"{mb / r['seconds']:>7.1f} {r['rows'] / r['seconds']:>10,.0f} {r['rss_mb']:>11.0f} "
                         f"{r['cpu_s']:>6.1f}  {r['all_seconds']}")
        lines.append(f"{fmt:<6} ratio ours/baseline = {ratio:.2f} (target >= {TARGETS[fmt]}); "
                     f"CPU seconds baseline/ours = {base['cpu_s'] / ours['cpu_s']:.2f} (information only)")
        print(lines[-3], lines[-2], lines[-1], sep="\n", file=sys.stderr, flush=True)
        if ratio < TARGETS[fmt]:
            failures.append(f"{fmt} ratio {ratio:.2f} < {TARGETS[fmt]}")
        if ours["rss_mb"] > RSS_CEILING_MB:
            failures.append(f"{fmt} peak RSS {ours['rss_mb']:.0f} MB > {RSS_CEILING_MB}")
    rss_3gb = None
    if not a.skip_3gb and "tall" in formats:
        src3 = ensure_file(a.gen_mrf, a.work_dir, "tall", 3 * a.size_mb, a.jobs)
        r3 = measure_median("ours", src3, a.work_dir / "out_tall3_ours.parquet", 1)
        mb3 = src3.stat().st_size / 1e6
        rss_3gb = r3["rss_mb"]
        lines.append(f"{'tall':<6} {'ours (3x)':<12} {mb3:>8.0f} {r3['rows']:>11,} {r3['seconds']:>7.2f} "
                     f"{mb3 / r3['seconds']:>7.1f} {r3['rows'] / r3['seconds']:>10,.0f} {rss_3gb:>11.0f} "
                     f"{r3['cpu_s']:>6.1f}  {r3['all_seconds']}")
        rss_1 = results["tall"]["ours"]["rss_mb"]
        if rss_3gb > RSS_CEILING_MB:
            failures.append(f"3x tall peak RSS {rss_3gb:.0f} MB > {RSS_CEILING_MB}")
        if rss_3gb > rss_1 * 1.25 + 64:
            failures.append(f"RSS grows with size: {rss_1:.0f} MB (1x) -> {rss_3gb:.0f} MB (3x)")
    print(hdr)
    print("\n".join(lines))
    for f in failures:
        print(f"MISSED: {f}")
    figs = [f"{fmt}_ratio={results[fmt]['ratio']:.2f}" for fmt in formats]
    figs += [f"{fmt}_mbps={results[fmt]['mb'] / results[fmt]['ours']['seconds']:.1f}" for fmt in formats]
    figs.append(f"max_rss_mb={max(results[f]['ours']['rss_mb'] for f in formats):.0f}")
    if rss_3gb is not None:
        figs.append(f"rss_3gb_mb={rss_3gb:.0f}")
    figs.append(f"ok={'yes' if not failures else 'no'}")
    print("RESULT " + " ".join(figs), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        sys.path.insert(0, str(REPO))
    sys.exit(main())
