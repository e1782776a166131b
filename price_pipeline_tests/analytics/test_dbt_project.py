"""The dbt project (dbt_analytics/) against a small synthetic lake, with a real ``dbt build``.

The lake is written with pyarrow using exactly ``PRICES_SCHEMA``, so a schema change in the
pipeline that the dbt sources do not follow fails here. Every expected number below is worked
out by hand from the rows in :func:`_lake_rows`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake.schemas import PRICE_VERSIONS_SCHEMA, PRICES_SCHEMA

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = REPO_ROOT / "dbt_analytics"
DBT = Path(sys.executable).parent / "dbt"

SHA_H1 = "1" * 64
SHA_H2 = "2" * 64
SHA_H3 = "3" * 64
SHA_H4_OLD = "4" * 64
SHA_H4_NEW = "5" * 64
SHA_H5 = "6" * 64


def _price(
    hospital_key: str,
    sha: str,
    row: int,
    code: str,
    charge_kind: str,
    *,
    amount=None,
    percentage=None,
    value_text=None,
    payer=None,
    plan=None,
    setting="outpatient",
    code_type="CPT",
    updated=dt.date(2024, 5, 1),
    description=None,
    **extra,
) -> dict:
    record = {name: None for name in PRICES_SCHEMA.names}
    record.update(
        hospital_key=hospital_key,
        file_sha256=sha,
        source_row=row,
        hospital_name=f"{hospital_key.upper()} General",
        last_updated_on=updated,
        template_version="2.2.0",
        description=description or f"Service {code}",
        setting=setting,
        billing_class="facility",
        primary_code=code,
        primary_code_type=code_type,
        codes=[{"code": code, "type": code_type}],
        payer_name=payer,
        plan_name=plan,
        charge_kind=charge_kind,
        amount=amount,
        percentage=percentage,
        value_text=value_text,
    )
    record.update(extra)
    return record


def _lake_rows() -> dict[str, list[dict]]:
    """Rows per hospital partition.

    * 99213 (CPT, outpatient) is priced by h1, h2 and h3: three hospitals, not suppressed.
    * 70450 (CPT, outpatient) is priced by h1 and h2 only: suppressed.
    * h4 has two file versions; the old one prices 99213 at 9999, which must not count.
    * h5 is 'removed' in the catalog; its 99213 price must not count either.
    """
    p = _price
    h1 = [
        p("h1", SHA_H1, 4, "99213", "gross", amount=200.0),
        p("h1", SHA_H1, 4, "99213", "negotiated_dollar", amount=100.0, payer="Aetna", plan="PPO"),
        p(
            "h1",
            SHA_H1,
            5,
            "99213",
            "negotiated_dollar",
            amount=80.0,
            payer="Aetna",
            plan="Medicare Advantage HMO",
        ),
        p("h1", SHA_H1, 6, "99213", "negotiated_dollar", amount=120.0, payer="BCBS", plan="PPO"),
        p(
            "h1",
            SHA_H1,
            7,
            "99213",
            "negotiated_percentage",
            percentage=50.0,
            payer="UnitedHealthcare",
            plan="Choice Plus",
        ),
        p("h1", SHA_H1, 8, "70450", "gross", amount=1000.0),
        p("h1", SHA_H1, 8, "70450", "negotiated_dollar", amount=400.0, payer="Aetna", plan="PPO"),
    ]
    h2 = [
        # Messy enums and padding: the staging layer must normalise them.
        p("h2", SHA_H2, 4, " 99213 ", " Gross", amount=300.0, setting="OUTPATIENT", code_type="cpt"),
        p(
            "h2",
            SHA_H2,
            4,
            "99213",
            "negotiated_dollar",
            amount=150.0,
            payer="Aetna ",
            plan="PPO",
            setting="Outpatient",
        ),
        p("h2", SHA_H2, 5, "99213", "negotiated_dollar", amount=170.0, payer="Aetna", plan="HMO"),
        p("h2", SHA_H2, 6, "99213", "negotiated_dollar", amount=90.0, payer="Molina", plan="Medicaid HMO"),
        p("h2", SHA_H2, 7, "70450", "gross", amount=1200.0),
        p("h2", SHA_H2, 7, "70450", "negotiated_dollar", amount=500.0, payer="Aetna", plan="PPO"),
        # A payer no seed row or rule knows: listed by the review queue.
        p("h2", SHA_H2, 8, "70450", "negotiated_dollar", amount=450.0, payer="Acme Benefit Trust", plan="Gold"),
    ]
    h3_row = p("h3", SHA_H3, 4, "99213", "negotiated_dollar", amount=200.0, payer="Aetna", plan="PPO")
    h3 = [
        p("h3", SHA_H3, 4, "99213", "gross", amount=250.0),
        h3_row,
        dict(h3_row),  # an exact duplicate (same source row): the views keep both
        # An item with payer rows only (no gross/cash/min/max row): its codes still reach mart_item_codes.
        p(
            "h3",
            SHA_H3,
            9,
            "0001U",
            "negotiated_dollar",
            amount=75.0,
            payer="Aetna",
            plan="PPO",
            codes=[{"code": "0001U", "type": "CPT"}, {"code": "0300", "type": "RC"}],
        ),
    ]
    h4 = [
        p("h4", SHA_H4_OLD, 4, "99213", "gross", amount=9999.0, updated=dt.date(2024, 1, 1)),
        *[
            p(
                "h4",
                SHA_H4_NEW,
                4,
                "J1100",
                kind,
                amount=amount,
                code_type="HCPCS",
                updated=dt.date(2024, 6, 1),
                drug_unit_of_measurement=1.0,
                drug_type_of_measurement="ML",
            )
            for kind, amount in (
                ("gross", 50.0),
                ("discounted_cash", 40.0),
                ("minimum", 30.0),
                ("maximum", 60.0),
            )
        ],
        p(
            "h4",
            SHA_H4_NEW,
            4,
            "J1100",
            "negotiated_algorithm",
            value_text="110% of Medicare",
            payer="Cigna",
            plan="Open Access Plus",
            code_type="HCPCS",
            updated=dt.date(2024, 6, 1),
            drug_unit_of_measurement=1.0,
            drug_type_of_measurement="ML",
        ),
    ]
    h5 = [p("h5", SHA_H5, 4, "99213", "gross", amount=5.0)]
    return {"h1": h1, "h2": h2, "h3": h3, "h4": h4, "h5": h5}


HOSPITALS = [
    # hospital_key, ccn, name, state, status
    ("h1", "450001", "Hospital One", "TX", "active"),
    ("h2", "450002", "Hospital Two", "TX", "active"),
    ("h3", "100003", "Hospital Three", "FL", "active"),
    ("h4", "100004", "Hospital Four", "fl", "active"),
    ("h5", "100005", "Hospital Five", "FL", "removed"),
]


def write_lake(lake: Path) -> None:
    """The lake as the prices asset writes it: current prices, every version's prices, the version list.

    A hospital's versions are ordered by last_updated_on; the newest is current.
    """
    for key, rows in _lake_rows().items():
        folder = lake / "prices" / f"hospital_key={key}"
        history = lake / "prices_history" / f"hospital_key={key}"
        folder.mkdir(parents=True)
        history.mkdir(parents=True)
        by_sha: dict[str, list[dict]] = {}
        for row in rows:
            by_sha.setdefault(row["file_sha256"], []).append(row)
        ordered = sorted(by_sha, key=lambda sha: by_sha[sha][0]["last_updated_on"])
        versions = []
        for seq, sha in enumerate(ordered, start=1):
            table = pa.Table.from_pylist(by_sha[sha], schema=PRICES_SCHEMA)
            pq.write_table(table, history / f"file_sha256={sha}.parquet")
            current = sha == ordered[-1]
            if current:
                pq.write_table(table, folder / "prices.parquet")
            seen = dt.datetime.combine(by_sha[sha][0]["last_updated_on"], dt.time(), dt.UTC)
            versions.append({
                "hospital_key": key, "file_sha256": sha, "version_seq": seq, "url": f"https://{key}.example.org/mrf.csv",
                "last_updated_on": by_sha[sha][0]["last_updated_on"], "template_version": "2.2.0",
                "rows": table.num_rows, "is_current": current, "first_seen_at": seen, "last_seen_at": seen,
                "superseded_at": None if current else seen + dt.timedelta(days=30),
            })
        pq.write_table(pa.Table.from_pylist(versions, schema=PRICE_VERSIONS_SCHEMA), history / "versions.parquet")
    # An in-flight upload of the local lake: not Parquet, and must never be read.
    (lake / "prices" / "hospital_key=h1" / ".tmp-0123-prices.parquet").write_bytes(b"partial")
    catalog = lake / "catalog"
    catalog.mkdir(parents=True)
    hospitals = pa.table(
        {
            "hospital_key": [h[0] for h in HOSPITALS],
            "ccn": [h[1] for h in HOSPITALS],
            "name": [h[2] for h in HOSPITALS],
            "address": ["1 Main St"] * len(HOSPITALS),
            "city": ["Springfield"] * len(HOSPITALS),
            "state": [h[3] for h in HOSPITALS],
            "zip": ["07001"] * len(HOSPITALS),
            "website": [f"https://{h[0]}.example.org" for h in HOSPITALS],
            "status": [h[4] for h in HOSPITALS],
        }
    )
    pq.write_table(hospitals, catalog / "hospitals.parquet")


def run_dbt(
    args: list[str], *, tmp: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PRICE_PIPELINE_LAKE_URL": str(tmp / "lake"),
        "PRICE_PIPELINE_WAREHOUSE_PATH": str(tmp / "warehouse.duckdb"),
        "PRICE_PIPELINE_DBT_TARGET": "embedded",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(env_extra or {}),
    }
    command = [
        str(DBT),
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
    ]
    return subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A synthetic lake and a warehouse built from it with `dbt build` (models + seeds + tests)."""
    tmp = tmp_path_factory.mktemp("dbt_build")
    write_lake(tmp / "lake")
    started = time.monotonic()
    result = run_dbt(["build", "--target", "embedded"], tmp=tmp)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"dbt build failed after {elapsed:.1f}s:\n{result.stdout}\n{result.stderr}"
    print(f"dbt build took {elapsed:.1f}s")
    return tmp


