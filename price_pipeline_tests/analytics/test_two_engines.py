"""The same dbt project on DuckDB and on Spark (issue 16 part 2): every mart, row for row.

A small real lake (:mod:`price_pipeline_tests.analytics.demo_lake`: the demo hospitals and a few
generated ones, through the pipeline's parser, normaliser and validator) is built with
``dbt build`` on the ``embedded`` target (DuckDB) and with ``price-pipeline-dbt build --target
spark`` (dbt-spark, session method, pyspark in local mode, the payer and code rules as UDFs),
each in its own process. Every table of the marts and review layers is then compared: same
columns in the same order, same number of rows, and the same rows.

Values are compared exactly, except floats, where the engines genuinely differ:
  * a float may differ by 1e-9 relative: sums and averages (the price index's mean of logs)
    add in a different order;
  * a float rounded in SQL (``round(x, 2)``, ``round(x, 4)``) may differ by one unit of its
    last decimal: DuckDB rounds the binary double (2.675 -> 2.67, since 2.675 is stored as
    2.67499999...), Spark rounds its decimal form half up (2.675 -> 2.68).
Timestamps are compared as instants (UTC).

Needs Java (Debian's openjdk-17-jre-headless): skips with the reason without it, and fails in
CI (CI=true), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from price_pipeline_tests.analytics.demo_lake import build_demo_lake
from price_pipeline_tests.analytics.test_dbt_project import PROJECT_DIR, run_dbt

pytestmark = [pytest.mark.slow]

PRICE_PIPELINE_DBT = Path(sys.executable).parent / "price-pipeline-dbt"


def _require_java() -> None:
    if shutil.which("java") is None:
        reason = "java is not installed (Debian: apt-get install openjdk-17-jre-headless); Spark needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("two_engines")
    counts = build_demo_lake(tmp / "lake", tmp / "work")
    assert len(counts) >= 12 and sum(counts.values()) > 10_000, counts
    return tmp


@pytest.fixture(scope="module")
def duckdb_build(lake: Path) -> Path:
    tmp = lake / "duckdb"
    tmp.mkdir()
    (tmp / "lake").symlink_to(lake / "lake")
    result = run_dbt(["build", "--target", "embedded"], tmp=tmp)
    assert result.returncode == 0, f"DuckDB build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return tmp / "warehouse.duckdb"


@pytest.fixture(scope="module")
def spark_build(lake: Path) -> Path:
    _require_java()
    tmp = lake / "spark"
    tmp.mkdir()
    warehouse = tmp / "spark-warehouse"
    env = {
        **os.environ,
        "PRICE_PIPELINE_LAKE_URL": str(lake / "lake"),
        "PRICE_PIPELINE_DBT_TARGET": "spark",
        "PRICE_PIPELINE_SPARK_MASTER": "local[2]",
        "PRICE_PIPELINE_SPARK_WAREHOUSE": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(PRICE_PIPELINE_DBT), "build", "--target", "spark", "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=900,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, (
        f"Spark build failed after {elapsed:.0f}s:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}")
    print(f"Spark dbt build took {elapsed:.1f}s")
    return warehouse / "main.db"


def _marts(duckdb_warehouse: Path) -> dict[str, str]:
    """The models of the marts and review folders (what users, exports and published_marts read),
    each with the Spark table that holds its rows: itself, or for a mart that is a view of one
    table (mart_item_codes), that table, whose files the view reads (a view has none)."""
    manifest = json.loads((duckdb_warehouse.parent / "target" / "manifest.json").read_text())
    nodes = manifest["nodes"]
    marts = {}
    for node in nodes.values():
        if node["resource_type"] != "model" or node["fqn"][1] not in ("marts", "review"):
            continue
        if node["config"]["materialized"] == "view":
            (upstream,) = [u for u in node["depends_on"]["nodes"] if u.startswith("model.")]
            assert nodes[upstream]["config"]["materialized"] in ("table", "incremental"), upstream
            marts[node["alias"]] = nodes[upstream]["alias"]
        else:
            marts[node["alias"]] = node["alias"]
    return dict(sorted(marts.items()))


def _plain(value):
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _sort_key(row: tuple) -> tuple:
    # Floats last and coarsely, so engine noise in them does not reorder otherwise equal rows.
    exact = tuple("" if v is None else str(v) for v in row if not isinstance(v, float))
    floats = tuple(-math.inf if v is None else round(v, 1) for v in row if isinstance(v, float))
    return exact, floats


def _decimals(value: float) -> int | None:
    """Decimals of a value that was rounded in SQL (<= 4 shown), else None."""
    text = repr(value)
    if "e" in text or "." not in text:
        return None
    decimals = len(text.split(".")[1].rstrip("0"))
    return decimals if decimals <= 4 else None


def _floats_match(left: float, right: float) -> bool:
    if math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12):
        return True
    # Both rounded in SQL (at most 4 decimals shown): one unit of the last decimal, the finest
    # the two show and never coarser than a cent (the marts round to 2 or 4 decimals).
    decimals = (_decimals(left), _decimals(right))
    if None in decimals:
        return False
    return abs(left - right) <= 10 ** -max(2, *decimals) + 1e-9


def _differences(name: str, columns: list[str], duck_rows: list[tuple], spark_rows: list[tuple]) -> list[str]:
    problems = []
    if len(duck_rows) != len(spark_rows):
        problems.append(f"{name}: {len(duck_rows)} rows on DuckDB, {len(spark_rows)} on Spark")
    for d_row, s_row in zip(sorted(duck_rows, key=_sort_key), sorted(spark_rows, key=_sort_key), strict=False):
        for column, d, s in zip(columns, d_row, s_row, strict=True):
            same = (_floats_match(d, s) if isinstance(d, float) and isinstance(s, float) else d == s)
            if not same:
                problems.append(f"{name}.{column}: DuckDB {d!r} vs Spark {s!r} (row {dict(zip(columns, d_row, strict=True))})")
                break
        if len(problems) > 20:
            break
    return problems


def test_every_mart_is_the_same_on_duckdb_and_spark(duckdb_build: Path, spark_build: Path) -> None:
    marts = _marts(duckdb_build)
    assert "mart_price_distribution" in marts and any("unmapped_payers" in m for m in marts) and len(marts) >= 9, marts
    assert marts["mart_item_codes"] == "int_hospital_item_codes"
    problems: list[str] = []
    con = duckdb.connect()
    con.execute(f"attach '{duckdb_build}' as duck (read_only)")
    compared = {}
    for name, table in marts.items():
        assert (spark_build / table).is_dir(), f"{table} was not built on Spark ({sorted(os.listdir(spark_build))})"
        duck = con.execute(f"select * from duck.main.{name}")  # noqa: S608 - our table names
        columns = [c[0] for c in duck.description]
        duck_rows = [tuple(_plain(v) for v in row) for row in duck.fetchall()]
        # a view mart: the view's columns of the table it reads (its other columns are bookkeeping)
        selected = "*" if table == name else ", ".join(columns)
        spark = con.execute(f"select {selected} from read_parquet('{spark_build / table}/*.parquet')")  # noqa: S608
        spark_columns = [c[0] for c in spark.description]
        assert spark_columns == columns, f"{name}: columns differ\nDuckDB {columns}\nSpark  {spark_columns}"
        spark_rows = [tuple(_plain(v) for v in row) for row in spark.fetchall()]
        problems += _differences(name, columns, duck_rows, spark_rows)
        compared[name] = len(duck_rows)
    print("rows compared:", compared)
    # An empty mart compares nothing: the lake must give every mart rows.
    assert all(compared.values()), compared
    assert not problems, "\n".join(problems[:40])
