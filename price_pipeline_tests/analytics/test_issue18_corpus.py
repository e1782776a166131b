"""Issue 18: a small generated corpus with one shape per analytics defect, built with a real ``dbt build``.

Six hospitals (c1-c6) in the shapes real files use; every expected value below is worked out
from the rows in :func:`corpus`. Each test fails on the code before issue 18 (columns missing or
values different) and passes after it:

1. payer classes — ``test_payer_classes_and_review_queue``
2. one code, two cells — ``test_one_cell_per_code``
3. malformed codes — ``test_malformed_codes_are_harmonised_and_counted`` (the primary-code choice
   itself is the normaliser's: ``lib/prices/test_normalize.py::test_malformed_code_is_never_primary``)
4. item identity / drugs like with like — ``test_item_identity_and_per_unit_drug_cells``
5. evidence thresholds — ``test_price_index_evidence_rule``
8. analyst-facing details — ``test_marts_rounded_described_and_counted``
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake.schemas import PRICE_VERSIONS_SCHEMA, PRICES_SCHEMA

from .test_dbt_project import query, run_dbt

HOSPITALS = {  # key: (state, price factor)
    "c1": ("TX", 0.8), "c2": ("TX", 0.9), "c3": ("TX", 1.0), "c4": ("FL", 1.1), "c5": ("FL", 1.2), "c6": ("FL", 1.0),
}
INDEX_CODES = [f"{10001 + i}" for i in range(35)]  # 35 CPT codes priced by c1-c5: enough evidence


def _row(hospital: str, row: int, code: str, kind: str, *, code_type="CPT", amount=None, value_text=None,
         payer=None, plan=None, codes=None, description=None, drug_unit=None, drug_type=None) -> dict:
    record = {name: None for name in PRICES_SCHEMA.names}
    record.update(
        hospital_key=hospital, file_sha256=hospital[-1] * 64, source_row=row, hospital_name=f"{hospital} Hospital",
        last_updated_on=dt.date(2026, 5, 1), template_version="3.0.0",
        description=description or f"Service {code}", setting="outpatient", billing_class="facility",
        primary_code=code, primary_code_type=code_type, codes=codes or [{"code": code, "type": code_type}],
        payer_name=payer, plan_name=plan, charge_kind=kind, amount=amount, value_text=value_text,
        drug_unit_of_measurement=drug_unit, drug_type_of_measurement=drug_type,
    )
    return record


def corpus() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {h: [] for h in HOSPITALS}
    n = iter(range(4, 10_000))
    for h, (_, factor) in HOSPITALS.items():
        if h == "c6":
            # Item 5: one compared cell only -> insufficient evidence, no rank.
            rows[h].append(_row(h, next(n), INDEX_CODES[0], "gross", amount=100.0))
            continue
        for i, code in enumerate(INDEX_CODES):
            rows[h].append(_row(h, next(n), code, "gross", amount=round((100 + 10 * i) * factor, 2)))
    # Item 2: the same five-digit code labelled CPT, HCPCS and " hcpcs"; a J-code labelled CPT.
    for h, label, amount in (("c1", "CPT", 100.0), ("c2", "HCPCS", 110.0), ("c3", " hcpcs", 120.0)):
        rows[h].append(_row(h, next(n), "99213", "gross", code_type=label, amount=amount,
                            description="Office visit" if h != "c3" else "OFFICE VISIT EST"))
    for h in ("c1", "c2", "c3"):
        rows[h].append(_row(h, next(n), "J3490", "gross", code_type="CPT", amount=50.0))
    # Item 3: an NDC with a bracketed suffix as primary (a lake written before the cleaning rule);
    # an eight-digit "HCPCS" code as primary (nothing else) and as a secondary code.
    for h in ("c1", "c2", "c4"):
        rows[h].append(_row(h, next(n), "43598-426-60 [359385]", "gross", code_type="NDC", amount=30.0,
                            drug_unit=1.0, drug_type="UN"))
    rows["c5"].append(_row("c5", next(n), "12345678", "gross", code_type="HCPCS", amount=40.0))
    rows["c4"].append(_row("c4", next(n), "0250", "gross", code_type="RC", amount=40.0,
                           codes=[{"code": "12345678", "type": "HCPCS"}, {"code": "0250", "type": "RC"}]))
    # Item 4: at c1 two J1100 items differing only in NDC (same description and units); per-unit
    # prices at c2 (1 UN) and c3 (10 UN for 100 = 10 per unit).
    for ndc, amount in (("00002143380", 10.0), ("63323050601", 30.0)):
        rows["c1"].append(_row("c1", next(n), "J1100", "gross", code_type="HCPCS", amount=amount,
                               codes=[{"code": "J1100", "type": "HCPCS"}, {"code": ndc, "type": "NDC"}],
                               description="Dexamethasone sodium phosphate 1 mg", drug_unit=1.0, drug_type="UN"))
    rows["c2"].append(_row("c2", next(n), "J1100", "gross", code_type="HCPCS", amount=12.0,
                           description="Dexamethasone sodium phosphate 1 mg", drug_unit=1.0, drug_type="UN"))
    rows["c3"].append(_row("c3", next(n), "J1100", "gross", code_type="HCPCS", amount=100.0,
                           description="Dexamethasone sodium phosphate 1 mg", drug_unit=10.0, drug_type="UN"))
    # Item 8: amounts with sub-cent digits; count and algorithm rows beside negotiated dollars.
    for h, amount in (("c1", 45.678), ("c2", 45.671), ("c3", 45.679)):
        rows[h].append(_row(h, next(n), "80053", "gross", amount=amount))
    for kind, amount, text in (("negotiated_dollar", 60.0, None), ("negotiated_dollar", 70.0, None),
                               ("count", None, "1 through 10"), ("negotiated_algorithm", None, "120% of Medicare")):
        rows["c1"].append(_row("c1", next(n), "80053", kind, amount=amount, value_text=text,
                               payer="Aetna", plan="PPO"))
    # Item 1: payer spellings of real files.
    for payer, plan in (("Medicare Managed Care Plan", None), ("WellCare", "Managed Medicaid"),
                        ("Acme_MedicareAdvantage", None), ("BlueCrossBlueShield", None),
                        ("Some_Medicaid_ Inpatient_Rate", None), ("Zenith", "Plan 7")):
        rows["c2"].append(_row("c2", next(n), "80053", "negotiated_dollar", amount=50.0, payer=payer, plan=plan))
    return rows


def write_corpus(lake: Path) -> None:
    for key, hospital_rows in corpus().items():
        sha = key[-1] * 64
        table = pa.Table.from_pylist(hospital_rows, schema=PRICES_SCHEMA)
        current = lake / "prices" / f"hospital_key={key}"
        history = lake / "prices_history" / f"hospital_key={key}"
        current.mkdir(parents=True)
        history.mkdir(parents=True)
        pq.write_table(table, current / "prices.parquet")
        pq.write_table(table, history / f"file_sha256={sha}.parquet")
        seen = dt.datetime(2026, 5, 2, tzinfo=dt.UTC)
        version = {"hospital_key": key, "file_sha256": sha, "version_seq": 1, "url": f"https://{key}.example.org/mrf.csv",
                   "last_updated_on": dt.date(2026, 5, 1), "template_version": "3.0.0", "rows": table.num_rows,
                   "is_current": True, "first_seen_at": seen, "last_seen_at": seen, "superseded_at": None}
        pq.write_table(pa.Table.from_pylist([version], schema=PRICE_VERSIONS_SCHEMA), history / "versions.parquet")
    (lake / "catalog").mkdir()
    keys = list(HOSPITALS)
    pq.write_table(pa.table({
        "hospital_key": keys, "ccn": [f"4500{i}" for i in range(len(keys))], "name": [f"Hospital {k}" for k in keys],
        "address": ["1 Main St"] * len(keys), "city": ["Springfield"] * len(keys),
        "state": [HOSPITALS[k][0] for k in keys], "zip": ["07001"] * len(keys),
        "website": [f"https://{k}.example.org" for k in keys], "status": ["active"] * len(keys),
    }), lake / "catalog" / "hospitals.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("issue18")
    write_corpus(tmp / "lake")
    started = time.monotonic()
    result = run_dbt(["build", "--target", "embedded"], tmp=tmp)
    assert result.returncode == 0, f"dbt build failed after {time.monotonic() - started:.1f}s:\n{result.stdout}"
    return tmp


def rows_as_dicts(tmp: Path, sql: str, params: list | None = None) -> list[dict]:
    import duckdb

    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as conn:
        cursor = conn.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def test_payer_classes_and_review_queue(built: Path) -> None:
    got = {(r["payer_name"], r["plan_name"]): r for r in rows_as_dicts(built, "select * from int_payer_map")}
    expected = {
        ("Medicare Managed Care Plan", None): ("medicare_advantage", None, "rule"),
        # the seed's payer-wide WellCare row (class medicare_advantage) no longer beats the product word
        ("WellCare", "Managed Medicaid"): ("managed_medicaid", "Centene", "seed_payer"),
        ("Acme_MedicareAdvantage", None): ("medicare_advantage", None, "rule"),
        ("BlueCrossBlueShield", None): ("commercial", "Blue Cross Blue Shield", "rule"),
        ("Some_Medicaid_ Inpatient_Rate", None): ("medicaid_ffs", "Medicaid", "rule"),
        ("Zenith", "Plan 7"): ("unknown", None, "unmapped"),
        ("Aetna", "PPO"): ("commercial", "Aetna", "seed_payer"),
    }
    assert {k: (got[k]["payer_class"], got[k]["payer_canonical"], got[k]["mapping_method"]) for k in expected} == expected
    # Never 'unmapped' beside a rule-assigned class.
    assert not [k for k, r in got.items() if r["mapping_method"] == "unmapped" and r["payer_class"] != "unknown"]
    # The review queue lists only what the rules could not decide.
    queue = {(r["payer_name"], r["plan_name"]): r["review_reason"] for r in rows_as_dicts(built, "select * from review_unmapped_payers")}
    assert queue == {
        ("Zenith", "Plan 7"): "no_payer_no_class",
        ("Medicare Managed Care Plan", None): "no_canonical_payer",
        ("Acme_MedicareAdvantage", None): "no_canonical_payer",
    }


def test_one_cell_per_code(built: Path) -> None:
    cells = rows_as_dicts(
        built,
        "select primary_code, primary_code_type, published_code_types, n_hospitals, median_value "
        "from mart_price_distribution where primary_code in ('99213', 'J3490') and charge_kind = 'gross' order by 1",
    )
    assert cells == [
        {"primary_code": "99213", "primary_code_type": "CPT", "published_code_types": "CPT, HCPCS",
         "n_hospitals": 3, "median_value": 110.0},
        {"primary_code": "J3490", "primary_code_type": "HCPCS", "published_code_types": "CPT",
         "n_hospitals": 3, "median_value": 50.0},
    ]


def test_malformed_codes_are_harmonised_and_counted(built: Path) -> None:
    # The bracketed NDC of three hospitals is one well-formed 11-digit cell.
    assert query(
        built,
        "select primary_code, primary_code_type, n_hospitals from mart_price_distribution "
        "where primary_code_type = 'NDC' and charge_kind = 'gross'",
    ) == [("43598042660", "NDC", 3)]
    scorecard = {r[0]: r[1:] for r in query(
        built, "select hospital_key, n_malformed_codes, n_malformed_primary_codes from mart_compliance_scorecard")}
    # c4: the eight-digit HCPCS beside a revenue code, and the NDC as stored (with its suffix).
    assert scorecard["c4"] == (2, 1)
    assert scorecard["c5"] == (1, 1)  # the eight-digit code is its item's only code
    assert scorecard["c3"] == (0, 0)


def test_item_identity_and_per_unit_drug_cells(built: Path) -> None:
    # Two J1100 items at c1 that differ only in NDC stay two items.
    assert query(
        built,
        "select count(*) from int_current_items join int_price_versions using (hospital_id) "
        "where hospital_key = 'c1' and primary_code = 'J1100'",
    ) == [(2,)]
    # Per-unit drug cell: c1 median(10, 30) = 20, c2 12, c3 100 / 10 = 10 -> median 12 (not 20).
    (cell,) = rows_as_dicts(
        built,
        "select drug_unit_type, value_unit, n_hospitals, median_value, min_value, max_value "
        "from mart_price_distribution where primary_code = 'J1100' and charge_kind = 'gross'",
    )
    assert cell == {"drug_unit_type": "UN", "value_unit": "usd_per_unit", "n_hospitals": 3, "median_value": 12.0,
                    "min_value": 10.0, "max_value": 30.0}


def test_price_index_evidence_rule(built: Path) -> None:
    rows = {r["hospital_key"]: r for r in rows_as_dicts(
        built, "select * from mart_hospital_price_index where index_basis = 'gross'")}
    ranked = {k: (r["evidence"], r["rank_national"]) for k, r in rows.items()}
    assert ranked == {"c1": ("sufficient", 1), "c2": ("sufficient", 2), "c3": ("sufficient", 3),
                      "c4": ("sufficient", 4), "c5": ("sufficient", 5), "c6": ("insufficient", None)}
    assert rows["c6"]["n_cells_compared"] == 1 and rows["c6"]["rank_in_state"] is None
    assert rows["c1"]["n_cells_compared"] >= 30
    for r in rows.values():
        if r["n_cells_compared"] > 1:
            assert r["ci_low"] <= r["price_index"] <= r["ci_high"]
    assert rows["c4"]["n_hospitals_in_state"] == 2  # c6 is in FL but not ranked


def test_marts_rounded_described_and_counted(built: Path) -> None:
    (cell,) = rows_as_dicts(
        built,
        "select * from mart_price_distribution where primary_code = '80053' and charge_kind = 'gross'",
    )
    stats = [cell[s] for s in ("p10_value", "p25_value", "median_value", "p75_value", "p90_value")]
    assert stats == [round(v, 2) for v in stats] and stats == sorted(stats)
    assert cell["median_value"] == 45.68  # median(45.671, 45.678, 45.679)
    assert cell["description"] == "Service 80053"
    # The description published by most hospitals ("Office visit" twice, once upper case).
    assert query(built, "select description from mart_price_distribution where primary_code = '99213'") == [
        ("Office visit",)
    ]
    # n_prices counts prices only: 2 negotiated dollars, not the count row or the algorithm text.
    assert query(
        built,
        "select n_rows, n_prices, n_negotiated_dollar from mart_payer_comparison "
        "where hospital_key = 'c1' and payer_name = 'Aetna'",
    ) == [(4, 2, 2)]
    # The count is parsed beside its text.
    assert query(
        built, "select value_text, count_low, count_high from stg_prices where charge_kind = 'count'"
    ) == [("1 through 10", 1, 10)]
    summary = dict(query(built, "select hospital_key, n_rows - n_prices from mart_hospital_summary"))
    assert summary["c1"] == 2 and summary["c2"] == 0
