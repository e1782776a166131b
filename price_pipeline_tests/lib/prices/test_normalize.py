"""normalize_to_prices: charge kinds, primary code, item-level dedup, cross-format identity."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import itertools
import json
import random

import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake.schemas import PRICES_SCHEMA
from price_pipeline.lib.parse.mrf import parse_to_parquet
from price_pipeline.lib.prices.normalize import normalize_to_prices

from ..conftest import BROKEN, CMS


def prices(tmp_path, path, name, sha="sha"):
    s = parse_to_parquet(path, tmp_path / f"{name}.parsed.parquet", file_sha256=sha)
    n = normalize_to_prices([(str(tmp_path / f"{name}.parsed.parquet"), s.header, sha)],
                            tmp_path / f"{name}.prices.parquet", hospital_key="h1", memory_limit="256MB")
    t = pq.read_table(tmp_path / f"{name}.prices.parquet")
    assert t.num_rows == n and t.schema.equals(PRICES_SCHEMA)
    return t.to_pylist()


def kinds(rows):
    return dict(collections.Counter(r["charge_kind"] for r in rows))


def comparable(rows, drop=("source_row", "source_path")):
    return collections.Counter(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True, default=str)
                               for r in rows)


def test_v3_tall_kinds_and_dedup(tmp_path):
    rows = prices(tmp_path, CMS / "V3.0.0_Tall_CSV_Format_Example.csv", "t")
    assert kinds(rows) == {
        "gross": 17, "discounted_cash": 17, "minimum": 18, "maximum": 17, "negotiated_dollar": 29,
        "negotiated_percentage": 8, "negotiated_algorithm": 8, "median": 9, "percentile_10th": 9,
        "percentile_90th": 9, "count": 10}
    mri = [r for r in rows if r["description"] == "MRI of brain (no contrast)"]
    gross = [r for r in mri if r["charge_kind"] == "gross"]
    assert len(gross) == 1 and gross[0]["source_row"] == 4 and gross[0]["payer_name"] is None
    assert gross[0]["amount"] == 1200 and gross[0]["percentage"] is None and gross[0]["value_text"] is None
    assert {r["primary_code"] for r in mri} == {"70551"} and mri[0]["primary_code_type"] == "CPT"
    pct = next(r for r in rows if r["charge_kind"] == "negotiated_percentage" and r["description"] == "ER level 3")
    assert pct["percentage"] == 80 and pct["amount"] is None and pct["payer_name"] == "Platform Health Insurance"
    cnt = next(r for r in rows if r["charge_kind"] == "count" and r["description"] == "Psychoses")
    assert cnt["value_text"] == "1 through 10"
    r0 = rows[0]
    assert r0["hospital_name"] == "West Mercy Hospital" and r0["template_version"] == "3.0.0"
    assert r0["last_updated_on"] == dt.date(2026, 4, 1) and r0["hospital_key"] == "h1"
    # Item-level dedup: tall repeats min 1400 on both payer rows of the bed -> one row, from the
    # first source row. (18 minimums: tall row 12 has a stray min 150 for the metabolic panel.)
    bed_min = [r for r in rows if r["description"] == "Medical surgical bed" and r["charge_kind"] == "minimum"]
    assert len(bed_min) == 1 and bed_min[0]["source_row"] == 10


def test_primary_code_priority(tmp_path):
    head = (BROKEN / "small_tall.csv").read_text().split("\n")[:3]
    body = [
        "a,0001,LOCAL,99213,CPT,outpatient,,,10,,,,,,,,,,,,,,,",
        "b,0001,LOCAL,470,MS-DRG,inpatient,,,10,,,,,,,,,,,,,,,",
        "c,0450,RC,J1100,HCPCS,outpatient,,,10,,,,,,,,,,,,,,,",
        "d,1234-5678-90,NDC,0250,RC,both,1,UN,10,,,,,,,,,,,,,,,",
        "e,0001,LOCAL,12,APR-DRG,inpatient,,,10,,,,,,,,,,,,,,,",
        "f,0001,LOCAL,12,TRIS-DRG,inpatient,,,10,,,,,,,,,,,,,,,",
        "g,0001,LOCAL,D0120,CDT,outpatient,,,10,,,,,,,,,,,,,,,",
        "h,0001,LOCAL,X1,CDM,outpatient,,,10,,,,,,,,,,,,,,,",
        "i,0001,LOCAL,,,outpatient,,,10,,,,,,,,,,,,,,,",
    ]
    p = tmp_path / "codes.csv"
    p.write_text("\n".join(head + body) + "\n")
    got = {r["description"]: (r["primary_code"], r["primary_code_type"]) for r in prices(tmp_path, p, "c")}
    assert got == {"a": ("99213", "CPT"), "b": ("470", "MS-DRG"), "c": ("J1100", "HCPCS"),
                   "d": ("01234567890", "NDC"), "e": ("12", "APR-DRG"), "f": ("12", "TRIS-DRG"),
                   "g": ("D0120", "CDT"), "h": ("X1", "CDM"), "i": ("0001", "LOCAL")}


def test_official_examples_differences_are_documented(tmp_path):
    """The official v3 trio does NOT encode identical data; these are the known differences.

    * Tall row 12 gives "Basic metabolic panel" ``standard_charge|min`` = 150 (row 13 and the wide
      and JSON files say 125): one extra ``minimum`` row in tall.
    * JSON ``modifier_information`` has no percentage: the 6 modifier percentages of the CSVs
      (150/145, 62.5/60, 93.75/87) are only text there -> 6 fewer negotiated_percentage rows.
    * The tall template has no payer-notes column: tall puts payer notes in
      additional_generic_notes (with a leading space), wide/JSON in additional_payer_notes.
    Everything else (amounts, percentages, algorithms, payers, codes, kinds) is identical; the
    identity property itself is proven on a generated trio below.
    """
    t = prices(tmp_path, CMS / "V3.0.0_Tall_CSV_Format_Example.csv", "t")
    w = prices(tmp_path, CMS / "V3.0.0_Wide_CSV_Format_Example.csv", "w")
    j = prices(tmp_path, CMS / "V3.0.0_JSON_Format_Example.json", "j")
    drop = ("source_row", "source_path", "additional_payer_notes", "additional_generic_notes")
    ct, cw, cj = comparable(t, drop), comparable(w, drop), comparable(j, drop)
    only_tall = [json.loads(k) for k in (ct - cw).elements()]
    only_wide = [json.loads(k) for k in (cw - ct).elements()]
    assert only_wide == []
    assert [(r["description"], r["charge_kind"], r["amount"]) for r in only_tall] == [
        ("Basic metabolic panel", "minimum", 150.0)]
    no_mod_pct = [json.loads(k) for k in (cw - cj).elements()]
    assert sorted(r["percentage"] for r in no_mod_pct) == [60, 62.5, 87, 93.75, 145, 150]
    assert all(r["charge_kind"] == "negotiated_percentage" and r["modifiers"] for r in no_mod_pct)
    assert not (cj - cw)


# -- a small generated trio: the same data written as tall CSV, wide CSV and JSON ------------------
def make_trio(tmp_path, seed=3, n_items=40):
    rnd = random.Random(seed)
    payers = [("Aetna", "PPO"), ("Cigna, Inc.", "Open Access"), ("Blue \"Shield\"", "HMO")]
    items = []
    for i in range(n_items):
        codes = [(str(rnd.randint(10000, 99999)), "CPT")] + ([("0" + str(rnd.randint(100, 999)), "RC")]
                                                            if rnd.random() < 0.5 else [])
        charges = {}
        for pn in payers:
            if rnd.random() < 0.6:
                kind = rnd.choice(["dollar", "pct", "algo"])
                c = {"methodology": "fee schedule"}
                if kind == "dollar":
                    c["standard_charge_dollar"] = round(rnd.uniform(10, 5000), 2)
                elif kind == "pct":
                    c.update(standard_charge_percentage=rnd.choice([50, 80, 92.5]), median_amount=123.45,
                             **{"10th_percentile": 100.0, "90th_percentile": 150.0}, count="1 through 10")
                else:
                    c.update(standard_charge_algorithm=f"Case rate, item {i}; see \"contract\"\nsection 4",
                             count="12", median_amount=99.0, **{"10th_percentile": 90.0, "90th_percentile": 120.0})
                charges[pn] = c
        gross = round(rnd.uniform(100, 9000), 2) if rnd.random() < 0.8 else None
        items.append({"description": f"Item {i}, \"special\"\nline two" if i % 7 == 0 else f"Item {i}",
                      "codes": codes, "setting": rnd.choice(["inpatient", "outpatient", "both"]),
                      "gross": gross, "cash": round(gross * 0.8, 2) if gross else None,
                      "min": 10.0 if charges else None, "max": 5000.0 if charges else None, "charges": charges})
    hdr1 = ["hospital_name", "last_updated_on", "version", "location_name", "hospital_address", "license_number|TX"]
    hdr2 = ["Trio Hospital", "2025-06-30", "3.0.0", "Trio", "1 Road, Austin, TX", "999"]
    code_cols = ["code|1", "code|1|type", "code|2", "code|2|type"]

    def code_vals(it):
        c = it["codes"] + [("", "")] * (2 - len(it["codes"]))
        return [c[0][0], c[0][1], c[1][0], c[1][1]]

    def num(v):
        return "" if v is None else repr(v)

    payer_fields = [("standard_charge|negotiated_dollar", "standard_charge_dollar"),
                    ("standard_charge|negotiated_percentage", "standard_charge_percentage"),
                    ("standard_charge|negotiated_algorithm", "standard_charge_algorithm"),
                    ("median_amount", "median_amount"), ("10th_percentile", "10th_percentile"),
                    ("90th_percentile", "90th_percentile"), ("count", "count"),
                    ("standard_charge|methodology", "methodology")]
    base_cols = ["description", *code_cols, "setting", "standard_charge|gross", "standard_charge|discounted_cash",
                 "standard_charge|min", "standard_charge|max"]

    def base_vals(it):
        return [it["description"], *code_vals(it), it["setting"], num(it["gross"]), num(it["cash"]),
                num(it["min"]), num(it["max"])]

    def val(c, k):
        v = c.get(k)
        return "" if v is None else (v if isinstance(v, str) else repr(v))

    with open(tmp_path / "trio_tall.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([hdr1, hdr2, base_cols + ["payer_name", "plan_name"] + [h for h, _ in payer_fields]])
        for it in items:
            if not it["charges"]:
                w.writerow(base_vals(it) + [""] * (2 + len(payer_fields)))
            for (payer, plan), c in it["charges"].items():
                w.writerow(base_vals(it) + [payer, plan] + [val(c, k) for _, k in payer_fields])
    with open(tmp_path / "trio_wide.csv", "w", newline="") as f:
        w = csv.writer(f)
        wide_cols = []
        for payer, plan in payers:
            for h, _ in payer_fields:
                parts = h.split("|")
                wide_cols.append(f"standard_charge|{payer}|{plan}|{parts[1]}" if len(parts) == 2
                                 else f"{h}|{payer}|{plan}")
        w.writerows([hdr1, hdr2, base_cols + wide_cols])
        for it in items:
            row = base_vals(it)
            for pn in payers:
                c = it["charges"].get(pn, {})
                row += [val(c, k) for _, k in payer_fields]
            w.writerow(row)
    doc = {"hospital_name": "Trio Hospital", "last_updated_on": "2025-06-30", "version": "3.0.0",
           "location_name": ["Trio"], "hospital_address": ["1 Road, Austin, TX"],
           "license_information": {"license_number": "999", "state": "TX"}, "standard_charge_information": []}
    for it in items:
        sc = {"setting": it["setting"]}
        for k, jk in (("gross", "gross_charge"), ("cash", "discounted_cash"), ("min", "minimum"), ("max", "maximum")):
            if it[k] is not None:
                sc[jk] = it[k]
        if it["charges"]:
            sc["payers_information"] = [{"payer_name": p, "plan_name": pl, **c} for (p, pl), c in it["charges"].items()]
        doc["standard_charge_information"].append({
            "description": it["description"], "code_information": [{"code": c, "type": t} for c, t in it["codes"]],
            "standard_charges": [sc]})
    (tmp_path / "trio.json").write_text(json.dumps(doc))
    return items


def test_cross_format_identity(tmp_path):
    make_trio(tmp_path)
    t = prices(tmp_path, tmp_path / "trio_tall.csv", "tt")
    w = prices(tmp_path, tmp_path / "trio_wide.csv", "ww")
    j = prices(tmp_path, tmp_path / "trio.json", "jj")
    assert len(t) > 100
    assert comparable(t) == comparable(w) == comparable(j)
    assert {r["source_path"] is not None for r in j} == {True}
    assert {r["source_row"] is not None for r in t} == {True}


@pytest.mark.parametrize("seed", [1, 2])
def test_multi_file_hospital(tmp_path, seed):
    make_trio(tmp_path, seed=seed, n_items=10)
    s1 = parse_to_parquet(tmp_path / "trio_tall.csv", tmp_path / "a.parquet", file_sha256="A")
    s2 = parse_to_parquet(tmp_path / "trio.json", tmp_path / "b.parquet", file_sha256="B")
    n = normalize_to_prices([(str(tmp_path / "a.parquet"), s1.header, "A"), (str(tmp_path / "b.parquet"), s2.header, "B")],
                            tmp_path / "p.parquet", hospital_key="h")
    t = pq.read_table(tmp_path / "p.parquet").to_pylist()
    by = collections.Counter(r["file_sha256"] for r in t)
    assert by["A"] == by["B"] and by["A"] + by["B"] == n


def test_published_file_keeps_its_schema_and_the_statistics_readers_prune_with(tmp_path):
    """The writer skips min/max statistics where they prune nothing (the code list, plan,
    methodology...: mixed in every row group), keeps them on the columns readers select by
    (hospital, version, payer_name IS NULL for item-level rows, amounts), and the file's schema
    is PRICES_SCHEMA whichever reader asks (Arrow's stored schema and the Parquet schema alone)."""
    make_trio(tmp_path, n_items=10)
    s = parse_to_parquet(tmp_path / "trio_tall.csv", tmp_path / "a.parquet", file_sha256="A")
    assert normalize_to_prices([(str(tmp_path / "a.parquet"), s.header, "A")], tmp_path / "p.parquet",
                               hospital_key="h") > 0
    f = pq.ParquetFile(tmp_path / "p.parquet")
    assert f.schema_arrow.remove_metadata().equals(PRICES_SCHEMA)
    group = f.metadata.row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).is_stats_set for i in range(group.num_columns)}
    for column in ("hospital_key", "file_sha256", "source_row", "payer_name", "charge_kind", "amount"):
        assert stats[column], column
    for column in ("codes.list.element.code", "plan_name", "methodology", "hospital_name"):
        assert not stats[column], column


