"""Every table asset shows what it holds: its column schema, declared on the definition and attached
to each materialization from the Parquet written, and a preview of the file's first rows."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from price_pipeline.defs.catalog.assets import hospitals
from price_pipeline.defs.ingestion.assets import mrf_parsed, prices
from price_pipeline.defs.ingestion.conformance import conformance_reports
from price_pipeline.defs.ingestion.history import price_changes
from price_pipeline.defs.quality import assets as quality_assets
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.preview import PREVIEW_ROWS, markdown_table
from price_pipeline.lib.lake.schemas import (
    PARSED_DESCRIPTIONS,
    PARSED_SCHEMA,
    PRICE_CHANGES_DESCRIPTIONS,
    PRICE_CHANGES_SCHEMA,
    PRICES_DESCRIPTIONS,
    PRICES_SCHEMA,
)
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline_tests.defs.helpers import (
    demo_keys,
    materialize_catalog,
    materialize_hospital,
    resources_for,
)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def _declared(asset: dg.AssetsDefinition) -> dg.TableSchema:
    return asset.metadata_by_key[asset.key]["dagster/column_schema"]


def _materialized(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (mat,) = result.asset_materializations_for_node(asset)
    return mat.metadata


def _columns(schema: dg.TableSchema) -> list[tuple]:
    return [(c.name, c.type, c.description) for c in schema.columns]


def assert_shows_the_file(metadata: dict, declared: dg.TableSchema | None, path: str) -> None:
    """The materialization's schema is the file's, equal to the declared one; its preview is the
    file's first rows (read here with pyarrow, independently of the asset's DuckDB read)."""
    schema = metadata["dagster/column_schema"].value
    names = pq.read_schema(path).names
    assert [c.name for c in schema.columns] == names
    if declared is not None:
        assert _columns(schema) == _columns(declared)
    first = next(pq.ParquetFile(path).iter_batches(batch_size=PREVIEW_ROWS), None)
    if first is None or first.num_rows == 0:
        assert metadata["preview"].value == "(no rows)"
        return
    first = first.to_pylist()
    preview = metadata["preview"].value
    assert preview == markdown_table(names, [[row[n] for n in names] for row in first])
    assert len(preview.splitlines()) == 2 + len(first)


@pytest.mark.parametrize(
    ("asset", "schema", "descriptions"),
    [(mrf_parsed, PARSED_SCHEMA, PARSED_DESCRIPTIONS), (prices, PRICES_SCHEMA, PRICES_DESCRIPTIONS),
     (price_changes, PRICE_CHANGES_SCHEMA, PRICE_CHANGES_DESCRIPTIONS)],
)
def test_definitions_declare_every_column_with_a_description(asset, schema, descriptions):
    declared = _declared(asset)
    assert [c.name for c in declared.columns] == schema.names
    assert set(descriptions) == set(schema.names)  # no column undocumented, no stale description
    assert all(c.description == descriptions[c.name] and c.type for c in declared.columns)


def test_ingestion_materializations_show_schema_and_first_rows(instance, settings, demo_server):
    catalog = materialize_catalog(instance, settings)
    assert catalog.success
    lake = LocalLake(settings.lake_url)
    assert_shows_the_file(_materialized(catalog, "hospitals"), _declared(hospitals), lake.uri(layout.HOSPITALS_KEY))
    key = demo_keys(settings)["West Mercy Hospital"]
    result = materialize_hospital(instance, settings, key)
    assert result.success
    assert _materialized(result, "prices")["dagster/row_count"].value > PREVIEW_ROWS  # a preview to compare

    (version,) = [k for k in lake.list_keys(f"parsed/hospital_key={key}") if k.endswith("rows.parquet")]
    assert_shows_the_file(_materialized(result, "mrf_parsed"), _declared(mrf_parsed), lake.uri(version))
    assert_shows_the_file(_materialized(result, "prices"), _declared(prices), lake.uri(layout.prices_key(key)))

    # price_changes of a single version: an empty table, schema still shown, no rows to preview
    changes = dg.materialize([price_changes], partition_key=key, instance=instance, resources=resources_for(settings))
    metadata = _materialized(changes, "price_changes")
    assert _columns(metadata["dagster/column_schema"].value) == _columns(_declared(price_changes))
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == pq.read_schema(
        lake.uri(layout.price_changes_key(key))).names
    assert metadata["preview"].value == "(no rows)"

    # the hospital's conformance report and the table-wide quality tables
    reports = dg.materialize([conformance_reports], partition_key=key, instance=instance,
                             resources=resources_for(settings))
    assert_shows_the_file(_materialized(reports, "conformance_reports"), _declared(conformance_reports),
                          lake.uri(layout.conformance_table_key(key)))
    quality = dg.materialize([quality_assets.quarantine, quality_assets.price_anomalies], instance=instance,
                             resources=resources_for(settings))
    assert_shows_the_file(_materialized(quality, "quarantine"), _declared(quality_assets.quarantine),
                          lake.uri(layout.QUARANTINE_KEY))
    assert_shows_the_file(_materialized(quality, "price_anomalies"), None, lake.uri(layout.PRICE_ANOMALIES_KEY))


def test_dbt_source_of_prices_documents_the_same_columns_in_the_same_words():
    """dbt documents the prices files as the source lake.prices; its words are the lib's (one text)."""
    import json

    from price_pipeline.defs.analytics.assets import dbt_project

    sources = json.loads(dbt_project.manifest_path.read_text())["sources"]
    (source,) = [s for s in sources.values() if (s["source_name"], s["name"]) == ("lake", "prices")]
    documented = {name: " ".join(c["description"].split()) for name, c in source["columns"].items()}
    assert documented == PRICES_DESCRIPTIONS


