"""The fuzz harness itself: its oracle helpers, its determinism, and that it catches each kind of
violation (fake parse functions that crash, hang, hog memory or say ok on a corrupt file)."""

from __future__ import annotations

import gzip
import io
import os
import signal
import threading
import time
import zipfile

import pytest

from price_pipeline_tests.fuzz import archives
from price_pipeline_tests.fuzz.corpus import seeds
from price_pipeline_tests.fuzz.driver import run_fuzz
from price_pipeline_tests.fuzz.mutate import (
    SCHEDULE,
    FuzzInput,
    csv_quote_scan,
    family_of,
    generate,
    json_complete,
)
from price_pipeline_tests.fuzz.runner import Config, judge

# -- oracle helpers -----------------------------------------------------------------------------


def test_csv_quote_state():
    assert csv_quote_scan('a,"b""c",d\n"e\nf",g\n')[0] is False
    assert csv_quote_scan('a,"b')[0] is True  # cut inside a quoted field
    assert csv_quote_scan('a,x"b\n')[0] is False  # a quote inside an unquoted field is a character
    assert csv_quote_scan('a,"b"x,"c')[0] is True
    assert csv_quote_scan('a,"b""')[0] is True  # an escaped quote does not close the field
    _, ends, _ = csv_quote_scan('h1,h2\n"x\ny",1\nz,2\n')
    assert ends == [6, 14, 18]  # the quoted line break is not a record end


def test_json_complete_is_lenient_but_exact_about_truncation():
    doc = b'{"a": [1, 2.5e3, "x\ty"], "n": ' + b"9" * 5000 + b"}"
    assert json_complete(doc, "utf-8")  # control characters in strings, huge numbers: fine
    assert json_complete(doc + b"\n  ", "utf-8")
    assert not json_complete(doc[:-1], "utf-8")
    assert not json_complete(doc + b"x", "utf-8")


def test_reference_decoders_reject_damaged_archives():
    payload = b"hospital_name,x\n" * 500
    gz = gzip.compress(payload, mtime=0)
    assert archives.reference_gzip(gz) == payload
    assert archives.reference_gzip(gz[:-1]) is None
    z = archives.zip_bytes([("p.csv", payload, zipfile.ZIP_DEFLATED)])
    assert archives.reference_zip_member(z, "p.csv") == payload
    assert archives.reference_zip_member(z[:-5], "p.csv") is None
    assert archives.reference_zip_member(archives.patch_member(z, "p.csv", crc_xor=1), "p.csv") is None
    assert archives.reference_zip_member(archives.raw_zip("p.csv", payload, method=9), "p.csv") is None


def test_zipcrypto_member_decrypts_with_its_password():
    payload = b"description,code|1\nx,1\n" * 100
    z = archives.raw_zip("p.csv", payload, password=b"pw")
    with zipfile.ZipFile(io.BytesIO(z)) as zf:
        assert zf.read("p.csv", pwd=b"pw") == payload  # a real ZipCrypto member, not just a flag
    assert archives.reference_zip_member(z, "p.csv") is None


# -- the generator ------------------------------------------------------------------------------


def test_seeds_come_from_the_repository():
    names = [s.name for s in seeds()]
    assert "V3.0.0_Tall_CSV_Format_Example.csv" in names and "synth_items_250.json" in names
    assert {s.kind for s in seeds()} == {"csv", "json"}


def test_generation_is_deterministic_and_covers_every_family():
    n = len(SCHEDULE)
    assert {family_of(i) for i in range(n)} == set(SCHEDULE)
    for i in range(n):
        a, b = generate(i, 7), generate(i, 7)
        if a.family in ("giant_line", "bomb"):
            assert a.parts == b.parts
        else:
            assert a.data() == b.data()
        assert (a.label, a.must_fail, a.compare_plain) == (b.label, b.must_fail, b.compare_plain)


def test_families_carry_their_verdicts():
    by = {}
    for i in range(3 * len(SCHEDULE)):
        by.setdefault(family_of(i), []).append(generate(i, 3))
    assert all(x.must_fail for x in by["gzip_truncate"] + by["zip_truncate"] + by["zip_encrypted"]
               + by["zip_unsupported_method"] + by["zip_non_mrf"] + by["truncate_in_quotes"])
    assert all(x.must_fail is None and x.compare_plain for x in by["recompress"] + by["zip_mixed"])
    assert all(x.must_fail is None for x in by["truncate_row_boundary"])


# -- the judge and the runner -------------------------------------------------------------------


def _inp(**kw) -> FuzzInput:
    base = {"index": 0, "seed": "s", "kind": "csv", "family": "truncate", "steps": ["truncate@1"], "parts": [],
            "ext": ".csv"}
    base.update(kw)
    return FuzzInput(**base)


