"""The chunked, multi-threaded JSON reader gives exactly the rows of the sequential reader.

Small chunks (a few KB) force many cuts; ``json_full_parse_below=0`` forces the chunked
path on small files.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from price_pipeline.lib.parse.mrf import parse_to_parquet
from price_pipeline.lib.parse.mrf.json_chunks import _closed_items, _item_ends

from ..conftest import CMS

V3_JSON = CMS / "V3.0.0_JSON_Format_Example.json"
V2_JSON = CMS / "V2.0.0_JSON_Format_Example.json"


def _both(path, tmp_path, chunk=2048, **kw):
    out = {}
    for mode, extra in (("seq", {"json_parallel": False}),
                        ("par", {"json_parallel": True, "json_chunk_bytes": chunk, "json_full_parse_below": 0})):
        o = tmp_path / f"{mode}.parquet"
        s = parse_to_parquet(path, o, **extra, **kw)
        out[mode] = (s, pq.read_table(o))
    return out["seq"], out["par"]


def _assert_same(seq, par):
    (s1, t1), (s2, t2) = seq, par
    assert t1.schema == t2.schema
    assert t1.to_pylist() == t2.to_pylist()  # same rows, same order
    assert (s1.ok, s1.format, s1.version, s1.header, s1.rows_parsed) == (s2.ok, s2.format, s2.version, s2.header,
                                                                         s2.rows_parsed)
    key = lambda f: (f.rule, f.severity, f.path, f.column, f.row)  # noqa: E731
    assert Counter(map(key, s1.findings)) == Counter(map(key, s2.findings))


def _big_doc(n_copies=30, late_header=False, indent=None):
    doc = json.loads(V3_JSON.read_text())
    items = doc.pop("standard_charge_information")
    many = []
    for c in range(n_copies):
        for it in items:
            it = json.loads(json.dumps(it))
            it["description"] = f'{it["description"]} #{c} with "quotes", braces }},{{ and \\ backslash'
            many.append(it)
    return {"standard_charge_information": many, **doc} if late_header else {**doc, "standard_charge_information": many}


def test_parallel_equals_sequential_official_examples(tmp_path):
    for src in (V3_JSON, V2_JSON):
        seq, par = _both(src, tmp_path, chunk=512)
        _assert_same(seq, par)
        assert par[0].rows_parsed > 0


def test_parallel_equals_sequential_many_chunks(tmp_path):
    for late, indent in ((False, None), (True, 1), (False, 2)):
        p = tmp_path / f"big_{late}_{indent}.json"
        p.write_text(json.dumps(_big_doc(late_header=late, indent=indent), indent=indent))
        seq, par = _both(p, tmp_path, chunk=1500)
        _assert_same(seq, par)
        assert par[0].header["hospital_name"] == "West Mercy Hospital"
        paths = par[1].column("source_path").to_pylist()
        assert "standard_charge_information[0].standard_charges[0].payers_information[0]" in paths
        n_items = len(_big_doc()["standard_charge_information"])
        assert any(x.startswith(f"standard_charge_information[{n_items - 1}].") for x in paths)


def test_parallel_odd_items_fall_back_identically(tmp_path):
    doc = _big_doc(n_copies=10)
    items = doc["standard_charge_information"]
    items[5]["standard_charges"][0]["gross_charge"] = "$1,234.00"  # string amount
    items[17]["code_information"][0]["code"] = 70551  # number where text is expected
    items[30]["standard_charges"][0]["payers_information"][0]["standard_charge_dollar"] = 999999999
    items[41]["standard_charges"] = []  # no charges
    items[52] = {"code_information": [{"code": "1", "type": "CPT"}], "description": "key order differs",
                 "standard_charges": [{"setting": "both", "gross_charge": 5}]}
    p = tmp_path / "odd.json"
    p.write_text(json.dumps(doc))
    seq, par = _both(p, tmp_path, chunk=3000)
    _assert_same(seq, par)
    rules = {f.rule for f in par[0].findings}
    assert {"nine_nines_placeholder", "missing_standard_charges"} <= rules


def test_parallel_syntax_error_and_header_only(tmp_path):
    doc = _big_doc(n_copies=5)
    text = json.dumps(doc)
    p = tmp_path / "cut.json"
    p.write_text(text[: len(text) * 2 // 3])  # truncated in the middle of the array
    seq, par = _both(p, tmp_path, chunk=2000)
    assert par[0].rows_parsed == seq[0].rows_parsed
    assert par[1].to_pylist() == seq[1].to_pylist()
    assert any(f.rule == "json_syntax_error" for f in par[0].findings)
    doc["standard_charge_information"] = []
    p2 = tmp_path / "empty.json"
    p2.write_text(json.dumps(doc))
    _assert_same(*_both(p2, tmp_path))


def test_scanner_respects_strings_and_escapes():
    buf = b'{"a":"x},{\\"y\\\\"},{"b":["]"]} , {"c":{"d":"}"}}\n]\n, "z": 1}'
    ends, close = _item_ends(buf)
    assert len(ends) == 3 and buf[: ends[0]] == b'{"a":"x},{\\"y\\\\"}'
    assert buf[: ends[1]].endswith(b'["]"]}') and buf[: ends[2]].endswith(b'"}"}}')
    assert buf[close : close + 1] == b"]" and close > ends[2]
    assert _closed_items(buf[: ends[2]]) == 3
    assert _closed_items(buf[: ends[0] - 1]) == 0  # inside the first item
    assert _closed_items(buf[: close + 1]) == 0  # leaves the array


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_num = st.one_of(st.none(), st.floats(min_value=0, max_value=1e7, allow_nan=False), st.integers(0, 10**6))
_payer = st.fixed_dictionaries({"payer_name": _text, "plan_name": _text, "methodology": _text,
                                "standard_charge_dollar": _num},
                               optional={"count": st.sampled_from(["1 through 10", "12", "0"]),
                                         "median_amount": _num, "estimated_amount": _num})
_charge = st.fixed_dictionaries({"setting": st.sampled_from(["inpatient", "outpatient", "both"])},
                                optional={"gross_charge": _num, "discounted_cash": _num,
                                          "payers_information": st.lists(_payer, max_size=3),
                                          "modifier_code": st.lists(st.sampled_from(["25", "59", "50"]),
                                                                    max_size=2)})
_item = st.fixed_dictionaries({"description": _text,
                               "code_information": st.lists(st.fixed_dictionaries(
                                   {"code": _text, "type": st.sampled_from(["CPT", "HCPCS", "RC"])}), max_size=2),
                               "standard_charges": st.lists(_charge, min_size=0, max_size=3)},
                              optional={"drug_information": st.fixed_dictionaries(
                                  {"unit": _num, "type": st.sampled_from(["ML", "UN"])})})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(_item, min_size=1, max_size=25), chunk=st.sampled_from([64, 300, 5000]),
       indent=st.sampled_from([None, 1]))
def test_parallel_equals_sequential_property(tmp_path, items, chunk, indent):
    doc = {"hospital_name": "H", "last_updated_on": "2024-01-01", "version": "2.0.0",
           "standard_charge_information": items}
    p = tmp_path / "prop.json"
    p.write_text(json.dumps(doc, indent=indent, ensure_ascii=bool(indent)))
    _assert_same(*_both(p, tmp_path, chunk=chunk))
