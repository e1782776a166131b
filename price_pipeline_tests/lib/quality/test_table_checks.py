"""Table-wide SQL checks, each firing on a constructed lake, and the price_anomalies asset."""

from __future__ import annotations

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.schemas import PRICES_SCHEMA
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.quality import row_count_collapsed, table_checks


def price(hospital: str, row: int, kind: str, amount=None, *, code="99213", payer=None, percentage=None) -> dict:
    record = {name: None for name in PRICES_SCHEMA.names}
    record.update(
        hospital_key=hospital, file_sha256=hospital[-1] * 64, source_row=row, description=f"Service {code}",
        setting="outpatient", billing_class="facility", primary_code=code, primary_code_type="CPT",
        codes=[{"code": code, "type": "CPT"}], charge_kind=kind, amount=amount, percentage=percentage,
        payer_name=payer, plan_name="PPO" if payer else None,
    )
    return record


def lake_rows() -> dict[str, list[dict]]:
    """Six hospitals price 99213 (gross ~100, h6 at 5000: an outlier); h1 publishes a fact twice,
    h2 a nine-9s placeholder, h3 a negotiated rate above its gross charge."""
    gross = {"h1": 100.0, "h2": 110.0, "h3": 105.0, "h4": 95.0, "h5": 102.0, "h6": 5000.0}
    rows = {h: [price(h, 4, "gross", g), price(h, 4, "negotiated_dollar", g * 0.6, payer="Aetna")]
            for h, g in gross.items()}
    rows["h1"].append(price("h1", 9, "negotiated_dollar", 60.0, payer="Aetna"))  # same fact, another row
    rows["h2"].append(price("h2", 5, "gross", 999999999.0, code="70450"))
    rows["h3"].append(price("h3", 6, "negotiated_dollar", 110.0, payer="Cigna"))
    return rows


def write_lake(root) -> LocalLake:
    lake = LocalLake(root)
    for hospital, rows in lake_rows().items():
        path = lake.root / layout.prices_key(hospital)
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), path)
    return lake


def test_each_table_check_fires_with_examples(tmp_path):
    lake = write_lake(tmp_path / "lake")
    con = duckdb.connect()
    source = f"read_parquet('{layout.prices_glob(lake.root_url)}', union_by_name = true)"
    results, flagged = table_checks.run_table_checks(con, source)
    by_name = {r.name: r for r in results}
    assert set(by_name) == set(table_checks.CHECKS)

    dup = by_name["duplicate_prices"]
    assert dup.flagged == 2 and {e["source_row"] for e in dup.examples} == {4, 9}
    assert all(e["hospital_key"] == "h1" for e in dup.examples)

    placeholder = by_name["placeholder_values"]
    assert placeholder.flagged == 1
    assert placeholder.examples[0]["amount"] == 999999999.0 and placeholder.examples[0]["source_row"] == 5

    above = by_name["negotiated_above_gross"]
    assert above.flagged == 1 and above.examples[0]["hospital_key"] == "h3"
    assert above.examples[0]["payer_name"] == "Cigna" and "gross 105" in above.examples[0]["detail"]

    outliers = by_name["extreme_outliers"]
    assert {(e["hospital_key"], e["charge_kind"]) for e in outliers.examples} == {
        ("h6", "gross"), ("h6", "negotiated_dollar")
    }
    assert all(r.stats["rows_checked"] == 15 and r.stats["hospitals_checked"] == 6 for r in results)
    assert flagged.num_rows == sum(r.flagged for r in results)
    assert len(dup.examples) <= table_checks.EXAMPLES


def test_checks_pass_on_a_clean_lake(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    for h, g in {"h1": 100.0, "h2": 120.0}.items():
        path = lake.root / layout.prices_key(h)
        path.parent.mkdir(parents=True)
        rows = [price(h, 4, "gross", g), price(h, 4, "negotiated_dollar", g / 2, payer="Aetna")]
        pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), path)
    results, flagged = table_checks.run_table_checks(
        duckdb.connect(), f"read_parquet('{layout.prices_glob(lake.root_url)}')"
    )
    assert all(r.passed for r in results) and flagged.num_rows == 0