def test_empty_input(tmp_path):
    assert normalize_to_prices([], tmp_path / "e.parquet", hospital_key="h") == 0
    assert pq.read_table(tmp_path / "e.parquet").schema.equals(PRICES_SCHEMA)


def test_malformed_code_is_never_primary(tmp_path):
    """Issue 18 item 3: an eight-digit "HCPCS" code or a bracketed NDC used to become primary."""
    head = (BROKEN / "small_tall.csv").read_text().split("\n")[:3]
    body = [
        # malformed HCPCS (8 digits) beside a well-formed revenue code: the revenue code is primary
        "a,12345678,HCPCS,0250,RC,outpatient,,,10,,,,,,,,,,,,,,,",
        # NDC with a bracketed package suffix: cleaned to 11 digits and well formed
        "b,43598-426-60 [359385],NDC,0636,RC,outpatient,,,10,,,,,,,,,,,,,,,",
        # nothing well formed: the malformed code by type priority is still chosen
        "c,12345678,HCPCS,,,outpatient,,,10,,,,,,,,,,,,,,,",
    ]
    p = tmp_path / "malformed.csv"
    p.write_text("\n".join(head + body) + "\n")
    got = {r["description"]: (r["primary_code"], r["primary_code_type"]) for r in prices(tmp_path, p, "m")}
    assert got == {"a": ("0250", "RC"), "b": ("43598042660", "NDC"), "c": ("12345678", "HCPCS")}


