"""CSV body checks: threaded reading, grouped batches and the fast column tests give exactly
the result of the plain sequential batch-by-batch run (which the parity harness checks)."""

from __future__ import annotations

import glob
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from price_pipeline.lib.validate import csv_body, csv_check, csv_rows, validate_file

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "validate")


def run(path, monkeypatch, *, threads, block, group, max_findings=1000):
    monkeypatch.setattr(csv_check, "THREADS", threads)
    monkeypatch.setattr(csv_check, "BLOCK_SIZE", block)
    monkeypatch.setattr(csv_body, "GROUP_BYTES", group)
    d = validate_file(path, max_findings=max_findings).as_dict()
    d.pop("seconds")
    return d


def big_csv(tmp_path, short_row: bool) -> str:
    with open(os.path.join(FIX, "V3.0.0_Tall_CSV_Format_Example.csv"), encoding="utf-8-sig") as f:
        src = f.read()
    lines = src.splitlines()
    head, body = lines[:3], [x for x in lines[3:] if x.strip()]
    rnd = random.Random(5)
    out = []
    for i in range(3000):
        row = body[i % len(body)]
        r = rnd.random()
        if r < 0.01:
            row = row.replace(",both,", ",sometimes,", 1).replace(",inpatient,", ",sometimes,", 1)
        elif r < 0.02:
            row = "," + row.split(",", 1)[1]  # blank description
        elif r < 0.025:
            row = ",".join([""] * len(row.split(",")))  # blank record
        elif r < 0.03:
            row = row.replace(",", ",  ", 3)  # values with spaces to trim
        out.append(row)
    if short_row:
        out[1500] = "too,short"
        out[2500] = out[2500] + ",extra"
    p = tmp_path / "big.csv"
    p.write_text("\n".join(head + out) + "\n", encoding="utf-8")
    return str(p)


@pytest.mark.parametrize("short_row", [False, True])
@pytest.mark.parametrize("max_findings", [1000, 7])
def test_grouped_threaded_equals_sequential(tmp_path, monkeypatch, short_row, max_findings):
    path = big_csv(tmp_path, short_row)
    ref = run(path, monkeypatch, threads=False, block=1 << 14, group=0, max_findings=max_findings)
    for threads in (False, True):
        for group in (1 << 14, 1 << 16, 1 << 30):
            got = run(path, monkeypatch, threads=threads, block=1 << 14, group=group, max_findings=max_findings)
            assert got == ref, (threads, group)
    assert ref["errors"] > 0 and ref["rows_checked"] > 2000


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(FIX, "*.csv"))), ids=os.path.basename)
def test_fixtures_threaded_equals_sequential(monkeypatch, path):
    ref = run(path, monkeypatch, threads=False, block=1 << 10, group=0)
    assert run(path, monkeypatch, threads=True, block=1 << 20, group=8 << 20) == ref


def test_positive_mask_and_trim_match_reference():
    rnd = random.Random(1)
    alphabet = ["0", "1", "9", ".", "", "-", "+", "e", " ", "\t", "a", "\u00a0", "é"]
    for _ in range(2000):
        n = rnd.randint(1, 30)
        if rnd.random() < 0.5:
            vals = ["".join(rnd.choice("0123456789.") for _ in range(rnd.randint(0, 6))) for _ in range(n)]
        else:
            vals = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 5))) for _ in range(n)]
        a = pa.array(vals, pa.string())
        if rnd.random() < 0.3:
            a = a.slice(rnd.randint(0, n - 1))
        ref = pc.and_(pc.match_substring_regex(a, csv_rows.NUM_RE), pc.match_substring_regex(a, "[1-9]"))
        assert np.array_equal(csv_rows.positive_mask(a), ref.to_numpy(zero_copy_only=False)), a.to_pylist()
        assert csv_rows.trim(a).to_pylist() == pc.utf8_trim_whitespace(a).to_pylist(), a.to_pylist()


def test_csv_path_does_not_import_pandas(tmp_path):
    """pa.array / pa.scalar / to_numpy import pandas (~0.2 CPU-s per process, ~1.3 s without cached
    bytecode): the conformance step of every hospital run paid it for nothing. Every CSV fixture
    (each rule family, blank and short rows) is checked in a fresh process that must not load it."""
    import subprocess
    import sys

    paths = [*sorted(glob.glob(os.path.join(FIX, "*.csv"))), big_csv(tmp_path, short_row=True)]
    code = ("import sys\nfrom price_pipeline.lib.validate import validate_file\n"
            "reports = [validate_file(p) for p in sys.argv[1:]]\n"
            "print(sum(r.errors for r in reports), sum(r.alerts for r in reports), 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, check=True).stdout
    errors, alerts, pandas_loaded = out.split()
    assert int(errors) > len(paths) and int(alerts) > 0  # the rules ran and found what the fixtures hold
    assert pandas_loaded == "False"