@pytest.mark.parametrize("with_prices", [True, False])
def test_price_anomalies_asset_reports_checks_as_warnings(tmp_path, with_prices):
    from price_pipeline.defs.quality.assets import price_anomalies
    from price_pipeline.defs.resources import PricePipelineResource
    from price_pipeline.settings import Settings

    data = tmp_path / "data"
    if with_prices:
        write_lake(data / "lake")
    settings = Settings(
        data_dir=data, lake_url=str(data / "lake"), registry_url=f"sqlite:///{data / 'r.sqlite'}",
        warehouse_path=data / "w.duckdb", catalog_url="http://127.0.0.1:1/none",
    )
    result = dg.materialize(
        [price_anomalies], resources={"price_pipeline": PricePipelineResource.from_settings(settings)}
    )
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == set(table_checks.CHECKS)
    assert all(c.severity == dg.AssetCheckSeverity.WARN for c in checks.values())
    if with_prices:
        assert not any(c.passed for c in checks.values())
        examples = checks["negotiated_above_gross"].metadata["examples"].value
        assert examples[0]["hospital_key"] == "h3"
        stored = pq.read_table(data / "lake" / layout.PRICE_ANOMALIES_KEY)
        assert stored.num_rows == sum(c.metadata["flagged_rows"].value for c in checks.values())
    else:
        assert all(c.passed for c in checks.values())


def test_row_count_collapse_rule():
    assert row_count_collapsed(100, 49) and not row_count_collapsed(100, 50)
    assert not row_count_collapsed(None, 1) and not row_count_collapsed(0, 0)


def test_extreme_amounts_flags_a_lone_huge_rate_and_lists_items(tmp_path):
    """Issue 18 item 6: a $310 M negotiated rate for a code no other hospital prices passed every
    table-wide check (extreme_outliers needs a cell with >= 5 hospitals)."""
    lake = LocalLake(tmp_path / "lake")
    rows = {
        "h1": [price("h1", 4, "gross", 1000.0, code="27447"),
               price("h1", 5, "negotiated_dollar", 310_000_000.0, code="27447", payer="Aetna")],
        "h2": [price("h2", 4, "gross", 12_000_000.0, code="0001M")],
    }
    for h, hospital_rows in rows.items():
        path = lake.root / layout.prices_key(h)
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(hospital_rows, schema=PRICES_SCHEMA), path)
    source = f"read_parquet('{layout.prices_glob(lake.root_url)}')"
    by_name = {r.name: r for r in table_checks.run_table_checks(duckdb.connect(), source)[0]}
    extreme = by_name["extreme_amounts"]
    assert extreme.flagged == 2
    assert [(i["hospital_key"], i["primary_code"], i["max_amount"]) for i in extreme.stats["items"]] == [
        ("h1", "27447", 310_000_000.0), ("h2", "0001M", 12_000_000.0)
    ]
    assert "Service 27447" in extreme.stats["items"][0]["detail"]
    assert by_name["extreme_outliers"].passed  # the per-cell check cannot see it
    # The ceiling is configurable.
    high = {r.name: r for r in table_checks.run_table_checks(
        duckdb.connect(), source, extreme_amount_ceiling=500_000_000)[0]}
    assert high["extreme_amounts"].passed


def test_items_differing_only_in_secondary_code_are_not_duplicates(tmp_path):
    """Issue 18 item 4: two drugs with the same J-code and description but different NDCs were
    flagged as duplicates (the item ignored secondary codes)."""
    lake = LocalLake(tmp_path / "lake")
    a = price("h1", 4, "gross", 20.0, code="J1100")
    b = price("h1", 5, "gross", 20.0, code="J1100")
    a["codes"] = [{"code": "J1100", "type": "HCPCS"}, {"code": "00002143380", "type": "NDC"}]
    b["codes"] = [{"code": "J1100", "type": "HCPCS"}, {"code": "63323050601", "type": "NDC"}]
    c = dict(b, source_row=6)  # a true duplicate of b
    path = lake.root / layout.prices_key("h1")
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([a, b, c], schema=PRICES_SCHEMA), path)
    results, _ = table_checks.run_table_checks(duckdb.connect(), f"read_parquet('{path}')")
    dup = {r.name: r for r in results}["duplicate_prices"]
    assert dup.flagged == 2 and {e["source_row"] for e in dup.examples} == {5, 6}
