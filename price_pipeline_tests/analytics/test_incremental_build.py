"""Incremental by hospital (issue 16 part 1): a real ``dbt build`` on dbt-duckdb, then a changed
lake (new versions, a removed hospital, a hospital whose file disappeared, a new hospital), an
incremental ``dbt build`` on the same warehouse, and a fresh full build of the changed lake: every
table the project builds must be equal row for row, and the incremental build must have read only
the changed hospitals.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake.schemas import PRICE_VERSIONS_SCHEMA, PRICES_SCHEMA
from price_pipeline_tests.analytics.test_dbt_project import SHA_H4_NEW, run_dbt, write_lake

SHA_H1_NEW = "a" * 64
SHA_H6 = "b" * 64


def _new_version(lake: Path, key: str, sha: str, rows: list[dict], updated: dt.date) -> None:
    """What the prices asset writes for a hospital's new current version: the version file, the
    current prices, and the version list with the older versions superseded."""
    history = lake / "prices_history" / f"hospital_key={key}"
    history.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=PRICES_SCHEMA)
    pq.write_table(table, history / f"file_sha256={sha}.parquet")
    (lake / "prices" / f"hospital_key={key}").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, lake / "prices" / f"hospital_key={key}" / "prices.parquet")
    versions_path = history / "versions.parquet"
    versions = pq.read_table(versions_path).to_pylist() if versions_path.exists() else []
    seen = dt.datetime.combine(updated, dt.time(), dt.UTC)
    for version in versions:
        if version["is_current"]:
            version.update(is_current=False, superseded_at=seen)
    versions.append(
        {
            "hospital_key": key,
            "file_sha256": sha,
            "version_seq": len(versions) + 1,
            "url": f"https://{key}.example.org/mrf.csv",
            "last_updated_on": updated,
            "template_version": "2.2.0",
            "rows": table.num_rows,
            "is_current": True,
            "first_seen_at": seen,
            "last_seen_at": seen,
            "superseded_at": None,
        }
    )
    pq.write_table(pa.Table.from_pylist(versions, schema=PRICE_VERSIONS_SCHEMA), versions_path)


def change_lake(lake: Path) -> None:
    """h1 publishes a new version (prices up 10 %, a new payer); h3 is removed from the catalog;
    h4's current file disappears from the lake (its version list stays); h6 is a new hospital
    (h2's rows under its own key). h2 and h5 do not change."""
    h1_rows = pq.read_table(lake / "prices" / "hospital_key=h1" / "prices.parquet").to_pylist()
    updated = dt.date(2024, 9, 1)
    new_h1 = []
    for row in h1_rows:
        amount = row["amount"] * 1.1 if row["amount"] is not None else None
        new_h1.append({**row, "file_sha256": SHA_H1_NEW, "amount": amount, "last_updated_on": updated})
    new_h1.append(
        {
            **h1_rows[1],
            "file_sha256": SHA_H1_NEW,
            "payer_name": "Cigna",
            "plan_name": "Open Access Plus",
            "amount": 95.0,
            "last_updated_on": updated,
            "source_row": 99,
        }
    )
    _new_version(lake, "h1", SHA_H1_NEW, new_h1, updated)

    h6_rows = [
        {**row, "hospital_key": "h6", "file_sha256": SHA_H6, "hospital_name": "H6 General"}
        for row in pq.read_table(lake / "prices" / "hospital_key=h2" / "prices.parquet").to_pylist()
    ]
    _new_version(lake, "h6", SHA_H6, h6_rows, dt.date(2024, 8, 1))

    (lake / "prices_history" / "hospital_key=h4" / f"file_sha256={SHA_H4_NEW}.parquet").unlink()
    (lake / "prices" / "hospital_key=h4" / "prices.parquet").unlink()

    catalog = pq.read_table(lake / "catalog" / "hospitals.parquet").to_pylist()
    for hospital in catalog:
        if hospital["hospital_key"] == "h3":
            hospital["status"] = "removed"
    catalog.append(
        {**catalog[0], "hospital_key": "h6", "ccn": "100006", "name": "Hospital Six", "state": "CA"}
    )
    pq.write_table(pa.Table.from_pylist(catalog), lake / "catalog" / "hospitals.parquet")


def _tables(warehouse: Path) -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return [
            name
            for (name,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'main' "
                # every table, and the marts that are views (mart_item_codes)
                "and (table_type = 'BASE TABLE' or table_name like 'mart\\_%' escape '\\') order by 1"
            ).fetchall()
        ]


def _except_count(left: str, right: str, table: str) -> str:
    return f"select count(*) from (from {left}.main.{table} except all from {right}.main.{table})"  # noqa: S608


def _differences(incremental: Path, full: Path) -> dict[str, tuple[int, int]]:
    """Per table: rows only in the incremental build, rows only in the full build (multisets)."""
    differences = {}
    with duckdb.connect() as conn:
        conn.execute(f"attach '{incremental}' as inc (read_only)")
        conn.execute(f"attach '{full}' as ful (read_only)")
        for table in _tables(full):
            # table names come from information_schema, not from input
            only_inc = conn.execute(_except_count("inc", "ful", table)).fetchone()[0]
            only_full = conn.execute(_except_count("ful", "inc", table)).fetchone()[0]
            if only_inc or only_full:
                differences[table] = (only_inc, only_full)
    return differences


def _computed(stdout: str, model: str) -> list[str] | None:
    match = re.search(rf"{model}: incremental, computing \d+ hospitals: ([^\s]*)", stdout)
    return match.group(1).split(",") if match else None


@pytest.mark.slow
def test_incremental_build_equals_full_rebuild(tmp_path: Path) -> None:
    incremental = tmp_path / "incremental"
    incremental.mkdir()
    lake = incremental / "lake"
    write_lake(lake)
    first = run_dbt(["build"], tmp=incremental)
    assert first.returncode == 0, first.stdout
    assert "incremental, computing" not in first.stdout  # the first build is a full one

    change_lake(lake)
    second = run_dbt(["build"], tmp=incremental)
    assert second.returncode == 0, second.stdout
    # Only the hospitals whose versions, catalog status or files changed (and the new one) are
    # read again; h2 and h5 keep their rows from the first build.
    # (Models of the current versions only skip h3, removed, which has no current version.)
    for model in ("int_price_groups", "int_hospital_raw_cells", "int_hospital_cell_stats"):
        assert _computed(second.stdout, model) == ["h1", "h3", "h4", "h6"], (model, second.stdout)
    assert _computed(second.stdout, "int_price_facts") == ["h1", "h4", "h6"], second.stdout
    assert "int_price_facts: deleting the rows of 3 changed or gone hospitals" in second.stdout

    full = tmp_path / "full"
    full.mkdir()
    (full / "lake").symlink_to(lake)
    rebuilt = run_dbt(["build"], tmp=full)
    assert rebuilt.returncode == 0, rebuilt.stdout

    tables = _tables(full / "warehouse.duckdb")
    assert {
        "mart_price_distribution",
        "mart_payer_comparison",
        "int_price_facts",
        "int_hospital_cell_stats",
    } <= set(tables)
    assert _tables(incremental / "warehouse.duckdb") == tables
    assert _differences(incremental / "warehouse.duckdb", full / "warehouse.duckdb") == {}

    # The changes reached the marts: h3 (removed) and h4 (file gone) have no prices, h6 has.
    with duckdb.connect(str(incremental / "warehouse.duckdb"), read_only=True) as conn:
        summary = dict(conn.execute("select hospital_key, n_prices from mart_hospital_summary").fetchall())
        payers = conn.execute("select distinct hospital_key from mart_payer_comparison order by 1").fetchall()
    assert summary["h3"] == 0 and summary["h4"] == 0 and summary["h6"] > 0
    assert [key for (key,) in payers] == ["h1", "h2", "h6"]

    # A third build with nothing changed reads no hospital (h4 lists a current version whose file
    # is gone: it has no rows to find, and is looked for again) and changes nothing.
    third = run_dbt(["build"], tmp=incremental)
    assert third.returncode == 0, third.stdout
    for model in ("int_price_groups", "int_hospital_raw_cells", "int_hospital_cell_stats"):
        assert _computed(third.stdout, model) == [""], (model, third.stdout)
    assert _computed(third.stdout, "int_price_facts") == ["h4"], third.stdout
    assert _differences(incremental / "warehouse.duckdb", full / "warehouse.duckdb") == {}


@pytest.mark.slow
def test_full_refresh_var_rebuilds_everything(tmp_path: Path) -> None:
    """`--vars '{analytics_full_refresh: true}'` (the Dagster job's and CLI's switch) rebuilds
    every per-hospital table from scratch, like --full-refresh."""
    write_lake(tmp_path / "lake")
    assert run_dbt(["build"], tmp=tmp_path).returncode == 0
    again = run_dbt(["build", "--vars", "{analytics_full_refresh: true}"], tmp=tmp_path)
    assert again.returncode == 0, again.stdout
    assert "incremental, computing" not in again.stdout


def test_full_refresh_switches() -> None:
    """The job run config and the CLI both reach `dbt build --full-refresh`."""
    from price_pipeline.cli import build_parser
    from price_pipeline.defs.analytics.assets import (
        DbtBuildConfig,
        dbt_build_args,
        price_analytics_dbt_models,
    )

    assert "full_refresh" in price_analytics_dbt_models.op.config_schema.as_field().config_type.fields
    assert DbtBuildConfig().full_refresh is False
    assert dbt_build_args(False) == ["build"]
    assert dbt_build_args(True) == ["build", "--full-refresh"]
    args = build_parser().parse_args(["launch", "--job", "build_analytics", "--full-refresh"])
    assert args.full_refresh is True
    assert build_parser().parse_args(["launch", "--job", "build_analytics"]).full_refresh is False


def test_old_warehouse_needs_full_refresh(tmp_path: Path) -> None:
    """A warehouse built before the incremental tables (no fingerprint table) is rebuilt with
    --full-refresh by the Dagster asset; a missing or current one is not."""
    from price_pipeline.lib.analytics.warehouse import FINGERPRINT_TABLE, needs_full_refresh

    warehouse = tmp_path / "warehouse.duckdb"
    assert needs_full_refresh(warehouse) is False
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE int_price_facts (version_id INTEGER)")
    assert needs_full_refresh(warehouse) is True
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"CREATE TABLE {FINGERPRINT_TABLE} (hospital_id UBIGINT)")
    assert needs_full_refresh(warehouse) is False


