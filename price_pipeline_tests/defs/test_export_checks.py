"""The ``csv_exports_are_formula_safe`` check reads every CSV extract with the export's own rule."""

from __future__ import annotations

from price_pipeline.defs.analytics.checks import csv_exports_are_formula_safe
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.lake.storage import LocalLake


def test_formula_check_covers_every_extract(tmp_path):
    resource = PricePipelineResource(
        data_dir=str(tmp_path),
        lake_url=str(tmp_path / "lake"),
        registry_url=f"sqlite:///{tmp_path / 'r.sqlite'}",
        warehouse_path=str(tmp_path / "w.duckdb"),
        catalog_url="http://127.0.0.1:1/",
    )
    lake = LocalLake(tmp_path / "lake")
    lake.put_bytes(b"description,amount\n\xef\xbb\xbf=HYPERLINK(\"x\"),-5.0\n", "exports/prices_current.csv")
    lake.put_bytes(b"payer\nplain\n", "exports/mart_payer_comparison.csv")
    result = csv_exports_are_formula_safe(price_pipeline=resource)
    assert not result.passed and result.metadata["unsafe_rows"].data == {"prices_current": 1}
    lake.put_bytes(b"description,amount\n'\xef\xbb\xbf=HYPERLINK(\"x\"),-5.0\n", "exports/prices_current.csv")
    assert csv_exports_are_formula_safe(price_pipeline=resource).passed


def test_filtered_exports_run_writes_a_subset_and_leaves_national_extracts(tmp_path):
    import dagster as dg
    import duckdb

    from price_pipeline.defs.analytics.assets import exports

    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE TABLE stg_hospitals AS SELECT * FROM (VALUES ('h1', 'CA'), ('h2', 'TX')) t(hospital_key, state)")
    con.execute("CREATE TABLE mart_hospital_summary AS SELECT * FROM (VALUES ('h1', 1), ('h2', 2)) t(hospital_key, n)")
    con.execute("CREATE TABLE mart_price_distribution AS SELECT '99213' AS primary_code, 'commercial' AS payer_class")
    con.close()
    resource = PricePipelineResource(
        data_dir=str(tmp_path), lake_url=str(tmp_path / "lake"), registry_url=f"sqlite:///{tmp_path / 'r.sqlite'}",
        warehouse_path=str(warehouse), catalog_url="http://127.0.0.1:1/",
    )
    result = dg.materialize(
        [exports], resources={"price_pipeline": resource},
        run_config={"ops": {"exports": {"config": {"states": ["ca"], "formats": ["csv"]}}}},
    )
    assert result.success
    lake = LocalLake(tmp_path / "lake")
    keys = lake.list_keys("exports")
    assert not any(k.startswith("exports/mart_") for k in keys)  # national extracts untouched
    (summary_csv,) = [k for k in keys if k.endswith("/mart_hospital_summary.csv")]
    assert summary_csv.startswith("exports/subsets/states-CA_")
    assert lake.get_bytes(summary_csv).decode().splitlines() == ["hospital_key,n", "h1,1"]
    metadata = result.asset_materializations_for_node("exports")[0].metadata
    assert metadata["skipped_for_filters"].data == ["mart_price_distribution"]
