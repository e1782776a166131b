"""Unit tests for value cleaning and content sniffing, plus a round-trip property test."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from price_pipeline.lib.parse.mrf.header import norm_name
from price_pipeline.lib.parse.mrf.sniff import detect_encoding, detect_kind
from price_pipeline.lib.parse.mrf.values import clean_numeric, parse_bool, parse_date, to_float


def test_clean_numeric():
    arr = pa.array(["1234.5", "$1,234.00", " 12 ", "50%", "N/A", "NA", "-", "", None, "abc", "1e3", "999999999"])
    vals, bad, nines = clean_numeric(arr)
    assert vals.to_pylist() == [1234.5, 1234.0, 12.0, 50.0, None, None, None, None, None, None, 1000.0, 999999999.0]
    assert bad.to_pylist() == [9]
    assert nines.to_pylist() == [11]
    vals, bad, nines = clean_numeric(pa.array(["1", "2.5", ""]))
    assert vals.to_pylist() == [1.0, 2.5, None] and bad is None and nines is None


def test_scalars():
    assert to_float("$1,000") == 1000.0 and to_float(3) == 3.0 and to_float("n/a") is None
    assert parse_date("4/1/2026") == dt.date(2026, 4, 1) and parse_date("2026-04-01") == dt.date(2026, 4, 1)
    assert parse_date("04/01/2026") == dt.date(2026, 4, 1) and parse_date("soon") is None
    assert parse_bool("TRUE") is True and parse_bool("false") is False and parse_bool("maybe") is None


def test_norm_name():
    assert norm_name(" Code | 1 | Type ") == "code|1|type"
    assert norm_name("standard_charge |  Gross") == "standard_charge|gross"


def test_sniff():
    assert detect_encoding(b"\xef\xbb\xbfabc") == ("utf-8-sig", 3)
    assert detect_encoding("abc,def\n".encode("utf-16-le")) == ("utf-16-le", 0)
    assert detect_encoding("abc,def\n".encode("utf-16")) == ("utf-16-le", 2)
    assert detect_encoding("caf\u00e9".encode("cp1252"), complete=True) == ("cp1252", 0)
    assert detect_encoding("caf\u00e9 au lait".encode("cp1252")) == ("cp1252", 0)
    assert detect_encoding("caf\u00e9".encode()[:-1]) == ("utf-8", 0)  # cut multi-byte char at sample end
    assert detect_kind("  \n{ \"a\": 1}") == "json"
    assert detect_kind("<!DOCTYPE html><html>") == "html"
    assert detect_kind("") == "empty"
    assert detect_kind("hospital_name,x\n") == "csv"


HEADER = ("hospital_name,last_updated_on,version\r\nH,2025-01-01,3.0.0\r\n"
          "description,code|1,code|1|type,setting,standard_charge|gross,payer_name,plan_name,"
          "standard_charge|negotiated_dollar,standard_charge|negotiated_algorithm,standard_charge|methodology\r\n")
text_st = st.lists(st.characters(blacklist_categories=("Cs", "Cc"))
                   | st.sampled_from([",", '"', "\n", "\r\n", "|", " ", "\u00e9"]),
                   min_size=1, max_size=30).map("".join)
row_st = st.tuples(
    text_st.filter(lambda s: s.strip() != ""),
    st.from_regex(r"[0-9A-Z]{1,7}", fullmatch=True),
    st.sampled_from(["CPT", "HCPCS", "RC", "NDC"]),
    st.floats(min_value=0.01, max_value=1e7, allow_nan=False).map(lambda x: round(x, 2)),
    text_st.filter(lambda s: s.strip() != ""),
    st.one_of(st.none(), st.floats(min_value=0.01, max_value=1e6).map(lambda x: round(x, 2))),
    st.one_of(st.none(), text_st),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row_st, min_size=1, max_size=15))
def test_round_trip_property(parse, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for desc, code, ctype, gross, payer, dollar, algo in rows:
        w.writerow([desc, code, ctype, "outpatient", gross, payer, "PPO", "" if dollar is None else dollar,
                    algo or "", "fee schedule"])
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="", encoding="utf-8") as f:
        f.write(HEADER + buf.getvalue())
    s, out = parse(f.name)
    assert s.ok and s.rows_parsed == len(rows) and s.findings == []
    out.sort(key=lambda r: r["source_row"])
    for i, (r, (desc, code, ctype, gross, payer, dollar, algo)) in enumerate(zip(out, rows, strict=True)):
        assert r["source_row"] == 4 + i
        assert r["description"] == desc.strip()
        assert r["codes"] == [{"code": code, "type": ctype}]
        assert r["gross_charge"] == gross and r["negotiated_dollar"] == dollar
        assert r["payer_name"] == payer.strip()
        assert r["negotiated_algorithm"] == ((algo or "").strip() or None)


# --- Arrow helpers that avoid pa.array (and its pandas import) -------------------------------
_WS = [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "x", "\u00e9", ""]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.lists(st.sampled_from(_WS), max_size=4).map("".join)), max_size=12),
       skip=st.integers(min_value=0, max_value=3))
def test_clean_text_matches_plain_trim(values, skip):
    """The whitespace pre-check never skips a needed trim (also on sliced arrays)."""
    from price_pipeline.lib.parse.mrf.values import clean_text

    arr = pa.array(["pad"] * skip + values, pa.string()).slice(skip)
    expected = [None if v is None or not v.strip() else v for v in pa.compute.utf8_trim_whitespace(arr).to_pylist()]
    assert clean_text(arr).to_pylist() == expected


def test_buffer_built_arrays():
    import numpy as np

    from price_pipeline.lib.parse.mrf.values import (
        bool_to_numpy,
        from_numpy,
        int_to_numpy,
        repeat_str,
        str_array,
    )

    assert from_numpy(np.array([1, 2, 3]), mask=np.array([False, True, False])).to_pylist() == [1, None, 3]
    assert from_numpy(np.array([True, False] * 5)).to_pylist() == [True, False] * 5
    assert from_numpy(np.array([1.5], dtype=np.float64)).type == pa.float64()
    assert str_array(["a", None, "\u00e9", ""]).to_pylist() == ["a", None, "\u00e9", ""]
    assert repeat_str("ab", 3).to_pylist() == ["ab"] * 3 and repeat_str(None, 2).to_pylist() == [None, None]
    assert repeat_str("", 2).to_pylist() == ["", ""] and len(repeat_str("x", 0)) == 0
    b = pa.array([True, None, False, True, True, False, True, True, True, False])
    assert bool_to_numpy(b.slice(1)).tolist() == [False, False, True, True, False, True, True, True, False]
    i = pa.array([5, None, 7, 8], pa.int32())
    assert int_to_numpy(i.slice(1)).tolist() == [0, 7, 8] and int_to_numpy(pa.array([], pa.int64())).tolist() == []
    assert int_to_numpy(pa.array([3], pa.uint64())).dtype == np.uint64


def test_parsing_does_not_import_pandas(tmp_path):
    """``pa.array``/``pa.scalar`` import pandas (~1.5-2 s of start-up); the parser avoids them."""
    import subprocess
    import sys
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "cms"
    files = [str(fixtures / n) for n in ("V3.0.0_Tall_CSV_Format_Example.csv", "V3.0.0_Wide_CSV_Format_Example.csv",
                                         "V3.0.0_JSON_Format_Example.json")]
    code = (
        "import sys\n"
        "from price_pipeline.lib.parse.mrf import parse_to_parquet\n"
        "for i, f in enumerate(sys.argv[2:]):\n"
        "    s = parse_to_parquet(f, sys.argv[1] + f'/{i}.parquet', json_full_parse_below=0)\n"
        "    assert s.ok and s.rows_parsed > 0, s\n"
        "print('pandas' in sys.modules)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path), *files], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "False"
