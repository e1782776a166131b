"""The chunked Arrow path for v3.0.0 JSON items (json_fast) gives exactly the sequential result.

Every JSON fixture and a set of generated documents (valid, each with one kind of defect, odd
layouts) are validated twice: with the chunked path forced on tiny chunks, and sequentially.
The reports (findings, counts, rows) must be identical; valid documents must take the fast path.
"""

from __future__ import annotations

import copy
import glob
import json
import os

import pytest

from price_pipeline.lib.parse.mrf import json_chunks
from price_pipeline.lib.validate import json_check, json_fast, validate_file
from price_pipeline.lib.validate.rules import ATTESTATION

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "validate")


@pytest.fixture
def chunked(monkeypatch):
    """Force the chunked path on small files, with small chunks; count the chunks per outcome."""
    monkeypatch.setattr(json_check, "CHUNKED_MIN_BYTES", 0)
    monkeypatch.setattr(json_check, "CHUNK_BYTES", 700)
    monkeypatch.setattr(json_chunks, "READ_BYTES", 512)
    seen = {"ok": 0, "raw": 0}
    orig = json_fast.check_chunk_v3

    def counting(chunk, base, cand):
        res = orig(chunk, base, cand)
        seen[res[0]] += 1
        return res

    monkeypatch.setattr(json_fast, "check_chunk_v3", counting)
    return seen


def both(path, monkeypatch, max_findings=1000):
    fast = validate_file(path, max_findings=max_findings).as_dict()
    monkeypatch.setattr(json_check, "CHUNKED", False)
    seq = validate_file(path, max_findings=max_findings).as_dict()
    monkeypatch.setattr(json_check, "CHUNKED", True)
    for d in (fast, seq):
        d.pop("seconds")
    return fast, seq


def payer(**kw):
    p = {"payer_name": "Aetna", "plan_name": "PPO", "methodology": "fee schedule", "standard_charge_dollar": 12.5}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not ...}


def item(i: int, **kw):
    it = {
        "description": f"Item {i} with " + '},{"description": inside a string \\ and " quote',
        "code_information": [{"code": f"{1000 + i}", "type": "CPT"}],
        "standard_charges": [{
            "setting": "both", "minimum": 1.5, "maximum": 99, "gross_charge": 120, "discounted_cash": 80,
            "payers_information": [
                payer(),
                payer(payer_name="Cigna", methodology="other", additional_payer_notes="see contract"),
                payer(standard_charge_dollar=..., standard_charge_percentage=55, count="0",
                      additional_payer_notes="none yet"),
                payer(standard_charge_dollar=..., standard_charge_algorithm="DRG x 1.2", count="1 through 10",
                      median_amount=10, **{"10th_percentile": 5, "90th_percentile": 20}),
            ],
        }, {"setting": "outpatient", "gross_charge": 3, "modifier_code": ["25"], "additional_generic_notes": "n"}],
    }
    if i % 3 == 0:
        it["code_information"].append({"code": "0002-1433-80", "type": "NDC"})
        it["drug_information"] = {"unit": 2, "type": "ML"}
    it.update(kw)
    return it


def doc(items, head=None, tail=None):
    d = {"hospital_name": "H", "last_updated_on": "2026-01-01", "version": "3.0.0",
         "location_name": ["H"], "hospital_address": ["1 Main St"], "license_information": {"state": "NC"},
         "attestation": {"attestation": ATTESTATION, "confirm_attestation": True, "attester_name": "A"},
         "type_2_npi": ["1234567893"]}
    d.update(head or {})
    d["standard_charge_information"] = items
    d.update(tail or {})
    return d


def write(tmp_path, name, obj_or_text, indent=None):
    p = tmp_path / name
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text, indent=indent)
    p.write_text(text, encoding="utf-8")
    return str(p)


ITEMS = [item(i) for i in range(40)]


def mutate(i, fn):
    items = copy.deepcopy(ITEMS)
    fn(items[i])
    return items


def _set(path, value):
    def fn(it):
        obj = it
        for k in path[:-1]:
            obj = obj[k]
        if value is ...:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
    return fn


