"""Run fuzz inputs through ``parse_to_parquet`` and ``validate_file``, each call in its own child
process under a memory and a wall-time limit, and judge the outcome.

Process layout: a pool of ``jobs`` worker processes (spawned: the parent imports nothing of the
code under test). Each worker imports the parser and validator once (and the modules they import
lazily on first use, learnt from one warm-up call in a throw-away child), then for every input
writes the file and ``fork()``s one child per call. A forked child starts with everything
imported — a call costs milliseconds of overhead, not the ~1 s of a fresh interpreter — and
dies alone. In the child:

* ``RLIMIT_AS`` (``mem_limit_mb``, default 4 GiB of address space: the parser's threads and
  allocator reserve ~1.6 GB of mostly untouched address space even on a tiny file) stops a
  runaway allocation before it starves the machine, and a watchdog thread kills the process
  once its RSS passes ``kill_rss_mb`` (2 GiB; checked every 20 ms), so a runaway ends in seconds;
  ``RLIMIT_CORE`` 0; ``RLIMIT_FSIZE`` 4 GiB;
* ``alarm()`` with the default action kills the child at the wall-time limit, whatever it is
  doing (a deadlocked thread, a C loop); :mod:`faulthandler` writes every thread's stack to the
  child's log one second before, and on SIGSEGV/SIGABRT/SIGBUS;
* an exception escaping the library call, or any uncaught exception in one of its threads
  (``threading.excepthook``), is a crash.

The parent reads the child's result from a pipe and its peak RSS from ``wait4`` (``ru_maxrss``:
this includes the pages the child shares with the worker, ~100-150 MB, so the figure is an
upper bound of the call's own memory).

Oracle per input (violation classes): ``crash`` (signal, uncaught exception in the call or a
thread, no result), ``hang`` (wall-time limit), ``memory`` (MemoryError under the address-space
limit), ``rss`` (peak RSS over ``max_rss_mb``, default 1024), ``false_ok`` (parse ``ok: true``
or validate ``valid: true`` on an input whose ``must_fail`` is set), ``mismatch`` (a re-packed
valid seed that parses or validates differently from the plain seed). See mutate.py for
``must_fail``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import json
import math
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field

from .mutate import FuzzInput, generate

TARGETS = {
    "parse": "price_pipeline_tests.fuzz.runner:target_parse",
    "validate": "price_pipeline_tests.fuzz.runner:target_validate",
}


@dataclass
class Config:
    """Everything a worker needs (picklable)."""

    seed: int = 1
    work_dir: str = "benchmarks/.work/fuzz"
    code_root: str | None = None  # run the parser/validator of another checkout
    timeout_base: float = 15.0  # seconds per call ...
    timeout_per_mib: float = 1.0  # ... plus this per MiB of (decompressed) payload
    mem_limit_mb: int = 4096  # RLIMIT_AS of each call's process
    max_rss_mb: int = 1024  # oracle: peak RSS of a call
    kill_rss_mb: int = 2048  # a call's process kills itself beyond this RSS (a runaway stops early)
    targets: dict = field(default_factory=lambda: dict(TARGETS))
    save_failures: bool = True
    warm: bool = True  # learn the lazily imported modules from warm-up calls of the targets
    python: str = sys.executable


# -- the calls under test (run inside the forked child) ----------------------------------------


def target_parse(path: str, out_dir: str, opts: dict) -> dict:
    """``parse_to_parquet`` as the ingest calls it (``opts``: the JSON reader's path switches)."""
    try:
        from price_pipeline.lib.parse import parse_to_parquet
    except ImportError:  # a --code-root checkout from before issue 17 (the parser was lib/mrf)
        from price_pipeline.lib.mrf import parse_to_parquet

    s = parse_to_parquet(path, os.path.join(out_dir, "out.parquet"), **opts)
    return {"ok": bool(s.ok), "rows_parsed": s.rows_parsed, "rows_quarantined": s.rows_quarantined,
            "format": s.format, "version": s.version, "compression": s.compression,
            "findings_total": s.findings_total,
            "error_rules": sorted({f.rule for f in s.findings if f.severity == "error"}),
            "rules": sorted({f.rule for f in s.findings})[:40]}


def target_validate(path: str, out_dir: str, opts: dict) -> dict:
    """``validate_file`` as the conformance asset calls it."""
    from price_pipeline.lib.validate import validate_file

    r = validate_file(path)
    return {"ok": bool(r.valid), "errors": r.errors, "errors_by_rule": dict(sorted(r.errors_by_rule.items())),
            "alerts_by_rule": dict(sorted(r.alerts_by_rule.items())),
            "format": r.format, "version": r.version, "rows_checked": r.rows_checked}


# -- worker state -------------------------------------------------------------------------------

_W: dict = {}


def _resolve(spec: str):
    mod, func = spec.split(":")
    return getattr(importlib.import_module(mod), func)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def init_worker(cfg: Config) -> None:
    """Pool initializer: import the code under test once, so that forked calls start warm."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    if cfg.code_root:
        sys.path.insert(0, os.path.abspath(cfg.code_root))
    _W["cfg"] = cfg
    _W["targets"] = {k: _resolve(v) for k, v in cfg.targets.items()}
    _W["tmp"] = tempfile.mkdtemp(prefix="fuzz-worker-")
    _W["baseline"] = {}
    # Modules the library imports lazily on first use (pandas, fastjsonschema, ...): learn them
    # from warm-up calls in a child, then import them here so every later child inherits them.
    names: set[str] = set()
    for kind in ("csv", "json") if cfg.warm else ():
        from .corpus import seeds

        seed = next(s for s in seeds() if s.kind == kind)
        path = os.path.join(_W["tmp"], "warm." + kind)
        with open(path, "wb") as f:
            f.write(seed.data)
        for target in cfg.targets:
            res = _call(target, path, {}, 60.0, report_modules=True)
            names.update(res.get("modules", []))
    for name in sorted(names):
        if name not in sys.modules:
            # (some modules cannot be imported on their own, outside their package's import)
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    import price_pipeline

    _W["code"] = os.path.dirname(os.path.dirname(os.path.abspath(price_pipeline.__file__)))
    _W["baseline_rss_mb"] = _rss_mb()
    # Everything imported so far stays put: the children's garbage collector then never walks
    # (and so never copies-on-write) the worker's objects, which keeps each fork cheap.
    gc.collect()
    gc.freeze()


_WATCHDOG = "RSS WATCHDOG"


def _start_rss_watchdog(limit_mb: int, log) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    fd = os.open("/proc/self/statm", os.O_RDONLY)

    def run() -> None:
        while True:
            rss_mb = int(os.pread(fd, 200, 0).split()[1]) * page / 1048576
            if rss_mb > limit_mb:
                log.write(f"\n{_WATCHDOG}: rss {rss_mb:.0f} MB over {limit_mb} MB, killed\n")
                log.flush()
                faulthandler.dump_traceback(file=log, all_threads=True)
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.02)

    threading.Thread(target=run, name="fuzz-rss-watchdog", daemon=True).start()


def _limit(cfg: Config, payload_bytes: int) -> float:
    return cfg.timeout_base + cfg.timeout_per_mib * payload_bytes / 1048576


def _call(target: str, path: str, opts: dict, timeout: float, *, report_modules: bool = False) -> dict:
    """Run one target on ``path`` in a forked child; returns what happened."""
    cfg: Config = _W["cfg"]
    out_dir = os.path.join(_W["tmp"], "out")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    log_path = os.path.join(_W["tmp"], f"{target}.log")
    func = _W["targets"][target]
    before = set(sys.modules) if report_modules else None
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.close(r)
            log = open(log_path, "w")  # noqa: SIM115 - lives until os._exit
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            limit = cfg.mem_limit_mb * 1048576
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 30, 4 << 30))
            faulthandler.enable(file=log, all_threads=True)
            faulthandler.dump_traceback_later(max(1.0, timeout - 1.0), exit=False, file=log)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(max(1, math.ceil(timeout)))
            thread_errors: list[str] = []

            def hook(a):
                thread_errors.append(
                    f"{a.exc_type.__name__}: {a.exc_value} in thread {getattr(a.thread, 'name', '?')}\n"
                    + "".join(traceback.format_tb(a.exc_traceback))[-3000:])

            threading.excepthook = hook
            _start_rss_watchdog(cfg.kill_rss_mb, log)
            res: dict = {}
            try:
                res["result"] = func(path, out_dir, opts)
            except BaseException as e:  # anything escaping the call is the finding
                res["exception"] = type(e).__name__
                res["message"] = str(e)[:500]
                res["traceback"] = traceback.format_exc()[-6000:]
            faulthandler.cancel_dump_traceback_later()
            res["thread_errors"] = thread_errors
            if report_modules:
                res["modules"] = sorted(set(sys.modules) - before)
            data = json.dumps(res, default=str).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        c = os.read(r, 1 << 16)
        if not c:
            break
        chunks.append(c)
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    seconds = time.perf_counter() - t0
    out: dict = {"seconds": round(seconds, 3), "max_rss_mb": round(ru.ru_maxrss / 1024, 1),
                 "timeout": round(timeout, 1)}
    if os.WIFSIGNALED(status):
        out["signal"] = signal.Signals(os.WTERMSIG(status)).name
    elif os.WEXITSTATUS(status) != 0:
        out["exit_code"] = os.WEXITSTATUS(status)
    if chunks:
        try:
            out.update(json.loads(b"".join(chunks)))
        except ValueError:
            out["garbled"] = True
    if "result" not in out or out.get("signal") or out.get("thread_errors"):
        try:
            with open(log_path, errors="replace") as f:
                out["log"] = f.read()[-8000:]
        except OSError:
            pass
    return out


# -- the oracle ---------------------------------------------------------------------------------

_FRAME = re.compile(r'File "([^"]+)", line (\d+)(?:, in | in )(\S+)')


def _where(text: str | None) -> str:
    """Innermost frame of the code under test in a traceback / faulthandler dump."""
    if not text:
        return "?"
    frames = _FRAME.findall(text)
    ours = [f for f in frames if "/price_pipeline/" in f[0]]
    pick = ours if ours else frames
    if not pick:
        return "?"
    # Python tracebacks list the innermost frame last; faulthandler dumps list it first.
    f = pick[0] if "Most recent call first" in text or "most recent call first" in text else pick[-1]
    path = f[0].split("/price_pipeline/")[-1] if "/price_pipeline/" in f[0] else os.path.basename(f[0])
    return f"{path}:{f[2]}"


def _container(inp: FuzzInput) -> str:
    if inp.family.startswith(("gzip_", "zip_", "bomb", "double_wrap", "recompress")):
        return inp.family
    if inp.ext.endswith(".gz"):
        return "in_gzip"
    return "in_zip" if inp.ext.endswith(".zip") else "plain"


def judge(inp: FuzzInput, results: dict, baseline: dict | None, cfg: Config) -> list[dict]:
    """The violations of one input (empty when it passed). A violation's ``signature`` names the
    defect class without numbers (class, call, exception or signal and where, or the kind of
    input), so a run's failures group into distinct classes."""
    v: list[dict] = []
    for target, res in results.items():
        def add(cls: str, what: str, detail: str, _t=target, _r=res) -> None:
            v.append({"class": cls, "target": _t, "signature": f"{cls}:{_t}:{what}", "detail": detail,
                      "seconds": _r.get("seconds"), "max_rss_mb": _r.get("max_rss_mb")})

        sig = res.get("signal")
        log = res.get("log") or ""
        if sig == "SIGKILL" and _WATCHDOG in log:
            add("rss", f"runaway:{inp.family}", f"killed over {cfg.kill_rss_mb} MB at {_where(log)}")
        elif sig in ("SIGALRM", "SIGXCPU"):
            add("hang", f"@{_where(log)}", f"over {res.get('timeout')}s")
        elif sig:
            add("crash", f"{sig}@{_where(log)}", sig)
        elif "exception" in res:
            cls = "memory" if res["exception"] == "MemoryError" else "crash"
            add(cls, f"{res['exception']}@{_where(res.get('traceback'))}", res.get("message", "")[:200])
        elif "result" not in res:
            add("crash", f"no_result(exit {res.get('exit_code')})", log[-300:])
        for te in res.get("thread_errors") or []:
            add("crash", f"thread:{te.split(':', 1)[0]}@{_where(te)}", te[:300])
        if (res.get("max_rss_mb") or 0) > cfg.max_rss_mb and not (sig == "SIGKILL" and _WATCHDOG in log):
            add("rss", inp.family, f"peak {res['max_rss_mb']:.0f} MB")
        result = res.get("result")
        # the validator's documented verdict on bytes after a complete JSON document: valid, with
        # a trailing_data alert (docs/quality.md); the parser must still refuse the file
        trailing_ok = (target == "validate" and inp.must_fail == "json_trailing"
                       and "trailing_data" in (result or {}).get("alerts_by_rule", {}))
        if result and inp.must_fail and result.get("ok") and not trailing_ok:
            what = "ok" if target == "parse" else "valid"
            add("false_ok", f"{inp.must_fail}:{_container(inp)}", f"{what}: true; {inp.label[:120]}")
        if result and baseline and inp.compare_plain and target in baseline:
            keys = (("ok", "rows_parsed", "rows_quarantined", "format", "version") if target == "parse"
                    else ("ok", "errors_by_rule", "format", "version"))
            base = baseline[target].get("result") or {}
            diff = {k: (base.get(k), result.get(k)) for k in keys if base.get(k) != result.get(k)}
            if diff:
                how = re.sub(r"[@(\d].*", "", inp.steps[-1])
                add("mismatch", f"{inp.family}:{how}:{','.join(sorted(diff))}", json.dumps(diff, default=str)[:300])
    return v


def _baseline(inp: FuzzInput) -> dict:
    """Results of the plain, unmutated seed (cached per seed and parse options)."""
    from .corpus import seeds

    key = (inp.seed, json.dumps(inp.parse_opts, sort_keys=True))
    cache = _W["baseline"]
    if key not in cache:
        seed = next(s for s in seeds() if s.name == inp.seed)
        path = os.path.join(_W["tmp"], "plain" + (".json" if seed.kind == "json" else ".csv"))
        with open(path, "wb") as f:
            f.write(seed.data)
        cfg = _W["cfg"]
        cache[key] = {t: _call(t, path, inp.parse_opts if t == "parse" else {}, _limit(cfg, len(seed.data)))
                      for t in _W["targets"]}
    return cache[key]


def repro_command(cfg: Config, index: int) -> str:
    root = f" --code-root {cfg.code_root}" if cfg.code_root else ""
    return f"{cfg.python} -m price_pipeline_tests.fuzz --seed {cfg.seed} --repro {index}{root}"


def run_one(index: int, *, keep: bool = False) -> dict:
    """Generate, run and judge input ``index`` (in a worker)."""
    cfg: Config = _W["cfg"]
    inp = generate(index, cfg.seed)
    path = os.path.join(_W["tmp"], f"in{inp.ext}")
    size = inp.write(path)
    timeout = _limit(cfg, max(size, inp.payload_bytes))
    results = {}
    for target in _W["targets"]:
        results[target] = _call(target, path, inp.parse_opts if target == "parse" else {}, timeout)
    baseline = _baseline(inp) if inp.compare_plain else None
    violations = judge(inp, results, baseline, cfg)
    rec = {"index": index, "family": inp.family, "label": inp.label, "seed": inp.seed, "ext": inp.ext,
           "size": size, "must_fail": inp.must_fail, "compare_plain": inp.compare_plain,
           "violations": violations,
           "max_rss_mb": max((r.get("max_rss_mb") or 0) for r in results.values()),
           "seconds": {t: r.get("seconds") for t, r in results.items()},
           "ok": {t: (r.get("result") or {}).get("ok") for t, r in results.items()}}
    if violations or keep:
        saved = None
        if cfg.save_failures and (violations or keep):
            fail_dir = os.path.join(cfg.work_dir, "failures")
            os.makedirs(fail_dir, exist_ok=True)
            saved = os.path.join(fail_dir, f"{cfg.seed}-{index:06d}-{inp.family}{inp.ext}")
            if size <= 256 << 20:
                shutil.copyfile(path, saved)
            else:
                saved += " (not kept: over 256 MB; regenerate with --repro)"
            # ".fuzz.json", not ".json": a JSON input of the same stem would be overwritten
            with open(os.path.join(fail_dir, f"{cfg.seed}-{index:06d}-{inp.family}.fuzz.json"), "w") as f:
                json.dump({"input": {k: val for k, val in asdict(inp).items() if k != "parts"}, "results": results,
                           "baseline": baseline, "violations": violations, "repro": repro_command(cfg, index)},
                          f, indent=1, default=str)
        rec["saved"] = saved
        rec["repro"] = repro_command(cfg, index)
        rec["results"] = results
    os.unlink(path)
    return rec


def run_batch(indices: list[int]) -> list[dict]:
    """Pool task: a batch of inputs."""
    return [run_one(i) for i in indices]


def worker_info() -> dict:
    return {"code": _W.get("code"), "baseline_rss_mb": round(_W.get("baseline_rss_mb", 0), 1), "pid": os.getpid()}