def test_pairs_skipping_duckdb_are_exactly_what_the_macros_give():
    """The cleaner's shortcut (pairs the macros leave unchanged are not sent to DuckDB) must agree
    with the macros on every pair it takes, and must take the common clean shapes."""
    import itertools

    import duckdb
    import pyarrow as pa

    from price_pipeline.demo import gen_mrf
    from price_pipeline.lib.prices import codes
    from price_pipeline.lib.prices.normalize import _already_clean

    codes_seen = ["99213", "0001U", "4", "12", "0", "99213-26", "9921", "q9881", "Q9881", "J1100", "001", "470", "0470", "DRG 4",
                  "0450", "450", "04501", "00002143380", "0002-1433-80", "N400002143380", "12345678901 [x]",
                  " 99213", "99213 ", "9 9213", "ABC", "abc", "A.B-C/1", "x y", "", "Ａ1234", "١٢٣٤٥", "1234\n",
                  "99213\u00a0", "+1", "`", "~{|}"]
    types_seen = ["CPT", "HCPCS", "MS-DRG", "DRG", "CMS-DRG", "APR-DRG", "RC", "NDC", "LOCAL", "CDM", "CDT", "HIPPS",
                  "APC", "ICD", "EAPG", "TRIS-DRG", "cpt", " CPT", "CPT ", "HCPC", "MSDRG", "REV", "REVENUE", "MS DRG",
                  "C-P-T", "", None, "X9", "9X"]
    rng, generator = random.Random(5), gen_mrf.Hospital(seed=5, payers=3)
    generated = [pair for _ in range(3000) for pair in generator._codes(rng)[0]]  # the generator's own shapes
    pairs = list(dict.fromkeys(list(itertools.product(codes_seen + [None], types_seen)) + generated))
    con = duckdb.connect()
    codes.register(con)
    sql = con.execute(
        "SELECT pp_clean_code(c.code, c.type), pp_clean_code_type(c.type),"
        " pp_code_rank(pp_clean_code(c.code, c.type), pp_clean_code_type(c.type))"
        " FROM (SELECT unnest($p) AS c, generate_subscripts($p, 1) AS i) ORDER BY i",
        {"p": [{"code": c, "type": t} for c, t in pairs]}).fetchall()
    def shortcut(pairs):
        return _already_clean(pa.array([c for c, _ in pairs], pa.string()), pa.array([t for _, t in pairs], pa.string()))

    taken = 0
    for (code, code_type), (clean_code, clean_type, rank), fast in zip(pairs, sql, shortcut(pairs), strict=True):
        if fast >= 0:
            taken += 1
            assert (clean_code, clean_type, rank) == (code, code_type, fast), (code, code_type)
    common = [("99213", "CPT"), ("J1100", "HCPCS"), ("470", "MS-DRG"), ("0450", "RC"), ("00002143380", "NDC"),
              ("x y", "LOCAL"), ("ABC", "CDT"), ("123", "APR-DRG")]
    assert (shortcut(common) >= 0).all()
    assert taken > 100