P0 = ("standard_charges", 0, "payers_information", 0)
BAD = {
    "missing_description": _set(("description",), ...),
    "empty_description": _set(("description",), ""),
    "description_number": _set(("description",), 5),
    "no_codes": _set(("code_information",), []),
    "bad_code_type": _set(("code_information", 0, "type"), "cpt"),
    "ndc_without_drug": lambda it: (it["code_information"].append({"code": "1", "type": "NDC"}),
                                    it.pop("drug_information", None)),
    "drug_unit_zero": _set(("drug_information",), {"unit": 0, "type": "ML"}),
    "drug_empty": _set(("drug_information",), {}),
    "no_charges": _set(("standard_charges",), []),
    "bad_setting": _set(("standard_charges", 0, "setting"), "Both"),
    "negative_gross": _set(("standard_charges", 0, "gross_charge"), -1),
    "zero_min": _set(("standard_charges", 0, "minimum"), 0),
    "dollar_no_min": _set(("standard_charges", 0, "minimum"), ...),
    "string_max": _set(("standard_charges", 0, "maximum"), "99"),
    "empty_modifier_list": _set(("standard_charges", 1, "modifier_code"), []),
    "empty_modifier": _set(("standard_charges", 1, "modifier_code"), [""]),
    "empty_generic_notes": _set(("standard_charges", 1, "additional_generic_notes"), ""),
    "no_charge_at_all": lambda it: (it["standard_charges"][1].pop("gross_charge")),
    "empty_payers": _set(("standard_charges", 0, "payers_information"), []),
    "payer_no_plan": _set((*P0, "plan_name"), ...),
    "payer_empty_name": _set((*P0, "payer_name"), ""),
    "payer_bad_method": _set((*P0, "methodology"), "per case"),
    "payer_no_charge": _set((*P0, "standard_charge_dollar"), ...),
    "payer_zero_dollar": _set((*P0, "standard_charge_dollar"), 0),
    "payer_other_no_notes": _set(("standard_charges", 0, "payers_information", 1, "additional_payer_notes"), ...),
    "payer_pct_no_count": _set(("standard_charges", 0, "payers_information", 2, "count"), ...),
    "payer_count_zero_no_notes": _set(("standard_charges", 0, "payers_information", 2, "additional_payer_notes"),
                                      ...),
    "payer_alg_no_median": _set(("standard_charges", 0, "payers_information", 3, "median_amount"), ...),
    "payer_bad_count": _set(("standard_charges", 0, "payers_information", 3, "count"), "5"),
    "payer_count_number": _set(("standard_charges", 0, "payers_information", 3, "count"), 20),
    "payer_empty_alg": _set(("standard_charges", 0, "payers_information", 3, "standard_charge_algorithm"), ""),
    "null_notes": _set(("standard_charges", 0, "payers_information", 1, "additional_payer_notes"), None),
    "null_unknown_member": _set(("whatever",), None),
    "null_estimated_amount": _set((*P0, "estimated_amount"), None),
    "payer_not_object": _set(("standard_charges", 0, "payers_information", 0), "Aetna"),
    "item_list_of_codes_object": _set(("code_information",), {"code": "1", "type": "CPT"}),
    "billing_class_number": _set(("standard_charges", 0, "billing_class"), 3),
}
ALERTS = {
    "estimated_amount": _set((*P0, "estimated_amount"), 10),
    "nines_count": _set(("standard_charges", 0, "payers_information", 3, "count"), "999999999"),
    "nines_median": _set(("standard_charges", 0, "payers_information", 3, "median_amount"), 999999999),
    "nines_p90_float": _set(("standard_charges", 0, "payers_information", 3, "90th_percentile"), 999999999.0),
    "unknown_members": _set(("extra",), {"description": "nested", "list": [{"description": "x"}, {"a": 1}]}),
    "unicode": _set(("description",), "Crème brûlée \u2603 \U0001F600"),
    "words_like_tokens": _set(("description",), "Infusion, NaN-free, annulled nullity, Infinity pool"),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("where", [0, 17, 39])
def test_defects_match_sequential(tmp_path, monkeypatch, chunked, name, where):
    path = write(tmp_path, "d.json", doc(mutate(where, BAD[name])))
    fast, seq = both(path, monkeypatch)
    assert fast == seq
    assert not fast["valid"] or name in ("null_unknown_member", "billing_class_number", "null_estimated_amount")
    assert chunked["raw"] >= 1


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alerts_match_sequential(tmp_path, monkeypatch, chunked, name):
    items = copy.deepcopy(ITEMS)
    for i in (0, 5, 39):
        ALERTS[name](items[i])
    path = write(tmp_path, "a.json", doc(items))
    fast, seq = both(path, monkeypatch)
    assert fast == seq and fast["valid"]
    assert chunked["ok"] > 3 and chunked["raw"] == 0
    fast3, seq3 = both(path, monkeypatch, max_findings=2)  # capped findings, full counts
    assert fast3 == seq3


@pytest.mark.parametrize("indent", [None, 1])
@pytest.mark.parametrize("tail", [None, {"modifier_information": [{"description": "m", "code": "25",
                                                                     "modifier_payer_information": [
                                                                         {"payer_name": "A", "plan_name": "B",
                                                                          "description": "x"}]}]}])
def test_valid_layouts_take_fast_path(tmp_path, monkeypatch, chunked, indent, tail):
    path = write(tmp_path, "v.json", doc(ITEMS, tail=tail), indent=indent)
    fast, seq = both(path, monkeypatch)
    assert fast == seq and fast["valid"] and fast["rows_checked"] == len(ITEMS)
    assert chunked["ok"] > 3


@pytest.mark.parametrize("case", ["nan", "infinity", "inf", "syntax", "trailing", "missing_comma", "dup_key",
                                  "bad_utf8", "second_array", "tail_error", "empty_array", "top_level_after"])
def test_odd_documents_match_sequential(tmp_path, monkeypatch, chunked, case):
    text = json.dumps(doc(ITEMS, tail={"type_2_npi": ["1234567893"]} if case == "top_level_after" else None))
    mid = text.index('"description": "Item 20')
    if case == "nan":
        text = text.replace('"gross_charge": 120', '"gross_charge": NaN', 3)
    elif case == "infinity":
        text = text.replace('"gross_charge": 120', '"gross_charge": Infinity', 1)
    elif case == "inf":
        text = text.replace('"median_amount": 10', '"median_amount": Inf', 1)
    elif case == "syntax":
        text = text[:mid] + "]" + text[mid:]
    elif case == "trailing":
        text = text + " x"
    elif case == "missing_comma":
        k = text.index("}, {", mid)
        text = text[:k + 1] + " " + text[k + 2:]
    elif case == "dup_key":
        text = text.replace('"setting": "both"', '"setting": "both", "setting": "inpatient"', 1)
    elif case == "second_array":
        text = text[:-1] + ', "standard_charge_information": [{"description": ""}]}'
    elif case == "tail_error":
        text = text[:-1] + ', "hospital_name": }'
    elif case == "empty_array":
        text = json.dumps(doc([]))
    if case == "bad_utf8":
        p = tmp_path / "o.json"
        p.write_bytes(text.encode().replace(b"Item 20", b"Item \xff\xfe20"))
        path = str(p)
    else:
        path = write(tmp_path, "o.json", text)
    fast, seq = both(path, monkeypatch)
    assert fast == seq


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(FIX, "*.json"))), ids=os.path.basename)
def test_fixtures_match_sequential(monkeypatch, chunked, path):
    fast, seq = both(path, monkeypatch)
    assert fast == seq


