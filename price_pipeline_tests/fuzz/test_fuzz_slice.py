"""The fuzz slice that runs in ``make test``: the first inputs of the full run (seed 1), every
mutation family, both cores, about two minutes. Fails on any oracle violation — crash, hang,
peak RSS over 1 GB, ``ok: true`` / ``valid: true`` on a truncated or corrupt payload, or a
re-packed valid file that parses differently — and prints one repro line per distinct failure.

The full run (20,000 inputs) is ``make fuzz``; see README.md in this folder.
"""

from __future__ import annotations

import io
import os

import pytest

from price_pipeline_tests.fuzz.driver import run_fuzz
from price_pipeline_tests.fuzz.mutate import SCHEDULE
from price_pipeline_tests.fuzz.runner import Config

# Six rounds of the family schedule (every family at least six times; about 2 minutes). Override to run
# a longer or shorter slice by hand: PRICE_PIPELINE_FUZZ_SLICE=2000.
SLICE_INPUTS = int(os.environ.get("PRICE_PIPELINE_FUZZ_SLICE", 6 * len(SCHEDULE)))


@pytest.mark.slow
def test_fuzz_slice(tmp_path):
    out = io.StringIO()
    cfg = Config(seed=1, work_dir=str(tmp_path / "fuzz"))
    summary = run_fuzz(cfg, list(range(SLICE_INPUTS)), jobs=2, progress_every=1e9, out=out)
    report = io.StringIO()
    summary.report(out=report)
    line = summary.result_line(SLICE_INPUTS)
    print(line)
    assert summary.inputs == SLICE_INPUTS
    assert summary.ok, f"{line}\n{report.getvalue()}"