def test_items_of_their_own_skip_the_group_by_and_equal_the_oracle(tmp_path, monkeypatch):
    """Spilled item rows whose identity occurs once are written without the GROUP BY: they must be
    the rows the SQL normaliser writes, -0 amounts and drug units included, and so must items whose
    identity repeats (routed to the GROUP BY)."""
    from price_pipeline.lib.prices import normalize

    from . import normalize_oracle

    body = [
        "Lone zero,99999,CPT,,,outpatient,,,-0,-0,Aetna,PPO,,0,,,,,,,fee schedule,-0,-0,",
        "Lone drug,0002-1433-80,NDC,,,both,-0,UN,30,,Aetna,PPO,,20,,,,,,,fee schedule,20,20,note",
        "Far apart,J1100,HCPCS,,,outpatient,,,20,18,Aetna,PPO,,10,,,,,,,fee schedule,10,12,first",
        "Plain,0450,RC,,,inpatient,,,100,90,Cigna,HMO,,60,,,,,,,fee schedule,50,60,",
        "Far apart,J1100,HCPCS,,,outpatient,,,20,18,Cigna,HMO,,11,,,,,,,fee schedule,10,12,later",
    ]
    args = _parsed_small_tall(tmp_path, "lone", body)
    routed = []
    real = normalize._aggregate_items
    monkeypatch.setattr(normalize, "_aggregate_items",
                        lambda con, spill, *a: routed.append(pq.read_table(spill).num_rows) or real(con, spill, *a))
    normalize_to_prices(args, tmp_path / "new.parquet", hospital_key="h1")
    normalize_oracle.normalize_to_prices(args, tmp_path / "old.parquet", hospital_key="h1")

    def rows(p):
        return collections.Counter(json.dumps(r, sort_keys=True, default=repr) for r in pq.read_table(p).to_pylist())

    assert rows(tmp_path / "new.parquet") == rows(tmp_path / "old.parquet")
    assert routed == [2]  # only the two "Far apart" runs went through the GROUP BY