@pytest.mark.parametrize("name", ["valid", "bad_setting", "nines_median"])
def test_gzip_stream_path_matches_sequential(tmp_path, monkeypatch, chunked, name):
    """Compressed files cannot be read by offset: they take the parser's streaming cutter."""
    import gzip

    fn = {"valid": lambda it: None, "bad_setting": BAD["bad_setting"], "nines_median": ALERTS["nines_median"]}[name]
    p = tmp_path / "g.json.gz"
    p.write_bytes(gzip.compress(json.dumps(doc(mutate(17, fn))).encode()))
    fast, seq = both(str(p), monkeypatch)
    assert fast == seq and fast["compression"] == "gzip"
    assert chunked["ok"] > 3


def test_plain_reader_cuts_by_offset(tmp_path, monkeypatch, chunked):
    """Plain files go through read_plain_file (chunks read by offset), with the same result."""
    calls = []
    orig = json_fast.read_plain_file
    monkeypatch.setattr(json_fast, "read_plain_file", lambda *a, **k: calls.append(1) or orig(*a, **k))
    path = write(tmp_path, "p.json", doc(mutate(39, BAD["zero_min"])), indent=1)
    fast, seq = both(path, monkeypatch)
    assert fast == seq and calls and not fast["valid"]


def test_json_path_does_not_import_pandas(tmp_path):
    """pa.array / pa.scalar / to_numpy import pandas (~0.2-1.3 s per process); the JSON path avoids them."""
    import subprocess
    import sys

    path = write(tmp_path, "n.json", doc(mutate(5, ALERTS["nines_median"])))
    code = ("import sys\nfrom price_pipeline.lib.validate import json_check, validate_file\n"
            "json_check.CHUNKED_MIN_BYTES = 0\njson_check.CHUNK_BYTES = 2000\n"
            f"r = validate_file({path!r})\nassert r.alerts == 1, r.as_dict()\nprint('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
