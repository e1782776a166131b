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
    # a CSV-only run shows the CSV as written: the filtered rows, every cell text
    assert metadata["mart_hospital_summary/preview"].value.splitlines()[2:] == ["| h1 | 1 |"]
    assert {c.type for c in metadata["mart_hospital_summary/column_schema"].value.columns} == {"VARCHAR"}


def _shuffled_warehouse(path, seed: float) -> None:
    """The same rows as every other seed, inserted in a different order (as dbt's threads may)."""
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("SELECT setseed(?)", [seed])
    con.execute("""CREATE TABLE stg_hospitals AS SELECT 'h' || i AS hospital_key, ['CA', 'TX'][i % 2 + 1] AS state
                   FROM range(40) t(i) ORDER BY random()""")
    con.execute("""CREATE TABLE mart_hospital_summary AS SELECT 'h' || i AS hospital_key, i * 7 % 11 AS n_prices
                   FROM range(40) t(i) ORDER BY random()""")
    # the key of mart_price_distribution (the grain its column_rules test names), NULLs included
    con.execute("""CREATE TABLE mart_price_distribution AS SELECT
                     lpad(CAST(i % 97 AS VARCHAR), 5, '0') AS primary_code, 'CPT' AS primary_code_type,
                     CASE WHEN i % 3 = 0 THEN NULL ELSE 'outpatient' END AS setting,
                     ['gross', 'negotiated_dollar'][i // 97 % 2 + 1] AS charge_kind,
                     CASE WHEN i // 194 % 2 = 0 THEN NULL ELSE 'ML' END AS drug_unit_type,
                     ['commercial', 'medicaid', 'unknown'][i // 388 % 3 + 1] AS payer_class,
                     i * 1.5 AS median_value
                   FROM range(97 * 2 * 2 * 3) t(i) ORDER BY random()""")
    # no key in the manifest: ordered by every column; duplicate rows and hostile text included
    con.execute("""CREATE TABLE int_prices_current AS SELECT
                     'h' || (i % 40) AS hospital_key, ['=cmd|x', 'plain', NULL][i % 3 + 1] AS description,
                     (i % 50) * 2.5 AS amount
                   FROM range(3000) t(i) ORDER BY random()""")
    con.close()


def _run_exports(tmp_path, seed: float):
    import dagster as dg

    from price_pipeline.defs.analytics.assets import exports

    tmp_path.mkdir()
    _shuffled_warehouse(tmp_path / "w.duckdb", seed)
    resource = PricePipelineResource(
        data_dir=str(tmp_path), lake_url=str(tmp_path / "lake"), registry_url=f"sqlite:///{tmp_path / 'r.sqlite'}",
        warehouse_path=str(tmp_path / "w.duckdb"), catalog_url="http://127.0.0.1:1/",
    )
    result = dg.materialize([exports], resources={"price_pipeline": resource})
    assert result.success
    return LocalLake(tmp_path / "lake"), result.asset_materializations_for_node("exports")[0].metadata


def test_two_builds_of_the_same_data_give_identical_export_bytes(tmp_path):
    import duckdb

    first_lake, _ = _run_exports(tmp_path / "a", 0.1)
    second_lake, _ = _run_exports(tmp_path / "b", 0.7)
    # the warehouses really hold the rows in different orders
    orders = []
    for build in ("a", "b"):
        con = duckdb.connect(str(tmp_path / build / "w.duckdb"), read_only=True)
        orders.append(con.execute("SELECT * FROM int_prices_current").fetchall())
        con.close()
    assert orders[0] != orders[1] and sorted(orders[0], key=str) == sorted(orders[1], key=str)

    keys = first_lake.list_keys("exports")
    assert len(keys) == 2 * 3 and keys == second_lake.list_keys("exports")
    for key in keys:
        assert first_lake.get_bytes(key) == second_lake.get_bytes(key), key
    summary = first_lake.get_bytes("exports/mart_hospital_summary.csv").decode().splitlines()
    assert [line.split(",")[0] for line in summary[1:]] == sorted(f"h{i}" for i in range(40))


def test_each_extract_shows_its_columns_and_first_rows(tmp_path):
    import pyarrow.parquet as pq

    from price_pipeline.defs.analytics.assets import exports
    from price_pipeline.lib.lake.preview import PREVIEW_ROWS, markdown_table

    lake, metadata = _run_exports(tmp_path / "a", 0.3)
    for name in ("mart_hospital_summary", "mart_price_distribution", "prices_current", "unmapped_payers"):
        if name == "unmapped_payers":  # not in this warehouse: nothing written, nothing shown
            assert f"{name}/preview" not in metadata
            continue
        path = lake.uri(f"exports/{name}.parquet")
        names = pq.read_schema(path).names
        assert [c.name for c in metadata[f"{name}/column_schema"].value.columns] == names
        first = next(pq.ParquetFile(path).iter_batches(batch_size=PREVIEW_ROWS)).to_pylist()
        assert metadata[f"{name}/preview"].value == markdown_table(names, [[r[n] for n in names] for r in first])
    # the dbt docs reach the extracts' columns, before (definition) and after (materialization) a build
    shown = {c.name: c for c in metadata["mart_price_distribution/column_schema"].value.columns}
    assert shown["primary_code"].description == "Comparison code."
    declared = exports.metadata_by_key[exports.key]["mart_price_distribution/column_schema"]
    assert {c.name: c.description for c in declared.columns}["primary_code"] == "Comparison code."
    # formula-like hospital text is inert in the preview as in the CSV
    assert "'=cmd\\|x" in metadata["prices_current/preview"].value


def test_published_tables_show_their_columns_and_first_rows(tmp_path):
    import dagster as dg
    import pyarrow.parquet as pq

    from price_pipeline.defs.analytics.assets import published_marts
    from price_pipeline.lib.lake import layout
    from price_pipeline.lib.lake.preview import PREVIEW_ROWS, markdown_table

    _shuffled_warehouse(tmp_path / "w.duckdb", 0.5)
    resource = PricePipelineResource(
        data_dir=str(tmp_path), lake_url=str(tmp_path / "lake"), registry_url=f"sqlite:///{tmp_path / 'r.sqlite'}",
        warehouse_path=str(tmp_path / "w.duckdb"), catalog_url="http://127.0.0.1:1/",
    )
    result = dg.materialize([published_marts], resources={"price_pipeline": resource})
    assert result.success
    metadata = result.asset_materializations_for_node("published_marts")[0].metadata
    lake = LocalLake(tmp_path / "lake")
    for name in ("mart_hospital_summary", "mart_price_distribution", "prices_current", "hospitals"):
        path = lake.uri(layout.mart_latest_key(name))
        names = pq.read_schema(path).names
        assert [c.name for c in metadata[f"{name}/column_schema"].value.columns] == names
        first = next(pq.ParquetFile(path).iter_batches(batch_size=PREVIEW_ROWS)).to_pylist()
        assert metadata[f"{name}/preview"].value == markdown_table(names, [[r[n] for n in names] for r in first])
    assert "mart_item_codes/preview" not in metadata  # not built: not published, nothing shown
    declared = published_marts.metadata_by_key[published_marts.key]
    assert {c.name: c.description for c in declared["hospitals/column_schema"].columns}["hospital_key"]