@pytest.mark.parametrize("kind", ["int", "str"])
def test_run_min_matches_a_per_run_reference(kind):
    """_run_min (stage 1's per-run smallest row / path / notes key, without Arrow's group_by,
    which imports pandas) against Python's min over each run: NULLs skipped, NULL when a run has
    only NULLs, strings compared by their UTF-8 bytes as DuckDB does."""
    import numpy as np
    import pyarrow as pa

    from price_pipeline.lib.prices.normalize import _run_min

    rnd = random.Random(7)
    pool = ["a", "b", "ab", "B", "é", "$/x[0]", "10", "9", ""] if kind == "str" else [0, -1, 5, 10, 9, 2**40]
    for _ in range(200):
        n = rnd.randint(1, 40)
        values = [rnd.choice(pool) if rnd.random() > rnd.choice([0.0, 0.3, 1.0]) else None for _ in range(n)]
        starts = np.array([0] + sorted(rnd.sample(range(1, n), rnd.randint(0, n - 1))), np.int64) if n > 1 \
            else np.zeros(1, np.int64)
        bounds = [*starts.tolist(), n]
        expected = []
        for a, b in itertools.pairwise(bounds):
            present = [v for v in values[a:b] if v is not None]
            key = (lambda v: v.encode()) if kind == "str" else (lambda v: v)
            expected.append(min(present, key=key) if present else None)
        arr = pa.array(values, pa.string() if kind == "str" else pa.int64())
        assert _run_min(arr, starts).to_pylist() == expected, (values, starts)


