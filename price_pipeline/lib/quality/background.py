"""CMS conformance of a big file in a child process, beside the run's parse (issue 12).

A hospital run does its steps one after another in one process, so the validator's second read
of a big raw file (25-35 % of a run) left the machine's second core idle. The run's first step
calls :func:`start_background_validations` once the hospital's current files are stored: each
file of at least ``min_bytes`` in a local lake gets a child process
(``python -m price_pipeline.lib.quality.background_child``) that runs
:func:`price_pipeline.lib.validate.validate_file` with the rules and limits the conformance step
would use and writes ``validate_file(...).as_dict()`` as JSON to a private temp folder.
:func:`price_pipeline.lib.quality.conformance.validate_hospital` then takes that result
(:func:`take_background_report`) instead of validating inline, but only when the child exited 0,
validated the same bytes (sha256) with the same rules, limits and findings cap; in every other
case (no child, failed, killed, timed out) it validates inline exactly as before. The report is
the same dict either way (a JSON round trip of a JSON-ready dict), so the stored report is
byte-identical apart from its timing (``seconds``) and ``validated_at``, as with any two runs.

The child never outlives the process that started it: on Linux it asks the kernel for SIGKILL
when its parent dies (``PR_SET_PDEATHSIG``), and everywhere a watchdog thread exits when its
parent pid changes; :func:`stop_background_validations` (called at the end of the conformance
step and at interpreter exit) terminates whatever is still running. At most
:data:`MAX_CHILDREN` run at once (a batched run of many hospitals does not start one per file):
files beyond that are validated inline. The child imports only the validator (no Dagster) and
streams the file as the inline validator does, so its peak RSS is the validator's (~0.1 GB),
not a second copy of the run's.

Only a local lake is used: the child reads the stored raw file in place. An S3 lake would need a
second download of the file beside the parse's, so its files stay inline.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from price_pipeline.settings import child_environment, environ

# Files of at least this many bytes are validated in a child (Settings.conformance_background_min_bytes).
DEFAULT_MIN_BYTES = 64 * 2**20
# Longest wait for a child's result before validating inline (Settings.conformance_background_timeout_seconds).
DEFAULT_TIMEOUT_SECONDS = 3600.0
# Children running at once in one process: one beside the run's own core on a 2-core machine.
MAX_CHILDREN = 1
# How often the child checks that its parent is still alive (non-Linux, and belt and braces).
PARENT_POLL_SECONDS = 1.0


@dataclass
class _Child:
    proc: subprocess.Popen
    folder: str
    params: dict[str, Any]

    @property
    def result_path(self) -> Path:
        return Path(self.folder) / "result.json"


# (hospital_key, file sha256) -> the child validating that file for this process
_RUNNING: dict[tuple[str, str], _Child] = {}
_LOCK = threading.Lock()


def validation_params(*, path: str | os.PathLike, sha256: str, max_findings: int, rules: str,
                      as_of: dt.date | None, limits: dict[str, Any] | None) -> dict[str, Any]:
    """What a child validates and with which rules: compared with the step's own before its result is used."""
    return {"path": os.fspath(path), "sha256": sha256, "max_findings": max_findings, "rules": rules,
            "as_of": as_of.isoformat() if as_of else None, "limits": dict(limits or {})}


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[3])


def start_child(hospital_key: str, params: dict[str, Any]) -> bool:
    """Start a child validating ``params['path']``; False when one is already running for the file
    or :data:`MAX_CHILDREN` are busy (the file is then validated inline)."""
    with _LOCK:
        if (hospital_key, params["sha256"]) in _RUNNING:
            return False
        if sum(1 for c in _RUNNING.values() if c.proc.poll() is None) >= MAX_CHILDREN:
            return False
        folder = tempfile.mkdtemp(prefix="pp-conformance-")  # private (0700): the result is not shared
        (Path(folder) / "params.json").write_text(json.dumps(params))
        # the same price_pipeline as this process, even when it is not the installed one
        pythonpath = os.pathsep.join(p for p in (_package_root(), environ().get("PYTHONPATH")) if p)
        env = child_environment({"PYTHONPATH": pythonpath})
        with open(Path(folder) / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "price_pipeline.lib.quality.background_child", folder, str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, close_fds=True)
        _RUNNING[(hospital_key, params["sha256"])] = _Child(proc, folder, params)
        return True


def running_children(hospital_key: str | None = None) -> list[subprocess.Popen]:
    """The started children not yet collected (for tests and logs)."""
    with _LOCK:
        return [c.proc for (h, _s), c in _RUNNING.items() if hospital_key is None or h == hospital_key]


def _discard(child: _Child) -> None:
    if child.proc.poll() is None:
        child.proc.kill()
    child.proc.wait()
    shutil.rmtree(child.folder, ignore_errors=True)


def take_background_report(hospital_key: str, params: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                           log=None) -> dict[str, Any] | None:
    """The child's ``validate_file(...).as_dict()`` for this file, or None (validate inline): no
    child, it failed or was killed, it ran past ``timeout`` seconds (then it is killed), or it
    validated other bytes or with other rules than ``params``. The child is collected either way."""
    with _LOCK:
        child = _RUNNING.pop((hospital_key, params["sha256"]), None)
    if child is None:
        return None
    try:
        t0 = time.perf_counter()
        try:
            child.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if log:
                log(f"background validation of {params['sha256'][:12]} still running after {timeout:.0f} s: "
                    "validating inline")
            return None
        waited = time.perf_counter() - t0
        if child.proc.returncode != 0 or not child.result_path.exists():
            if log:
                err = (Path(child.folder) / "stderr.txt").read_text(errors="replace")[-500:]
                log(f"background validation of {params['sha256'][:12]} failed (exit {child.proc.returncode}): "
                    f"validating inline. {err}")
            return None
        result = json.loads(child.result_path.read_text())
        if result.get("params") != params:
            if log:
                log(f"background validation of {params['sha256'][:12]} used other inputs: validating inline")
            return None
        if log:
            log(f"background validation of {params['sha256'][:12]} used (waited {waited:.1f} s; child "
                f"{result['seconds']:.1f} s, peak RSS {result['peak_rss_bytes'] / 2**20:.0f} MB)")
        return result["report"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        _discard(child)


def stop_background_validations(hospital_key: str | None = None) -> int:
    """Kill and collect the children of ``hospital_key`` (default: all); how many there were."""
    with _LOCK:
        keys = [k for k in _RUNNING if hospital_key is None or k[0] == hospital_key]
        children = [_RUNNING.pop(k) for k in keys]
    for child in children:
        _discard(child)
    return len(children)


atexit.register(stop_background_validations)


# -- the child ---------------------------------------------------------------------------------

def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)

    def watch() -> None:
        # PR_SET_PDEATHSIG follows the parent *thread*; a changed parent pid is the portable signal
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _peak_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def child_main(folder: str, parent_pid: int) -> int:
    """Validate the file named in ``<folder>/params.json``; write ``<folder>/result.json``."""
    _die_with_parent(parent_pid)
    from price_pipeline.lib.validate import validate_file

    params = json.loads((Path(folder) / "params.json").read_text())
    t0 = time.perf_counter()
    report = validate_file(params["path"], max_findings=params["max_findings"], rules=params["rules"],
                           as_of=dt.date.fromisoformat(params["as_of"]) if params["as_of"] else None,
                           **params["limits"]).as_dict()
    result = {"params": params, "report": report, "seconds": time.perf_counter() - t0,
              "peak_rss_bytes": _peak_rss_bytes()}
    tmp = Path(folder) / "result.json.tmp"
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, Path(folder) / "result.json")  # never a half-written result
    return 0