def test_every_mart_declares_its_documented_columns_before_it_is_built():
    """dagster-dbt declares each model's columns from the manifest: the marts show their schema,
    with the schema.yml descriptions, in the UI before any build (definition metadata)."""
    import json

    from price_pipeline.defs.analytics.assets import dbt_project, price_analytics_dbt_models

    nodes = json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
    marts = {n["name"]: n for n in nodes if n["resource_type"] == "model"
             and n["original_file_path"].startswith("models/marts/")}
    assert len(marts) >= 8
    for name, node in marts.items():
        schema = price_analytics_dbt_models.metadata_by_key[dg.AssetKey(name)]["dagster/column_schema"]
        assert [(c.name, c.description) for c in schema.columns] == [
            (column, info["description"]) for column, info in node["columns"].items()]
        assert all(c.description for c in schema.columns), name


def test_a_file_in_the_s3_lake_is_shown_from_s3(tmp_path, moto_s3):
    """Production lakes are S3: the schema and preview are read from the object, in a folder named
    like a hive partition, without downloading it first."""
    import boto3
    import pyarrow as pa

    from price_pipeline.defs.table_metadata import lake_table_metadata
    from price_pipeline.lib.lake.storage import S3Lake

    boto3.client("s3", endpoint_url=moto_s3).create_bucket(Bucket="tables")
    lake = S3Lake("s3://tables/lake", endpoint_url=moto_s3)
    local = tmp_path / "prices.parquet"
    rows = [{"hospital_key": "h1", "description": f"item {i}", "amount": float(i)} for i in range(8)]
    pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA.empty_table().select(
        ["hospital_key", "description", "amount"]).schema), local)
    lake.put_file(local, layout.prices_key("h1"))
    metadata = lake_table_metadata(lake, layout.prices_key("h1"), PRICES_DESCRIPTIONS)
    schema = metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in schema.columns] == [
        ("hospital_key", "VARCHAR"), ("description", "VARCHAR"), ("amount", "DOUBLE")]
    assert schema.columns[2].description == PRICES_DESCRIPTIONS["amount"]
    assert metadata["preview"].value == markdown_table(
        ["hospital_key", "description", "amount"], [["h1", f"item {i}", float(i)] for i in range(PREVIEW_ROWS)])


def test_a_table_that_cannot_be_read_back_costs_the_preview_not_the_materialization(tmp_path):
    """The data is written before its preview is read: a file that cannot be read for display (here
    a truncated Parquet; in the S3 fault test, an endpoint refusing DuckDB's reads) gives a preview
    saying why, and no exception that would fail the step."""
    from price_pipeline.defs.table_metadata import parquet_table_metadata

    broken = tmp_path / "rows.parquet"
    broken.write_bytes(b"PAR1 not a whole file")
    metadata = parquet_table_metadata(str(broken), PARSED_DESCRIPTIONS)
    assert "dagster/column_schema" not in metadata
    assert metadata["preview"].value.startswith("preview not available: ")
    assert "parquet" in metadata["preview"].value.lower()


