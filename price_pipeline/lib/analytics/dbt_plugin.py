"""dbt-duckdb plugin: the project's pure-Python rules made callable from the dbt models.

Named in ``dbt_analytics/profiles.yml`` (``plugins: [{module: price_pipeline.lib.analytics.dbt_plugin}]``).
On every DuckDB connection and cursor dbt opens it registers

* ``pp_payer_classify(payer_name, plan_name)`` — :func:`price_pipeline.lib.prices.payers.classify` as a
  Python UDF returning a STRUCT (canonical payer, class, product, deciding rule); int_payer_map
  calls it once per distinct payer/plan pair, so its cost does not grow with the price rows;
* the ``pp_*`` code macros of :mod:`price_pipeline.lib.prices.codes` (cleaning, harmonised code
  system, well-formedness, primary-code rank) in an in-memory database attached to the process
  (``pp_rules``), so nothing is stored in the warehouse file and the normaliser and dbt share one
  definition.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from price_pipeline.lib.prices import codes, payers

# The in-memory database of the code macros, attached once per dbt process.
RULES_CATALOG = "pp_rules"
# Where a cursor looks up unqualified names: the warehouse's schema first (every relation dbt
# writes or reads), then the macros. DuckDB keeps temp objects and built-in functions in front.
SEARCH_PATH = f"main,{RULES_CATALOG}.main"


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        payers.register_udf(conn)
        conn.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {RULES_CATALOG}")
        # the macros call each other unqualified, also when they are created
        conn.execute(f"SET search_path = '{SEARCH_PATH}'")
        codes.register(conn, schema=f"{RULES_CATALOG}.main")

    def configure_cursor(self, cursor) -> None:
        # dbt runs each node's SQL on a cursor of its own (a DuckDB connection of its own). The
        # UDF and the attached database belong to the process and are seen by every cursor; only
        # the search path is per connection. (TEMP macros, which belong to one connection, had to
        # be created again on every cursor: ~40-80 ms per dbt node, test or model, seconds per build.)
        cursor.execute(f"SET search_path = '{SEARCH_PATH}'")
