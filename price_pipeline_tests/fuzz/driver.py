"""Drive a fuzz run: a process pool over input indices, counts, distinct failures, the RESULT line."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from . import runner
from .runner import Config

CLASSES = ("crash", "hang", "memory", "rss", "false_ok", "mismatch")


@dataclass
class Summary:
    """Counts of a fuzz run and its distinct failures (first example of each signature)."""

    inputs: int = 0
    calls: int = 0
    must_fail: int = 0
    compare_plain: int = 0
    violations: Counter = field(default_factory=Counter)  # class -> inputs with it
    by_signature: dict = field(default_factory=dict)  # signature -> {count, first record}
    by_family: Counter = field(default_factory=Counter)
    failing_inputs: int = 0
    peak_rss_mb: float = 0.0
    peak_rss_family: str = ""
    seconds: float = 0.0
    slowest_call_s: float = 0.0
    code: str | None = None
    worker_rss_mb: float = 0.0

    def add(self, rec: dict) -> None:
        self.inputs += 1
        self.calls += len(rec["seconds"])
        self.must_fail += bool(rec["must_fail"])
        self.compare_plain += bool(rec["compare_plain"])
        self.by_family[rec["family"]] += 1
        if rec["max_rss_mb"] > self.peak_rss_mb:
            self.peak_rss_mb, self.peak_rss_family = rec["max_rss_mb"], rec["label"][:80]
        self.slowest_call_s = max([self.slowest_call_s] + [s or 0 for s in rec["seconds"].values()])
        if rec["violations"]:
            self.failing_inputs += 1
            for cls in {v["class"] for v in rec["violations"]}:
                self.violations[cls] += 1
            for v in rec["violations"]:
                entry = self.by_signature.setdefault(v["signature"], {"count": 0, "first": rec, "violation": v})
                entry["count"] += 1

    @property
    def ok(self) -> bool:
        return not self.failing_inputs

    def result_line(self, target_inputs: int) -> str:
        met = self.ok and self.inputs >= target_inputs
        rate = self.inputs / self.seconds if self.seconds else 0.0
        counts = " ".join(f"{c}={self.violations.get(c, 0)}" for c in CLASSES)
        return (f"RESULT {'PASS' if met else 'FAIL'} inputs={self.inputs} target_inputs={target_inputs} "
                f"calls={self.calls} {counts} failing_inputs={self.failing_inputs} "
                f"distinct_failures={len(self.by_signature)} must_fail_inputs={self.must_fail} "
                f"compare_plain_inputs={self.compare_plain} peak_rss_mb={self.peak_rss_mb:.0f} "
                f"slowest_call_s={self.slowest_call_s:.1f} seconds={self.seconds:.0f} inputs_per_s={rate:.1f} "
                f"code={self.code}")

    def report(self, out=sys.stdout) -> None:
        """Distinct failures, most frequent first, each with one repro line."""
        for sig, e in sorted(self.by_signature.items(), key=lambda kv: -kv[1]["count"]):
            rec = e["first"]
            print(f"FAIL x{e['count']} {sig}\n    first: #{rec['index']} {rec['label'][:160]}"
                  f" seed-file={rec['seed']} must_fail={rec['must_fail']!r}\n"
                  f"    saved: {rec.get('saved')}\n    repro: {rec.get('repro')}", file=out)


def _batches(indices: list[int], size: int) -> list[list[int]]:
    # Interleave so each batch mixes families and both workers get a similar load.
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def run_fuzz(cfg: Config, indices: list[int], *, jobs: int = 2, batch: int = 16, progress_every: float = 30.0,
             out=sys.stdout) -> Summary:
    """Run ``indices`` on ``jobs`` worker processes; prints progress and failures as they come."""
    os.makedirs(cfg.work_dir, exist_ok=True)
    summary = Summary()
    t0 = time.perf_counter()
    last = t0
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=runner.init_worker,
                             initargs=(cfg,)) as pool:
        info = pool.submit(runner.worker_info).result()
        summary.code, summary.worker_rss_mb = info["code"], info["baseline_rss_mb"]
        print(f"fuzz: seed={cfg.seed} inputs={len(indices)} jobs={jobs} code={summary.code} "
              f"worker_rss_mb={summary.worker_rss_mb} mem_limit_mb={cfg.mem_limit_mb} "
              f"timeout={cfg.timeout_base}s+{cfg.timeout_per_mib}s/MiB work_dir={cfg.work_dir}", file=out, flush=True)
        futures = [pool.submit(runner.run_batch, b) for b in _batches(indices, batch)]
        seen: set[str] = set()
        for fut in as_completed(futures):
            for rec in fut.result():
                summary.add(rec)
                for v in rec["violations"]:
                    if v["signature"] not in seen:
                        seen.add(v["signature"])
                        print(f"NEW {v['signature']}  #{rec['index']} {rec['label'][:120]}\n    repro: {rec['repro']}",
                              file=out, flush=True)
            now = time.perf_counter()
            if now - last >= progress_every:
                last = now
                print(f"  {summary.inputs}/{len(indices)} inputs, {now - t0:.0f}s, "
                      f"{summary.inputs / (now - t0):.1f}/s, failing {summary.failing_inputs}, "
                      f"peak rss {summary.peak_rss_mb:.0f} MB", file=out, flush=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def families_table(summary: Summary) -> str:
    """``family=inputs`` for every family run."""
    return ", ".join(f"{f}={n}" for f, n in sorted(summary.by_family.items()))