def test_a_batch_reuses_one_connection_and_shows_what_a_fresh_one_would(tmp_path):
    """Inside shared_preview_connections (a batched run's step) every table of a lake is shown
    through one connection, including after a table it could not read, with the same metadata."""
    import pyarrow as pa

    from price_pipeline.defs import table_metadata as tm

    lake = LocalLake(str(tmp_path / "lake"))
    for i in range(3):
        folder = tmp_path / f"lake/t/hospital_key=h{i}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"hospital_key": [f"h{i}"] * (i + 1), "rows": list(range(i + 1))}),
                       folder / "rows.parquet")
    (tmp_path / "lake/t/broken.parquet").write_bytes(b"PAR1 not a whole file")
    keys = ["t/hospital_key=h0/rows.parquet", "t/broken.parquet", "t/hospital_key=h1/rows.parquet",
            "t/hospital_key=h2/rows.parquet"]
    fresh = [tm.lake_table_metadata(lake, k) for k in keys]
    opened = []
    real = tm._preview_connection
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tm, "_preview_connection", lambda lk: opened.append(lk) or real(lk))
        with tm.shared_preview_connections():
            shared = [tm.lake_table_metadata(lake, k) for k in keys]
    assert len(opened) == 1
    assert shared == fresh
    assert "hospital_key" in fresh[0]["preview"].value and "preview not available" in fresh[1]["preview"].value


def test_an_extract_that_cannot_be_read_back_keeps_its_other_tables_shown(tmp_path):
    """The multi-table assets (exports, published_marts) show each written table under its own
    keys: one unreadable file costs that table's schema and preview, not the others'."""
    import pyarrow as pa

    from price_pipeline.defs.analytics.assets import written_tables

    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"hospital_key": ["h1"]}), good)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not a whole file")
    metadata = written_tables({"good": good, "broken": broken}, {"good": "good", "broken": "broken"})
    assert "good/column_schema" in metadata and "good/preview" in metadata
    assert "broken/column_schema" not in metadata
    assert metadata["broken/preview"].value.startswith("preview not available: ")



def test_column_rules_are_one_check_per_model_that_names_its_columns():
    """Each model's column rules (required, unique, accepted-value columns, grain) are one dbt test
    (column_rules), so one asset check per model: named after the model, described in the UI by
    the columns and rules it covers, and no single-column not_null, unique or accepted_values test
    nor a unique_combination_of_columns test is left beside it."""
    import json

    from price_pipeline.defs.analytics.assets import dbt_project, price_analytics_dbt_models

    tests = [n for n in json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
             if n["resource_type"] == "test"]
    rules = {n["name"]: n["test_metadata"]["kwargs"] for n in tests
             if (n.get("test_metadata") or {}).get("name") == "column_rules"}
    assert not [n["name"] for n in tests
                if (n.get("test_metadata") or {}).get("name")
                in ("not_null", "unique", "accepted_values", "unique_combination_of_columns")]
    specs = {spec.name: spec for spec in price_analytics_dbt_models.check_specs}
    assert rules and set(rules) <= set(specs)
    for name, kwargs in rules.items():
        assert kwargs.get("not_null") or kwargs.get("unique") or kwargs.get("accepted_values"), name
        for column in kwargs.get("not_null") or []:
            assert column in specs[name].description, (name, column)
    distribution = specs["column_rules_mart_price_distribution"]
    assert distribution.asset_key == dg.AssetKey("mart_price_distribution")
    assert distribution.description.startswith("No NULL in any of these columns: distribution_key, primary_code,")
    assert "Unique: distribution_key." in distribution.description
    assert "value_unit is one of: usd, usd_per_unit, percent." in distribution.description
    assert ("Unique together: primary_code, primary_code_type, setting, charge_kind, drug_unit_type, payer_class."
            in distribution.description)


def test_every_mart_gets_its_row_count_schema_and_preview_after_a_build():
    """After a build the models asset reads row counts, schema and preview of tables, incremental
    tables and every mart, the view marts (mart_item_codes) included; never of the staging views,
    which would read the lake row by row."""
    import json

    from price_pipeline.defs.analytics.assets import dbt_project, shows_table_metadata

    models = {n["name"]: n for n in json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
              if n["resource_type"] == "model"}
    assert models["mart_item_codes"]["config"]["materialized"] == "view"
    marts = [n for n in models.values() if n["original_file_path"].startswith("models/marts/")]
    assert marts and all(shows_table_metadata(n) for n in marts)
    assert shows_table_metadata(models["int_hospital_item_codes"])
    assert not shows_table_metadata(models["stg_prices_history"])
    assert not shows_table_metadata(models["int_prices_current"])
