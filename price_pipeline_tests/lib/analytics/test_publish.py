"""Marts published to the lake as Parquet, and filtered extracts of them (issue 16, part 3)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from price_pipeline import cli
from price_pipeline.lib.analytics.exports import ExportFilters, UnsafeExportError, export_relation
from price_pipeline.lib.analytics.publish import (
    NothingPublishedError,
    export_published,
    publish_tables,
    read_manifest,
)
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.preview import describe, markdown_table, preview_markdown
from price_pipeline.lib.lake.storage import LocalLake


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE stg_hospitals AS SELECT * FROM (VALUES
        ('h-ca', 'Pacific General', 'CA'), ('h-tx', 'Lone Star', 'TX'), ('h-ca2', 'Bay Clinic', 'ca'))
        t(hospital_key, hospital_name, state)""")
    con.execute("""CREATE TABLE mart_price_distribution AS SELECT * FROM (VALUES
        ('99213', 'commercial', 'Office visit', 120.5), ('99213', 'medicaid', 'Office visit', 60.0),
        ('70450', 'commercial', '=HYPERLINK("http://x")', 900.0)) t(primary_code, payer_class, description, median)""")
    con.execute("""CREATE TABLE mart_hospital_summary AS SELECT * FROM (VALUES
        ('h-ca', 10), ('h-tx', 20), ('h-ca2', 30)) t(hospital_key, n_prices)""")
    con.execute("""CREATE TABLE int_prices_current AS SELECT * FROM (VALUES
        ('h-ca', 'CA', '99213', 'commercial', 100.0), ('h-tx', 'TX', '99213', 'commercial', 140.0),
        ('h-ca2', 'CA', '70450', 'medicaid', 300.0)) t(hospital_key, state, code, payer_class, amount)""")
    con.close()
    return path


RELATIONS = {"mart_price_distribution": "mart_price_distribution", "mart_hospital_summary": "mart_hospital_summary",
             "prices_current": "int_prices_current", "hospitals": "stg_hospitals", "mart_not_built": "mart_not_built"}


def _publish(warehouse: Path, lake: LocalLake, tmp_path: Path, built_at: str) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return publish_tables(con, lake, RELATIONS, tmp_path / f"scratch-{built_at}", built_at=built_at)
    finally:
        con.close()