def _parsed_small_tall(tmp_path, name: str, body: list[str]) -> list[tuple]:
    """``body`` rows under the small tall test file's header, parsed: normalize_to_prices' input."""
    head = (BROKEN / "small_tall.csv").read_text().split("\n")[:3]
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(head + body) + "\n")
    parsed = tmp_path / f"{name}.parquet"
    summary = parse_to_parquet(path, parsed, file_sha256="s")
    return [(str(parsed), summary.header, "s")]


def _messy_codes_file(tmp_path):
    """A parsed tall file whose four (code, type) pairs all need the cleaning macros."""
    body = [  # pairs the shortcut leaves to the macros: lower case, spaces, a synonym type
        "Office visit, 99213 ,cpt,0450,REV,outpatient,,,100,90,Aetna,PPO,,60,,,,,,,fee schedule,50,60,",
        "Injection,j1100,HCPCS,,,outpatient,,,20,18,Aetna,PPO,,10,,,,,,,fee schedule,10,12,",
        "Drug,0002-1433-80,NDC,,,both,1,UN,30,,Cigna,HMO,,20,,,,,,,fee schedule,20,20,note",
    ]
    return _parsed_small_tall(tmp_path, "messy", body)


def test_pairs_cleaned_before_are_not_queried_again_and_give_the_same_rows(tmp_path, monkeypatch):
    """The macros' results are kept for the process (_MACRO_RESULTS): normalising a file whose
    pairs were all cleaned before (and whose items are all distinct) opens no DuckDB connection,
    and writes the same rows as the first normalisation, which cleaned them with the macros."""
    import duckdb

    from price_pipeline.lib.prices import normalize

    args = _messy_codes_file(tmp_path)
    monkeypatch.setattr(normalize, "_MACRO_RESULTS", {})
    normalize_to_prices(args, tmp_path / "first.parquet", hospital_key="h1")
    assert normalize._MACRO_RESULTS[("j1100", "HCPCS")] == ("J1100", "HCPCS", 2)
    assert normalize._MACRO_RESULTS[("0002-1433-80", "NDC")] == ("00002143380", "NDC", 6)

    connects = []
    real_connect = duckdb.connect
    monkeypatch.setattr(normalize.duckdb, "connect", lambda *a, **kw: connects.append(1) or real_connect(*a, **kw))
    normalize_to_prices(args, tmp_path / "second.parquet", hospital_key="h1")
    assert connects == []
    assert pq.read_table(tmp_path / "second.parquet").equals(pq.read_table(tmp_path / "first.parquet"))


def test_the_process_cache_of_macro_results_stays_within_its_bound(tmp_path, monkeypatch):
    """More new pairs than MACRO_CACHE_PAIRS: the cache is cleared, never grows past its bound,
    and the rows are those written with room to spare."""
    from price_pipeline.lib.prices import normalize

    args = _messy_codes_file(tmp_path)
    monkeypatch.setattr(normalize, "_MACRO_RESULTS", {})
    normalize_to_prices(args, tmp_path / "roomy.parquet", hospital_key="h1")
    monkeypatch.setattr(normalize, "_MACRO_RESULTS", {("x", "y"): ("X", "Y", 9)})
    monkeypatch.setattr(normalize, "MACRO_CACHE_PAIRS", 2)
    normalize_to_prices(args, tmp_path / "tight.parquet", hospital_key="h1")
    assert normalize._MACRO_RESULTS == {}
    assert pq.read_table(tmp_path / "tight.parquet").equals(pq.read_table(tmp_path / "roomy.parquet"))