def test_judge_classes():
    cfg = Config()
    ok = {"result": {"ok": True, "rows_parsed": 3}, "max_rss_mb": 100}
    assert judge(_inp(must_fail=None), {"parse": ok}, None, cfg) == []
    v = judge(_inp(must_fail="csv_open_quote"), {"parse": ok}, None, cfg)
    assert [x["signature"] for x in v] == ["false_ok:parse:csv_open_quote:plain"]
    v = judge(_inp(), {"parse": {"signal": "SIGSEGV", "log": "", "max_rss_mb": 90}}, None, cfg)
    assert v[0]["class"] == "crash"
    v = judge(_inp(), {"parse": {"signal": "SIGALRM", "log": "", "max_rss_mb": 90}}, None, cfg)
    assert v[0]["class"] == "hang"
    v = judge(_inp(), {"parse": {"result": {"ok": False}, "max_rss_mb": 1500}}, None, cfg)
    assert v[0]["class"] == "rss"
    base = {"parse": {"result": {"ok": True, "rows_parsed": 3}}}
    v = judge(_inp(family="recompress", steps=["gzip9"], compare_plain=True),
              {"parse": {"result": {"ok": True, "rows_parsed": 2}, "max_rss_mb": 90}}, base, cfg)
    assert v[0]["class"] == "mismatch" and v[0]["signature"].endswith("rows_parsed")


def test_bytes_after_a_json_document():
    """Parse must refuse a document followed by bytes; validate may call it valid, but only with
    the trailing_data alert (the official validator's verdict, docs/quality.md)."""
    from price_pipeline_tests.fuzz.mutate import json_then_bytes

    assert json_then_bytes(b'{"a": [1]} x', "utf-8") and json_then_bytes(b' {"a": 1}\n{"b": 2}', "utf-8")
    assert not json_then_bytes(b'{"a": [1]}  \n', "utf-8") and not json_then_bytes(b'{"a": [1', "utf-8")
    cfg = Config()
    inp = _inp(kind="json", must_fail="json_trailing")
    ok = {"result": {"ok": True}, "max_rss_mb": 90}
    alert = {"result": {"ok": True, "alerts_by_rule": {"trailing_data": 1}}, "max_rss_mb": 90}
    assert [x["signature"] for x in judge(inp, {"parse": ok, "validate": alert}, None, cfg)] == [
        "false_ok:parse:json_trailing:plain"]
    assert [x["signature"] for x in judge(inp, {"validate": ok}, None, cfg)] == ["false_ok:validate:json_trailing:plain"]


# Fake calls under test: each misbehaves in one way (the worker imports this module by name).


def fake_ok(path, out_dir, opts):
    return {"ok": True}


def fake_segv(path, out_dir, opts):
    os.kill(os.getpid(), signal.SIGSEGV)


def fake_sleep(path, out_dir, opts):
    time.sleep(60)


def fake_hog(path, out_dir, opts):
    block = bytearray(300 << 20)
    block[:: 4096] = b"x" * len(block[:: 4096])
    return {"ok": False}


def fake_runaway(path, out_dir, opts):
    blocks = []
    for _ in range(60):
        b = bytearray(50 << 20)
        b[:: 4096] = b"x" * len(b[:: 4096])
        blocks.append(b)
    return {"ok": False}


def fake_raise(path, out_dir, opts):
    raise ValueError("boom")


def fake_thread_raise(path, out_dir, opts):
    t = threading.Thread(target=lambda: 1 / 0)
    t.start()
    t.join()
    return {"ok": False}


def test_runner_catches_every_violation_class(tmp_path):
    fakes = ("ok", "segv", "sleep", "hog", "runaway", "raise", "thread_raise")
    cfg = Config(work_dir=str(tmp_path), timeout_base=3.0, timeout_per_mib=0.0, max_rss_mb=250, kill_rss_mb=1200,
                 targets={f: f"price_pipeline_tests.fuzz.test_fuzz_harness:fake_{f}" for f in fakes}, warm=False)
    index = next(i for i in range(len(SCHEDULE)) if family_of(i) == "gzip_truncate")  # a must-fail input
    out = io.StringIO()
    summary = run_fuzz(cfg, [index], jobs=1, out=out)
    got = {(e["violation"]["target"], e["violation"]["class"]) for e in summary.by_signature.values()}
    assert got >= {("ok", "false_ok"), ("segv", "crash"), ("sleep", "hang"), ("hog", "rss"), ("runaway", "rss"),
                   ("raise", "crash"), ("thread_raise", "crash")}, out.getvalue()
    assert ("ok", "crash") not in got
    saved = list((tmp_path / "failures").iterdir())
    assert any(p.suffix == ".gz" for p in saved) and any(p.name.endswith(".fuzz.json") for p in saved)
    assert "--repro" in out.getvalue()


@pytest.mark.parametrize("family", ["recompress", "truncate_row_boundary"])
def test_runner_passes_what_the_real_parser_gets_right(tmp_path, family):
    # A re-packed valid file and a CSV cut at a row boundary: no violation on today's parser.
    index = next(i for i in range(len(SCHEDULE)) if family_of(i) == family)
    summary = run_fuzz(Config(work_dir=str(tmp_path)), [index], jobs=1, out=io.StringIO())
    assert summary.inputs == 1 and summary.ok, summary.by_signature