def query(tmp: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(tmp / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def test_build_runs_every_test_and_no_warning(built: Path) -> None:
    results = json.loads((built / "target" / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    assert all(s in ("success", "pass") for s in statuses.values()), statuses
    assert any(uid.startswith("test.") for uid in statuses)
    assert "model.price_analytics.mart_price_distribution" in statuses


def test_staging_normalises_and_deduplicates(built: Path) -> None:
    # h3 published one row twice: staging is a view and keeps both (same price_key).
    assert query(built, "select count(*), count(distinct price_key) from stg_prices where hospital_key = 'h3'") == [
        (4, 3)
    ]
    rows = query(
        built,
        "select primary_code, primary_code_type, setting, charge_kind from stg_prices "
        "where hospital_key = 'h2' and amount = 300",
    )
    assert rows == [("99213", "CPT", "outpatient", "gross")]
    assert query(built, "select count(distinct length(price_key)) from stg_prices") == [(1,)]


def test_current_version_and_removed_hospitals(built: Path) -> None:
    versions = query(
        built,
        "select hospital_key, min(file_sha256), count(distinct file_sha256) "
        "from int_prices_current group by 1 order by 1",
    )
    assert versions == [("h1", SHA_H1, 1), ("h2", SHA_H2, 1), ("h3", SHA_H3, 1), ("h4", SHA_H4_NEW, 1)]


def test_payer_classes(built: Path) -> None:
    classes = dict(
        ((payer, plan), cls)
        for payer, plan, cls in query(built, "select payer_name, plan_name, payer_class from int_payer_map")
    )
    assert classes[("Aetna", "PPO")] == "commercial"
    assert classes[("Aetna", "Medicare Advantage HMO")] == "medicare_advantage"
    assert classes[("Molina", "Medicaid HMO")] == "managed_medicaid"
    assert classes[("BCBS", "PPO")] == "commercial"


def test_payer_map_canonicalises_and_queues_unmapped(built: Path) -> None:
    rows = query(
        built,
        "select payer_name, plan_name, payer_canonical, product, payer_class, mapping_method, mapping_confidence "
        "from int_payer_map order by all",
    )
    by_pair = {(r[0], r[1]): r[2:] for r in rows}
    assert by_pair[("Aetna", "PPO")] == ("Aetna", "PPO", "commercial", "seed_payer", 0.95)
    assert by_pair[("Molina", "Medicaid HMO")][:3] == ("Molina Healthcare", "HMO", "managed_medicaid")
    assert by_pair[("UnitedHealthcare", "Choice Plus")][:3] == ("UnitedHealthcare", "PPO", "commercial")
    assert by_pair[("Cigna", "Open Access Plus")][:2] == ("Cigna", "POS")
    assert by_pair[("Aetna", "Medicare Advantage HMO")][:3] == ("Aetna", "HMO", "medicare_advantage")
    # No brand, but "benefit trust" is an employer/union plan: the class is decided by a rule
    # (mapping_method 'rule', never 'unmapped' beside a rule-assigned class) and the missing
    # canonical payer puts it in the review queue.
    assert by_pair[("Acme Benefit Trust", "Gold")] == (None, "unknown", "commercial", "rule", 0.5)
    queue = query(
        built,
        "select review_rank, payer_name, plan_name, review_reason, n_prices, n_hospitals from review_unmapped_payers",
    )
    assert queue == [(1, "Acme Benefit Trust", "Gold", "no_canonical_payer", 1, 1)]


def test_price_index_relative_to_peers(built: Path) -> None:
    # 99213 gross: h1 200, h2 300, h3 250 -> market median 250; the only unsuppressed gross cell.
    rows = query(
        built,
        "select hospital_key, n_cells_compared, price_index, rank_national, evidence from mart_hospital_price_index "
        "where index_basis = 'gross' order by hospital_key",
    )
    # One compared cell each: below var('min_cells_for_index') (30), so shown but not ranked.
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("h1", 1, None, "insufficient"), ("h2", 1, None, "insufficient"), ("h3", 1, None, "insufficient")
    ]
    assert [r[2] for r in rows] == pytest.approx([80.0, 120.0, 100.0])
    # negotiated dollars, commercial 99213: hospital medians 110, 160, 200 vs market 160.
    (h1,) = query(
        built,
        "select price_index from mart_hospital_price_index where hospital_key = 'h1' and index_basis = 'negotiated_dollar'",
    )
    assert h1[0] == pytest.approx(round(100 * 110 / 160, 2))


def test_price_trends_across_versions(built: Path) -> None:
    rows = query(
        built,
        "select file_sha256, version_seq, is_current, previous_file_sha256, n_rows, n_prices, n_cells_matched, "
        "change_vs_previous_pct, price_index_vs_first from mart_price_trends where hospital_key = 'h4' "
        "order by version_seq",
    )
    assert rows == [
        # the new version's algorithm row is a row, not a price
        (SHA_H4_OLD, 1, False, None, 1, 1, 0, None, 100.0),
        (SHA_H4_NEW, 2, True, SHA_H4_OLD, 5, 4, 0, None, 100.0),
    ]


def test_item_codes_bridge(built: Path) -> None:
    rows = query(
        built,
        "select hospital_key, code_type, code, is_primary, is_well_formed from mart_item_codes "
        "where hospital_key = 'h4'",
    )
    assert rows == [("h4", "HCPCS", "J1100", True, True)]
    # Secondary codes too, also for an item that has no item-level row (read from its payer rows).
    rows = query(
        built,
        "select code_type, code, is_primary, is_well_formed from mart_item_codes "
        "where hospital_key = 'h3' and item_key in (select item_key from mart_item_codes where code = '0001U') "
        "order by code_type",
    )
    assert rows == [("CPT", "0001U", True, True), ("RC", "0300", False, True)]
    # Every current item of every hospital is in the bridge (stg_prices.item_key is the same key).
    assert query(
        built,
        "select count(distinct item_key) from int_prices_current "
        "where item_key not in (select item_key from mart_item_codes)",
    ) == [(0,)]


def _cell(built: Path, code: str, kind: str, payer_class: str) -> dict:
    rows = query(
        built,
        "select * from mart_price_distribution where primary_code = ? and primary_code_type = 'CPT' "
        "and setting = 'outpatient' and charge_kind = ? and payer_class = ?",
        [code, kind, payer_class],
    )
    assert len(rows) == 1, rows
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as conn:
        columns = [c[0] for c in conn.execute("select * from mart_price_distribution limit 0").description]
    return dict(zip(columns, rows[0], strict=True))


def test_distribution_is_hospital_weighted(built: Path) -> None:
    # Per-hospital medians of commercial negotiated dollars for 99213:
    # h1 median(100, 120) = 110, h2 median(150, 170) = 160, h3 200.
    cell = _cell(built, "99213", "negotiated_dollar", "commercial")
    assert cell["n_hospitals"] == 3
    assert cell["n_prices"] == 6  # h3 published its row twice (same source row): both rows count
    assert cell["suppressed"] is False
    assert cell["median_value"] == pytest.approx(160.0)  # a row-weighted median would be 150
    assert cell["p10_value"] == pytest.approx(110 + 0.2 * 50)
    assert cell["p90_value"] == pytest.approx(160 + 0.8 * 40)
    assert (cell["min_value"], cell["max_value"]) == (100.0, 200.0)
    assert cell["value_unit"] == "usd"

    # Gross: h1 200, h2 300, h3 250; h4's old 9999 and removed h5's 5 do not count.
    gross = _cell(built, "99213", "gross", "not_applicable")
    assert gross["n_hospitals"] == 3
    assert gross["median_value"] == pytest.approx(250.0)
    assert (gross["min_value"], gross["max_value"]) == (200.0, 300.0)


def test_distribution_suppresses_small_cells(built: Path) -> None:
    cell = _cell(built, "70450", "gross", "not_applicable")
    assert cell["n_hospitals"] == 2
    assert cell["n_prices"] == 2
    assert cell["suppressed"] is True
    for stat in (
        "median_value",
        "p10_value",
        "p25_value",
        "p75_value",
        "p90_value",
        "min_value",
        "max_value",
    ):
        assert cell[stat] is None, stat
    assert _cell(built, "99213", "negotiated_dollar", "medicare_advantage")["suppressed"] is True
    # No text-valued kinds in the distribution.
    assert query(
        built,
        "select count(*) from mart_price_distribution where charge_kind in ('negotiated_algorithm', 'count')",
    ) == [(0,)]


def test_hospital_summary(built: Path) -> None:
    rows = query(
        built,
        "select hospital_key, hospital_name, state, is_active, has_prices, n_file_versions, n_items, n_codes, "
        "n_payers, n_prices, last_updated_on, template_version, negotiated_dollar_share "
        "from mart_hospital_summary order by hospital_key",
    )
    by_key = {r[0]: r for r in rows}
    assert set(by_key) == {"h1", "h2", "h3", "h4", "h5"}
    h1 = by_key["h1"]
    assert h1[1:10] == ("Hospital One", "TX", True, True, 1, 2, 2, 3, 7)
    assert h1[10] == dt.date(2024, 5, 1)
    assert h1[11] == "2.2.0"
    assert h1[12] == pytest.approx(4 / 5)  # 4 negotiated dollar rows, 1 negotiated percentage
    h4 = by_key["h4"]
    assert h4[2] == "FL"
    assert h4[5:10] == (2, 1, 1, 1, 4)  # 5 rows, of which the algorithm row is not a price
    assert h4[10] == dt.date(2024, 6, 1)
    assert h4[12] == pytest.approx(0.0)
    h5 = by_key["h5"]
    assert h5[3:5] == (False, False)
    assert h5[9] == 0


def test_payer_comparison(built: Path) -> None:
    rows = query(
        built,
        "select n_prices, n_negotiated_dollar, median_negotiated_dollar, n_items_compared, "
        "median_gross_same_items, negotiated_to_gross_ratio, median_item_ratio_to_gross, payer_class "
        "from mart_payer_comparison where hospital_key = 'h1' and payer_name = 'Aetna' and plan_name = 'PPO'",
    )
    assert len(rows) == 1
    n_prices, n_dollar, median_dollar, n_items, median_gross, ratio, item_ratio, payer_class = rows[0]
    assert (n_prices, n_dollar, n_items, payer_class) == (2, 2, 2, "commercial")
    assert median_dollar == pytest.approx(250.0)  # median(100, 400)
    assert median_gross == pytest.approx(600.0)  # median(200, 1000)
    assert ratio == pytest.approx(round(250 / 600, 4))
    assert item_ratio == pytest.approx(0.45)  # median(100/200, 400/1000)
    # A percentage-only plan has rows but nothing to compare.
    rows = query(
        built,
        "select n_prices, n_negotiated_dollar, n_items_compared, negotiated_to_gross_ratio "
        "from mart_payer_comparison where hospital_key = 'h1' and payer_name = 'UnitedHealthcare'",
    )
    assert rows == [(1, 0, 0, None)]


def test_dbt_parse_writes_manifest(tmp_path: Path) -> None:
    """dagster-dbt loads target/manifest.json at import time; parsing needs no lake and no warehouse."""
    result = run_dbt(["parse"], tmp=tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    sources = manifest["sources"]
    prices = sources["source.price_analytics.lake.prices"]
    assert prices["meta"]["dagster"]["asset_key"] == ["prices"]
    assert sources["source.price_analytics.lake.hospitals"]["meta"]["dagster"]["asset_key"] == ["hospitals"]
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {
        "stg_prices",
        "stg_hospitals",
        "int_prices_current",
        "int_payer_map",
        "int_hospitals",
        "stg_prices_history",
        "review_unmapped_payers",
        "mart_price_distribution",
        "mart_hospital_summary",
        "mart_payer_comparison",
    } <= models
    # Every model and every column is documented.
    for node in manifest["nodes"].values():
        if node["resource_type"] in ("model", "seed"):
            assert node["description"], node["name"]
            assert node["columns"], node["name"]
            for column in node["columns"].values():
                assert column["description"], (node["name"], column["name"])


def test_column_rules_test_fails_on_each_rule_and_names_the_column(built: Path, tmp_path: Path) -> None:
    """A model's column rules are one column_rules test (macros/test_column_rules.sql): a NULL in a
    required column, a duplicated unique value, a value outside a column's accepted values or a
    duplicated grain fails it, one failing row per broken column and rule with the number of rows
    (or duplicated values) that break it."""
    shutil.copy(built / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    test = "column_rules_mart_price_distribution"
    passing = run_dbt(["test", "--select", test], tmp=tmp_path)
    assert passing.returncode == 0, passing.stdout
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        keys = [k for (k,) in conn.execute(
            "select distribution_key from mart_price_distribution order by distribution_key limit 3").fetchall()]
        # a copy of a row: its grain and its key twice
        conn.execute("insert into mart_price_distribution select * from mart_price_distribution where distribution_key = ?",
                     [keys[0]])
        conn.execute("update mart_price_distribution set n_prices = null where distribution_key = ?", [keys[0]])
        conn.execute("update mart_price_distribution set suppressed = null")
        conn.execute("update mart_price_distribution set value_unit = 'euro' where distribution_key = ?", [keys[1]])
        conn.execute("update mart_price_distribution set distribution_key = ? where distribution_key = ?", keys[1:3])
    failing = run_dbt(["test", "--select", test, "--store-failures"], tmp=tmp_path)
    assert failing.returncode == 1, failing.stdout
    assert "Got 5 results" in failing.stdout, failing.stdout
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute(f"select column_name, rule, failing_rows from main_dbt_test__audit.{test} order by 1, 2").fetchall()  # noqa: S608 (a constant)
        total = conn.execute("select count(*) from mart_price_distribution").fetchone()[0]
    grain = "primary_code, primary_code_type, setting, charge_kind, drug_unit_type, payer_class"
    assert rows == [("distribution_key", "unique", 2), ("n_prices", "not_null", 2), (grain, "unique_combination", 1),
                    ("suppressed", "not_null", total), ("value_unit", "accepted_values", 1)]


# The layer of a model is its folder under models/ and the prefix of its name.
LAYER_PREFIXES = {"staging": "stg_", "intermediate": "int_", "marts": "mart_", "review": "review_"}


def test_models_are_layered(tmp_path: Path) -> None:
    """Every model's name carries its layer's prefix and no model is renamed by an alias; only
    staging models read sources; marts (and the review queue) read only staging, intermediate
    and mart models."""
    result = run_dbt(["parse"], tmp=tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    nodes = json.loads((tmp_path / "target" / "manifest.json").read_text())["nodes"]
    models = {unique_id: n for unique_id, n in nodes.items() if n["resource_type"] == "model"}
    for node in models.values():
        layer = node["original_file_path"].split("/")[1]
        assert node["name"].startswith(LAYER_PREFIXES[layer]), (node["name"], layer)
        assert node["alias"] == node["name"], node["name"]
        upstream = node["depends_on"]["nodes"]
        if layer != "staging":
            assert not [u for u in upstream if u.startswith("source.")], (node["name"], upstream)
        if layer in ("marts", "review"):
            layers = {models[u]["original_file_path"].split("/")[1] if u in models else u for u in upstream}
            assert layers <= {"staging", "intermediate", "marts"}, (node["name"], layers)
    # One staging model per source table: the cleaning of a source is written once.
    readers: dict[str, list[str]] = {}
    for node in models.values():
        for upstream in node["depends_on"]["nodes"]:
            if upstream.startswith("source."):
                readers.setdefault(upstream, []).append(node["name"])
    assert {source: len(names) for source, names in readers.items() if len(names) != 1} == {}, readers
    assert readers["source.price_analytics.history.prices_history"] == ["stg_prices_history"]
    assert readers["source.price_analytics.history.price_versions"] == ["stg_price_versions"]


@pytest.mark.slow
def test_production_target_reads_the_lake_from_s3(built: Path, moto_s3: str, tmp_path: Path) -> None:
    """The production profile reads s3:// through fsspec (no httpfs) and gives the same marts."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="price-lake")
    lake = built / "lake"
    for path in lake.rglob("*"):
        if path.is_file() and not path.name.startswith(".tmp-"):
            s3.upload_file(str(path), "price-lake", "prod/" + path.relative_to(lake).as_posix())

    result = run_dbt(
        ["build", "--target", "production"],
        tmp=tmp_path,
        env_extra={
            "PRICE_PIPELINE_LAKE_URL": "s3://price-lake/prod/",
            "PRICE_PIPELINE_DBT_TARGET": "production",
            "PRICE_PIPELINE_S3_ENDPOINT_URL": moto_s3,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    sql = "select * from mart_price_distribution order by distribution_key"
    assert query(tmp_path, sql) == query(built, sql)


def test_every_published_table_documents_each_of_its_columns(built: Path) -> None:
    """The column schema shown for a mart before it is built (from schema.yml) is its real shape:
    every column of every published model is documented, in the built order, with a description."""
    manifest = json.loads((built / "target" / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"
              and (n["original_file_path"].startswith(("models/marts/", "models/review/"))
                   or n["name"] in ("int_prices_current", "stg_hospitals"))]
    assert len(models) >= 10
    undocumented = {}
    for model in models:
        built_columns = [r[0] for r in query(built, f'describe "{model["name"]}"')]
        documented = {name: c.get("description") for name, c in model["columns"].items()}
        if list(documented) != built_columns or not all(documented.values()):
            undocumented[model["name"]] = (
                [c for c in built_columns if not documented.get(c)], [c for c in documented if c not in built_columns])
    assert undocumented == {}
