"""Speed benchmark: our validator vs the official CMS validator, side by side in one run.

    .venv/bin/python benchmarks/validator_speed.py [--csv-mb 1000] [--json-mb 200] [--repeat 2]

Generates (and caches in benchmarks/.work) a ~1 GB tall CSV and a ~200 MB JSON with the project's
generator (``price_pipeline/demo/gen_mrf.py``; ``$GEN_MRF`` to use another with the same options),
plus files of 1/4 the size for the memory-flatness check, then times each validator as a
separate process (ours: ``python -m price_pipeline.cli validate``; official: node
``hpt_validator_run.mjs``), ``--repeat`` times each, alternating, printing the median MB/s, peak
RSS and the throughput ratio of the medians (and the CPU seconds of both sides, which depend much
less on the machine's load than wall time), and a final ``RESULT ...`` line (sizes, MB/s, peak
RSS and CPU-s of both sides, ratios, load average). Exit status 1 when a ratio is < 5, the verdicts
differ, or our peak RSS grows with file size (more than 1.5x + 64 MB from the 1/4-size file to the
full one).

Bytecode: our side runs with a bytecode cache (``PYTHONPYCACHEPREFIX=benchmarks/.work/pycache``,
``PYTHONDONTWRITEBYTECODE`` dropped for that child only), as an installed package normally has its
``.pyc`` files; the size-check runs warm it. Without it every run compiles pandas, pyarrow and
jsonschema from source (~1.5 CPU-s per run on this machine, when the environment sets
``PYTHONDONTWRITEBYTECODE=1`` and the venv was installed without bytecode). ``--no-bytecode-cache``
measures that case.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, ".work")
GEN = os.environ.get("GEN_MRF", os.path.join(ROOT, "price_pipeline", "demo", "gen_mrf.py"))
RUNNER = os.path.join(HERE, "hpt_validator_run.mjs")


def ensure(fmt: str, mb: int) -> str:
    ext = "csv" if fmt == "tall" else "json"
    path = os.path.join(WORK, f"validator_speed_{fmt}_{mb}mb_pp.{ext}")  # (_pp: the project's generator)
    if not os.path.exists(path):
        subprocess.run([sys.executable, GEN, "--format", fmt, "--size-mb", str(mb * 1e6 / 2**20), "--payers", "50",
                        "--seed", "7", "--out", path + ".tmp"], check=True, capture_output=True)
        os.replace(path + ".tmp", path)
    return path


# VmHWM (this process's own peak), not ru_maxrss: at exec Linux carries the parent's peak RSS
# into the child's ru_maxrss.
_OURS = ("import sys; from price_pipeline.cli import main; rc = main(sys.argv[1:]); "
         "print('PEAK_RSS_KB', [x.split()[1] for x in open('/proc/self/status') if x.startswith('VmHWM:')][0], "
         "file=sys.stderr); sys.exit(rc)")


def ours_env(bytecode_cache: bool) -> dict:
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(WORK, "pycache")
    return env


def warm(path: str) -> None:
    """Read the file once so that both sides start with it in the page cache (on a busy machine
    it may have been evicted since the other side's run)."""
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


def _timed(cmd: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``cmd``; wall seconds and CPU seconds (user + system, all its threads and children).

    CPU seconds are much less sensitive than wall time to what else runs on the machine."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p, dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def ours(path: str, env: dict) -> tuple[float, int, dict, float]:
    """Our CLI in a fresh process; its own peak RSS (VmHWM of that process)."""
    p, dt, cpu = _timed([sys.executable, "-c", _OURS, "validate", path, "--max-errors", "100"], env)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    rss = int(next(x for x in p.stderr.splitlines() if x.startswith("PEAK_RSS_KB")).split()[1]) * 1024
    return dt, rss, json.loads(p.stdout.splitlines()[0]), cpu


def official(path: str, kind: str, node_dir: str) -> tuple[float, int, dict, float]:
    env = dict(os.environ, HPT_NODE_DIR=node_dir)
    p, dt, cpu = _timed(["node", "--max-old-space-size=8192", RUNNER, path, "3.0.0", kind, "100"], env)
    try:
        res = json.loads(p.stdout)
    except ValueError:
        res = {"crashed": (p.stdout + p.stderr)[-2000:]}
    if "crashed" in res:
        print(f"official validator failed on {path}: {res['crashed'][:500]}")
    return dt, int(res.get("peak_rss", 0)), res, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv-mb", type=int, default=1000)
    ap.add_argument("--json-mb", type=int, default=200)
    ap.add_argument("--node-dir", default=os.path.join(WORK, "node"))
    ap.add_argument("--repeat", type=int, default=2, help="runs per side and file (medians are reported)")
    ap.add_argument("--formats", default="tall,json", help="comma-separated subset of tall,json (default both)")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="run our side without a .pyc cache (compiles every import from source)")
    args = ap.parse_args(argv)
    env = ours_env(not args.no_bytecode_cache)
    if not os.path.exists(os.path.join(args.node_dir, "node_modules", "@cmsgov", "hpt-validator")):
        print(f"official validator not installed in {args.node_dir}; install it with:\n"
              f"  mkdir -p {args.node_dir} && cd {args.node_dir} && npm init -y && npm install @cmsgov/hpt-validator")
        return 2
    load0 = os.getloadavg()[0]
    os.chdir(ROOT)
    os.makedirs(WORK, exist_ok=True)
    wanted = set(args.formats.split(","))
    cases = [c for c in (("tall", args.csv_mb, "csv"), ("json", args.json_mb, "json")) if c[0] in wanted]
    ok = True
    summary = []
    # memory flatness: our peak RSS on a quarter-size file
    small_rss = {}
    for fmt, mb, _kind in cases:
        small = ensure(fmt, max(1, mb // 4))
        warm(small)
        dt, rss, rep, _cpu = ours(small, env)
        small_rss[fmt] = rss
        print(f"ours     {fmt:5} {os.path.getsize(small) / 1e6:8.1f} MB  {dt:7.2f} s  peak RSS {rss / 1e6:7.1f} MB "
              f"(size check) valid={rep['valid']}")
    print(f"{'who':8} {'fmt':5} {'size':>11} {'seconds':>9} {'MB/s':>8} {'peak RSS':>10}  valid")
    for fmt, mb, kind in cases:
        path = ensure(fmt, mb)
        size = os.path.getsize(path) / 1e6
        runs = []
        for _ in range(max(1, args.repeat)):  # back to back, alternating, so both sides see the same load
            warm(path)
            o = ours(path, env)
            warm(path)
            runs.append((o, official(path, kind, args.node_dir)))
        o_dt = statistics.median(o[0] for o, _ in runs)
        t_dt = statistics.median(t[0] for _, t in runs)
        o_rss = max(o[1] for o, _ in runs)
        t_rss = max(t[1] for _, t in runs)
        o_cpu = statistics.median(o[3] for o, _ in runs)
        t_cpu = statistics.median(t[3] for _, t in runs)
        o_rep, t_rep = runs[-1][0][2], runs[-1][1][2]
        print(f"{'':8} {fmt:5} runs: ours " + " ".join(f"{o[0]:.2f}" for o, _ in runs)
              + " s; official " + " ".join(f"{t[0]:.2f}" for _, t in runs) + " s; CPU-s (user+sys) ours "
              + " ".join(f"{o[3]:.2f}" for o, _ in runs) + ", official " + " ".join(f"{t[3]:.2f}" for _, t in runs))
        ratio = (size / o_dt) / (size / t_dt)
        grow = o_rss > small_rss[fmt] * 1.5 + 64e6
        print(f"{'ours':8} {fmt:5} {size:8.1f} MB {o_dt:9.2f} {size / o_dt:8.1f} {o_rss / 1e6:7.1f} MB  {o_rep['valid']}")
        print(f"{'official':8} {fmt:5} {size:8.1f} MB {t_dt:9.2f} {size / t_dt:8.1f} {t_rss / 1e6:7.1f} MB  "
              f"{t_rep.get('valid')}")
        print(f"{'ratio':8} {fmt:5} {ratio:.2f}x  (our RSS {small_rss[fmt] / 1e6:.0f} MB at 1/4 size -> "
              f"{o_rss / 1e6:.0f} MB at full size{', GROWS' if grow else ', flat'}); "
              f"CPU-s ratio {t_cpu / o_cpu:.2f}x (informative: ours uses 2 cores, the official 1)")
        ok &= ratio >= 5 and not grow and o_rep["valid"] == t_rep.get("valid")
        summary.append(f"{fmt}={size:.0f}MB ours={size / o_dt:.1f}MB/s official={size / t_dt:.1f}MB/s "
                       f"ratio={ratio:.2f} rss={o_rss / 1e6:.0f}MB official_rss={t_rss / 1e6:.0f}MB "
                       f"rss_quarter={small_rss[fmt] / 1e6:.0f}MB cpu_s={o_cpu:.1f}/{t_cpu:.1f}")
    summary.append(f"load={load0:.1f}->{os.getloadavg()[0]:.1f}")
    print("RESULT " + ("PASS " if ok else "FAIL ") + " ".join(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