@pytest.mark.slow
def test_platform_build_keeps_seeds_and_views_and_equals_a_full_rebuild(tmp_path: Path) -> None:
    """The models asset as the build_analytics job runs it: the second build (same project and
    settings as the first, which succeeded) skips the seeds and views but still reports them
    materialized, published_marts still runs after it, and every table equals a full rebuild."""
    import dagster as dg
    from dagster_dbt import DbtCliResource

    from price_pipeline.defs.analytics.assets import (
        DBT_EXECUTABLE,
        dbt_project,
        price_analytics_dbt_models,
        published_marts,
    )
    from price_pipeline.defs.resources import PricePipelineResource
    from price_pipeline.lib.analytics import build_selection
    from price_pipeline.settings import Settings

    data = tmp_path / "data"
    lake = data / "lake"
    write_lake(lake)
    settings = Settings(data_dir=data, lake_url=str(lake), registry_url=f"sqlite:///{data / 'registry.sqlite'}",
                        warehouse_path=data / "warehouse.duckdb", catalog_url="http://127.0.0.1:9/catalog")
    resources = {
        "price_pipeline": PricePipelineResource.from_settings(settings),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    }

    def build() -> dict[str, dict]:
        result = dg.materialize([price_analytics_dbt_models, published_marts], resources=resources)
        assert result.success
        return {event.asset_key.to_user_string(): event.materialization.metadata
                for event in result.get_asset_materialization_events()}

    first = build()
    assert "dbt_kept" not in first["stg_hospitals"]  # the first build makes every node
    assert build_selection.build_state_path(settings.warehouse_path).exists()

    assert build_selection.partial_parse_cache(settings.warehouse_path).exists()

    change_lake(lake)
    before = set(Path(dbt_project.project_dir, "target").glob("price_analytics_dbt_models-*"))
    second = build()
    # dbt started from the first build's parse state (same profile), not from a full parse
    [target] = set(Path(dbt_project.project_dir, "target").glob("price_analytics_dbt_models-*")) - before
    log = (target / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log and "Partial parsing enabled" in log
    for kept in ("stg_hospitals", "stg_prices_history", "payer_brands", "mart_item_codes"):
        assert "dbt_kept" in second[kept], kept
    assert second["mart_item_codes"]["dagster/row_count"].value > 0  # a kept mart still shows its rows
    assert "dbt_kept" not in second["mart_price_distribution"]
    assert "published_marts" in second
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        summary = dict(conn.execute("select hospital_key, n_prices from mart_hospital_summary").fetchall())
    assert summary["h3"] == 0 and summary["h4"] == 0 and summary["h6"] > 0

    full = tmp_path / "full"
    full.mkdir()
    (full / "lake").symlink_to(lake)
    assert run_dbt(["build"], tmp=full).returncode == 0
    assert _tables(settings.warehouse_path) == _tables(full / "warehouse.duckdb")
    assert _differences(settings.warehouse_path, full / "warehouse.duckdb") == {}
