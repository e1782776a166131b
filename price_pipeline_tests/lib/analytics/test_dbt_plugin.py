"""The dbt-duckdb plugin: the payer UDF and the code macros on every cursor dbt opens, set up once
per process (not once per dbt node), and nothing written into the warehouse file."""

from __future__ import annotations

import time

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin

from price_pipeline.lib.analytics import dbt_plugin


def test_every_cursor_calls_the_rules_and_the_warehouse_keeps_none(tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    plugin = BasePlugin.create("price_pipeline.lib.analytics.dbt_plugin")
    assert isinstance(plugin, dbt_plugin.Plugin)
    with duckdb.connect(path) as con:
        plugin.configure_connection(con)
        for _ in range(2):  # dbt opens a cursor per node
            cursor = con.cursor()
            plugin.configure_cursor(cursor)
            assert cursor.execute("SELECT pp_code_system('J1100', 'CPT')").fetchall() == [("HCPCS",)]
            assert cursor.execute("SELECT pp_payer_classify('Aetna', 'Medicare Advantage HMO').payer_class"
                                  ).fetchall() == [("medicare_advantage",)]
            # unqualified names still reach the warehouse's own tables and the cursor's temp tables
            cursor.execute("CREATE OR REPLACE TABLE t AS SELECT 1 AS a")
            cursor.execute("CREATE OR REPLACE TEMP TABLE tt AS SELECT 2 AS b")
            assert cursor.execute("SELECT a, b FROM t, tt").fetchall() == [(1, 2)]
            cursor.close()
        (catalog,) = con.execute("SELECT database_name FROM duckdb_tables() WHERE table_name = 't'").fetchone()
        assert catalog == "warehouse"
    with duckdb.connect(path) as con:
        assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'pp_%'").fetchall() == [
            (0,)]


def test_a_cursor_costs_no_macro_registration(tmp_path):
    """A cursor only sets its search path; the ~16 code macros are created once per process (they
    were created again on each cursor: ~40-80 ms of every dbt node)."""
    plugin = BasePlugin.create("price_pipeline.lib.analytics.dbt_plugin")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        plugin.configure_connection(con)
        before = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'pp_%'").fetchone()
        cursors = [con.cursor() for _ in range(20)]
        started = time.perf_counter()
        for cursor in cursors:
            plugin.configure_cursor(cursor)
        per_cursor = (time.perf_counter() - started) / len(cursors)
        after = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'pp_%'").fetchone()
        assert before == after and before[0] > 10
        assert not cursors[0].execute("SELECT function_name FROM duckdb_functions() "
                                      "WHERE function_name LIKE 'pp_%' AND database_name = 'temp'").fetchall()
        assert per_cursor < 0.02, per_cursor  # generous: a SET statement takes well under 1 ms
