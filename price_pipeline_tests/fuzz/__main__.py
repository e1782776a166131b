"""``python -m price_pipeline_tests.fuzz``: the full fuzz run, or one input again (``--repro``).

    .venv/bin/python -m price_pipeline_tests.fuzz                      # 20,000 inputs, 2 processes
    .venv/bin/python -m price_pipeline_tests.fuzz --inputs 500 --start 20000
    .venv/bin/python -m price_pipeline_tests.fuzz --repro 1234          # rebuild, run, show input 1234
    .venv/bin/python -m price_pipeline_tests.fuzz --code-root ../other-checkout   # another checkout's parser

Ends with one ``RESULT`` line; exits 1 when any input violated the oracle or fewer inputs than
``--target-inputs`` ran. ``make fuzz`` runs it under ``flock /tmp/pp-heavy.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .driver import families_table, run_fuzz
from .mutate import generate
from .runner import Config

DEFAULT_INPUTS = 20000


def _repro(cfg: Config, index: int) -> int:
    from . import runner

    cfg.save_failures = True
    runner.init_worker(cfg)
    inp = generate(index, cfg.seed)
    print(f"input #{index} (seed {cfg.seed}): {inp.label}\n  seed file: {inp.seed}  ext: {inp.ext}  "
          f"must_fail: {inp.must_fail!r}  compare_plain: {inp.compare_plain}  parse_opts: {inp.parse_opts}")
    rec = runner.run_one(index, keep=True)
    for target, res in rec["results"].items():
        res = dict(res)
        for k in ("log", "traceback"):
            if res.get(k):
                print(f"--- {target} {k} ---\n{res.pop(k)}")
        print(f"{target}: {json.dumps(res, default=str)[:2000]}")
    print(f"saved: {rec.get('saved')}")
    if rec.get("saved") and " " not in rec["saved"]:
        print(f"also: .venv/bin/price-pipeline parse {rec['saved']} --out /tmp/fuzz-out ; "
              f".venv/bin/price-pipeline validate {rec['saved']}")
    for v in rec["violations"]:
        print(f"VIOLATION {v['signature']}")
    print("PASS" if not rec["violations"] else "FAIL")
    return 1 if rec["violations"] else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m price_pipeline_tests.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=DEFAULT_INPUTS, help="inputs to run (default 20000)")
    ap.add_argument("--start", type=int, default=0, help="first input index (default 0)")
    ap.add_argument("--seed", type=int, default=1, help="master seed (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--target-inputs", type=int, default=None,
                    help="fail unless at least this many inputs ran (default: --inputs)")
    ap.add_argument("--work-dir", default=os.path.join("benchmarks", ".work", "fuzz"),
                    help="failing inputs are saved under WORK_DIR/failures (default benchmarks/.work/fuzz)")
    ap.add_argument("--code-root", default=None, help="checkout whose price_pipeline to test (default: this one)")
    ap.add_argument("--timeout", type=float, default=15.0, help="wall-time limit per call, seconds (+1 s/MiB)")
    ap.add_argument("--mem-limit-mb", type=int, default=4096, help="RLIMIT_AS per call (default 4096)")
    ap.add_argument("--max-rss-mb", type=int, default=1024, help="oracle: peak RSS per call (default 1024)")
    ap.add_argument("--family", action="append", default=None, help="only these mutation families")
    ap.add_argument("--repro", type=int, default=None, metavar="INDEX", help="run one input verbosely")
    a = ap.parse_args(argv)
    cfg = Config(seed=a.seed, work_dir=a.work_dir, code_root=a.code_root, timeout_base=a.timeout,
                 mem_limit_mb=a.mem_limit_mb, max_rss_mb=a.max_rss_mb)
    if a.repro is not None:
        return _repro(cfg, a.repro)
    indices = list(range(a.start, a.start + a.inputs))
    if a.family:
        from .mutate import family_of

        indices = [i for i in indices if family_of(i) in a.family]
    summary = run_fuzz(cfg, indices, jobs=a.jobs)
    summary.report()
    print(f"families: {families_table(summary)}")
    target = a.target_inputs if a.target_inputs is not None else len(indices)
    print(summary.result_line(target), flush=True)
    return 0 if summary.ok and summary.inputs >= target else 1


if __name__ == "__main__":
    sys.exit(main())