def test_each_build_is_a_kept_snapshot_and_latest_is_the_newest(warehouse, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    first = _publish(warehouse, lake, tmp_path, "20261201T000000Z")
    con = duckdb.connect(str(warehouse))
    con.execute("INSERT INTO mart_hospital_summary VALUES ('h-new', 5)")
    con.close()
    second = _publish(warehouse, lake, tmp_path, "20261202T000000Z")

    assert first["missing"] == ["mart_not_built"] and "mart_not_built" not in first["tables"]
    assert read_manifest(lake) == second
    reader = duckdb.connect()

    def rows(key):
        return reader.execute("SELECT count(*) FROM read_parquet(?)", [lake.uri(key)]).fetchone()[0]

    assert rows(layout.mart_snapshot_key("mart_hospital_summary", "20261201T000000Z")) == 3
    assert rows(layout.mart_snapshot_key("mart_hospital_summary", "20261202T000000Z")) == 4
    assert rows(layout.mart_latest_key("mart_hospital_summary")) == 4
    # every build readable at once, with its date, by any Parquet reader (hive-style folders)
    glob = str(Path(lake.uri("marts")) / "mart_hospital_summary" / "built_at=*" / "*.parquet")
    by_build = reader.execute(
        "SELECT built_at, count(*) FROM read_parquet(?, hive_partitioning=true) GROUP BY 1 ORDER BY 1", [glob]
    ).fetchall()
    assert by_build == [("20261201T000000Z", 3), ("20261202T000000Z", 4)]
    assert second["tables"]["mart_hospital_summary"]["rows"] == 4


def test_filters_apply_per_column_and_reach_hospital_tables_through_state(warehouse, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    _publish(warehouse, lake, tmp_path, "20261201T000000Z")
    out = tmp_path / "out"
    results = export_published(lake, out, ExportFilters.of(states=["ca"]), formats=("csv", "parquet"))
    # state column present: filtered on it; hospital table: filtered through hospitals.state
    assert results["prices_current"]["rows"] == 2
    assert results["mart_hospital_summary"]["rows"] == 2
    assert results["hospitals"]["rows"] == 2
    # a mart with no hospital or state column cannot honour a state filter: not exported at all
    assert "skipped" in results["mart_price_distribution"]
    assert not (out / "mart_price_distribution.csv").exists()
    got = duckdb.execute("SELECT hospital_key FROM read_parquet(?) ORDER BY 1", [str(out / "mart_hospital_summary.parquet")])
    assert got.fetchall() == [("h-ca",), ("h-ca2",)]

    results = export_published(lake, tmp_path / "out2", ExportFilters.of(codes=["99213"], payer_classes=["commercial"]),
                               names=["mart_price_distribution", "prices_current"])
    assert results["mart_price_distribution"]["rows"] == 1
    assert results["prices_current"]["rows"] == 2
    assert set(results) == {"mart_price_distribution", "prices_current"}


def test_csv_extracts_are_neutralised_and_checked_before_they_are_written(warehouse, tmp_path, monkeypatch):
    lake = LocalLake(tmp_path / "lake")
    _publish(warehouse, lake, tmp_path, "20261201T000000Z")
    export_published(lake, tmp_path / "out", ExportFilters.of(), names=["mart_price_distribution"])
    text = (tmp_path / "out" / "mart_price_distribution.csv").read_text()
    assert "'=HYPERLINK" in text

    # if the neutralising step ever breaks, the read-back check refuses the file
    from price_pipeline.lib.analytics import exports

    monkeypatch.setattr(exports, "neutralised_select", lambda con, relation, params=(): "SELECT * FROM " + relation)  # noqa: S608 - a test double
    con = duckdb.connect(str(warehouse), read_only=True)
    with pytest.raises(UnsafeExportError, match="1 row"):
        export_relation(con, "mart_price_distribution", tmp_path / "unsafe", "mart_price_distribution")
    con.close()


def test_cli_export_filters_the_published_marts(warehouse, tmp_path, monkeypatch, capsys):
    lake = LocalLake(tmp_path / "lake")
    monkeypatch.setenv("PRICE_PIPELINE_LAKE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["export", "--out", str(tmp_path / "none")]) == 2
    assert "run build_analytics first" in capsys.readouterr().err

    _publish(warehouse, lake, tmp_path, "20261201T000000Z")
    out = tmp_path / "cli"
    status = cli.main(["export", "--state", "TX", "--code", "99213", "--table", "prices_current",
                       "--format", "both", "--out", str(out)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 0
    assert lines == [{"table": "prices_current", "out": str(out), "rows": 1,
                      "parquet_bytes": (out / "prices_current.parquet").stat().st_size,
                      "csv_bytes": (out / "prices_current.csv").stat().st_size}]
    assert (out / "prices_current.csv").read_text().splitlines()[1].startswith("h-tx,TX,99213")
    assert cli.main(["export", "--table", "nope", "--out", str(out)]) == 2


def test_nothing_published_is_an_error_not_an_empty_export(tmp_path):
    with pytest.raises(NothingPublishedError):
        export_published(LocalLake(tmp_path / "lake"), tmp_path / "out", ExportFilters.of())


def test_filter_slug_is_stable_and_safe():
    a = ExportFilters.of(states=["tx", "CA"], codes=["99213"])
    b = ExportFilters.of(states=["CA", "TX", " "], codes=["99213"])
    assert a == b and a.slug() == b.slug()
    assert a.slug().startswith("states-CA+TX_codes-99213_")
    assert "/" not in ExportFilters.of(hospitals=["../../etc"]).slug()
    assert ExportFilters.of().is_empty()


def test_preview_and_schema_escape_hospital_text(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    columns = describe(con, "mart_price_distribution", {"median": "hospital-weighted median"})
    assert [(c.name, c.type, c.description) for c in columns][-1] == ("median", "DECIMAL(4,1)", "hospital-weighted median")
    preview = preview_markdown(con, "mart_price_distribution")
    con.close()
    assert preview.splitlines()[0] == "| primary_code | payer_class | description | median |"
    assert len(preview.splitlines()) == 5
    table = markdown_table(["a"], [["<script>x|y\nz" + "w" * 100]])
    assert "<script>" not in table and "\\|" in table and "\n" not in table.splitlines()[2] and "…" in table


def test_natural_key_is_the_grain_dbt_tests():
    from price_pipeline.lib.analytics import natural_keys

    def test(model, name, **kwargs):
        return {"unique_id": f"test.p.{name}_{model}_{sorted(kwargs.items())}", "resource_type": "test",
                "attached_node": f"model.p.{model}", "test_metadata": {"name": name, "kwargs": kwargs}}

    nodes = [
        {"unique_id": "model.p.ranked", "resource_type": "model", "name": "ranked",
         "columns": {"rank": {}, "a_hash": {}}},
        {"unique_id": "model.p.grain", "resource_type": "model", "name": "grain", "columns": {"k": {}}},
        {"unique_id": "model.p.plain", "resource_type": "model", "name": "plain", "columns": {}},
        {"unique_id": "model.p.ruled", "resource_type": "model", "name": "ruled", "columns": {"id": {}, "key": {}}},
        # 'a_hash' sorts first by test id, but 'rank' is documented first
        test("ranked", "unique", column_name="a_hash"), test("ranked", "unique", column_name="rank"),
        test("grain", "unique", column_name="k"),
        test("grain", "unique_combination_of_columns", combination_of_columns=["x", "y"]),
        test("plain", "not_null", column_name="v"),
        # a model's column_rules test (macros/test_column_rules.sql) names its unique columns
        test("ruled", "column_rules", not_null=["v"], unique=["key", "id"], accepted_values={"v": ["a"]}),
        test("combined", "column_rules", unique=["id"], unique_combinations=[["p", "q"], ["r", "s"]]),
    ]
    nodes.append({"unique_id": "model.p.combined", "resource_type": "model", "name": "combined", "columns": {"id": {}}})
    keys = natural_keys({"nodes": {n["unique_id"]: n for n in nodes}})
    assert keys == {"ranked": ["rank"], "grain": ["x", "y"], "ruled": ["id"], "combined": ["p", "q"]}


def test_published_files_do_not_depend_on_the_warehouse_row_order(tmp_path):
    digests = []
    for seed in (0.2, 0.9):
        path = tmp_path / f"w{seed}.duckdb"
        con = duckdb.connect(str(path))
        con.execute("SELECT setseed(?)", [seed])
        con.execute("CREATE TABLE keyed AS SELECT i AS k, i % 7 AS v FROM range(5000) t(i) ORDER BY random()")
        con.execute("CREATE TABLE unkeyed AS SELECT i % 13 AS a, i % 5 AS b FROM range(5000) t(i) ORDER BY random()")
        lake = LocalLake(tmp_path / f"lake{seed}")
        publish_tables(con, lake, {"keyed": "keyed", "unkeyed": "unkeyed"}, tmp_path / f"s{seed}",
                       built_at="20261201T000000Z", keys={"keyed": ["k"]})
        con.close()
        digests.append({name: lake.get_bytes(layout.mart_latest_key(name)) for name in ("keyed", "unkeyed")})
    assert digests[0] == digests[1]
    ordered = duckdb.sql("SELECT k FROM read_parquet(?)", params=[str(tmp_path / "lake0.2" / layout.mart_latest_key("keyed"))])
    assert [r[0] for r in ordered.fetchall()] == list(range(5000))
