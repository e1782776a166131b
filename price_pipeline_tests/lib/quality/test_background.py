"""lib.quality.background: CMS validation of a big file in a child process (issue 12), no Dagster.

The child's report must be the inline one (the stored JSON byte for byte, timing aside), a
child that fails, is killed or validated other inputs must leave the file to inline validation,
and no child may outlive the step or the process that started it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from price_pipeline.demo import gen_mrf
from price_pipeline.lib.fetch.files import FileOutcome, FilesManifest
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.quality import background, conformance

CMS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "cms")
EXT = {"tall": "csv", "wide": "csv", "json": "json"}


def _generated(fmt: str, rows: int = 400) -> bytes:
    out = io.BytesIO()
    gen_mrf.write(fmt, rows, out, payers=5)
    return out.getvalue()


def _hospital(tmp_path, key: str, data: bytes, ext: str = "csv") -> LocalLake:
    lake = LocalLake(tmp_path / "lake")
    sha = hashlib.sha256(data).hexdigest()
    raw = f"raw/{sha[:2]}/{sha}.{ext}"
    lake.put_bytes(data, raw)
    outcome = FileOutcome(url=f"https://{key}.example.org/mrf.{ext}", status="ok", sha256=sha, size=len(data),
                          raw_key=raw)
    lake.put_bytes(FilesManifest(key, [outcome]).to_json(), layout.files_manifest_key(key))
    return lake


def _stored(lake: LocalLake, key: str, report: dict) -> dict:
    """The stored report without what differs between any two validations of the same bytes."""
    stored = json.loads(lake.get_bytes(report["report_key"]))
    assert stored["seconds"] >= 0
    return {k: v for k, v in stored.items() if k not in ("seconds", "validated_at")}


def _gone(pid: int, within: float = 10.0) -> bool:
    """The process ended (a zombie awaiting its reaper counts as ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                if any(line.startswith("State:") and "Z" in line for line in f):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("fmt", ["tall", "wide", "json"])
def test_the_childs_report_is_the_inline_report(tmp_path, fmt):
    data = _generated(fmt)
    lake = _hospital(tmp_path, "h1", data, EXT[fmt])
    sha = hashlib.sha256(data).hexdigest()
    assert conformance.start_background_validations("h1", lake=lake, min_bytes=1) == [sha]
    (child,) = background.running_children("h1")
    logs: list[str] = []
    (from_child,) = conformance.validate_hospital("h1", lake=lake, log=logs.append).reports
    assert any("background validation" in m and "used" in m for m in logs), logs
    assert child.poll() is not None and not background.running_children()
    by_child = _stored(lake, "h1", from_child)

    logs.clear()
    (inline,) = conformance.validate_hospital("h1", lake=lake, reuse=False, log=logs.append).reports
    assert not any("background" in m for m in logs)
    assert _stored(lake, "h1", inline) == by_child
    assert by_child["format"] == ("json" if fmt == "json" else f"csv_{fmt}") and by_child["rows_checked"] > 0
    # the in-memory reports (metadata, summary rows) agree too, timing aside
    drop = ("seconds", "validated_at")
    assert ({k: v for k, v in from_child.items() if k not in drop}
            == {k: v for k, v in inline.items() if k not in drop})


def test_a_file_with_findings_gets_the_same_findings_from_the_child(tmp_path):
    with open(os.path.join(CMS, "V2.0.0_Tall_CSV_Format_Example.csv"), "rb") as f:
        lake = _hospital(tmp_path, "h1", f.read())
    conformance.start_background_validations("h1", lake=lake, min_bytes=1, rules="declared")
    logs: list[str] = []
    (by_child,) = conformance.validate_hospital("h1", lake=lake, rules="declared", log=logs.append).reports
    assert any("used" in m for m in logs)
    assert by_child["valid"] is False and by_child["findings"]
    child = _stored(lake, "h1", by_child)
    (inline,) = conformance.validate_hospital("h1", lake=lake, rules="declared", reuse=False).reports
    assert _stored(lake, "h1", inline) == child


def test_a_killed_child_falls_back_to_inline_validation(tmp_path):
    lake = _hospital(tmp_path, "h1", _generated("tall"))
    assert conformance.start_background_validations("h1", lake=lake, min_bytes=1)
    (child,) = background.running_children("h1")
    child.send_signal(signal.SIGKILL)
    child.wait()
    logs: list[str] = []
    (report,) = conformance.validate_hospital("h1", lake=lake, log=logs.append).reports
    assert any("failed (exit -9)" in m for m in logs), logs
    assert report["valid"] is True and report["rows_checked"] > 0


def test_a_failing_child_or_other_inputs_fall_back_to_inline_validation(tmp_path):
    data = _generated("tall")
    lake = _hospital(tmp_path, "h1", data)
    sha = hashlib.sha256(data).hexdigest()
    # the child cannot read its file: it exits non-zero, the step validates the lake's copy
    params = background.validation_params(path=tmp_path / "missing.csv", sha256=sha, max_findings=100,
                                          rules="major", as_of=None, limits=None)
    assert background.start_child("h1", params)
    logs: list[str] = []
    (report,) = conformance.validate_hospital("h1", lake=lake, log=logs.append).reports
    assert any("failed (exit 1)" in m and "FileNotFoundError" in m for m in logs), logs
    assert report["valid"] is True
    # a child that validated with another findings cap than the step's: not used
    assert conformance.start_background_validations("h1", lake=lake, min_bytes=1, max_findings=7)
    logs.clear()
    conformance.validate_hospital("h1", lake=lake, reuse=False, log=logs.append)
    assert any("other inputs" in m for m in logs), logs


def test_a_child_past_its_timeout_is_killed_and_the_file_validated_inline(tmp_path):
    data = _generated("tall")
    lake = _hospital(tmp_path, "h1", data)
    sha = hashlib.sha256(data).hexdigest()
    # a child that never finishes, registered for the file as start_child would
    params = background.validation_params(path=lake.uri(f"raw/{sha[:2]}/{sha}.csv"), sha256=sha, max_findings=100,
                                          rules="major", as_of=None, limits=None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (tmp_path / "f").mkdir()
    with background._LOCK:
        background._RUNNING[("h1", sha)] = background._Child(sleeper, str(tmp_path / "f"), params)
    logs: list[str] = []
    t0 = time.monotonic()
    (report,) = conformance.validate_hospital("h1", lake=lake, background_timeout=0.5, log=logs.append).reports
    assert time.monotonic() - t0 < 30
    assert any("still running after" in m for m in logs), logs
    assert report["valid"] is True
    assert sleeper.poll() is not None and not background.running_children()  # killed, collected


def test_small_files_stay_inline_and_a_rerun_starts_no_child(tmp_path):
    with open(os.path.join(CMS, "V3.0.0_Tall_CSV_Format_Example.csv"), "rb") as f:
        lake = _hospital(tmp_path, "h1", f.read())
    assert conformance.start_background_validations("h1", lake=lake) == []  # under the 64 MiB default
    assert not background.running_children()
    assert conformance.start_background_validations("h1", lake=lake, min_bytes=0) == []  # 0: off
    conformance.validate_hospital("h1", lake=lake)
    # the stored report will be reused: nothing to validate, no child
    assert conformance.start_background_validations("h1", lake=lake, min_bytes=1) == []
    assert not background.running_children()


def test_at_most_max_children_run_at_once(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    outcomes = []
    for fmt in ("tall", "wide"):
        data = _generated(fmt)
        sha = hashlib.sha256(data).hexdigest()
        lake.put_bytes(data, f"raw/{sha[:2]}/{sha}.csv")
        outcomes.append(FileOutcome(url=f"https://h1.example.org/{fmt}.csv", status="ok", sha256=sha,
                                    size=len(data), raw_key=f"raw/{sha[:2]}/{sha}.csv"))
    lake.put_bytes(FilesManifest("h1", outcomes).to_json(), layout.files_manifest_key("h1"))
    started = conformance.start_background_validations("h1", lake=lake, min_bytes=1)
    assert len(started) == background.MAX_CHILDREN == 1
    assert started == [max(outcomes, key=lambda o: o.size).sha256]  # the biggest first
    result = conformance.validate_hospital("h1", lake=lake)
    assert [r["valid"] for r in result.reports] == [True, True]
    assert not background.running_children()


def test_stop_kills_what_is_still_running(tmp_path):
    lake = _hospital(tmp_path, "h1", _generated("tall"))
    conformance.start_background_validations("h1", lake=lake, min_bytes=1)
    (child,) = background.running_children("h1")
    assert background.stop_background_validations("h1") == 1
    assert child.poll() is not None and not background.running_children()


def test_the_child_dies_with_the_process_that_started_it(tmp_path):
    """A killed run (its process gone without cleanup) leaves no validator behind."""
    data = _generated("tall", rows=20000)
    _hospital(tmp_path, "h1", data)
    script = textwrap.dedent(f"""
        import os, sys
        from price_pipeline.lib.lake.storage import LocalLake
        from price_pipeline.lib.quality import background, conformance
        conformance.start_background_validations("h1", lake=LocalLake({str(tmp_path / 'lake')!r}), min_bytes=1)
        (child,) = background.running_children("h1")
        (folder,) = [c.folder for c in background._RUNNING.values()]
        print(child.pid, folder, flush=True)
        os.kill(os.getpid(), 9)  # no atexit, no cleanup: as a killed run worker
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == -9, out.stderr
    pid, folder = out.stdout.split()
    assert _gone(int(pid)), f"validator {pid} outlived its parent"
    shutil.rmtree(folder)  # a killed run leaves its few-KB temp folder behind (nothing removes it)
