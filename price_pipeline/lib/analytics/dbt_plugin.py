"""dbt-duckdb plugin: the project's pure-Python rules made callable from the dbt models.

Named in ``dbt_analytics/profiles.yml`` (``plugins: [{module: price_pipeline.lib.analytics.dbt_plugin}]``).
On every DuckDB connection and cursor dbt opens it registers

* ``pp_payer_classify(payer_name, plan_name)`` — :func:`price_pipeline.lib.prices.payers.classify` as a
  Python UDF returning a STRUCT (canonical payer, class, product, deciding rule); int_payer_map
  calls it once per distinct payer/plan pair, so its cost does not grow with the price rows;
* the ``pp_*`` code macros of :mod:`price_pipeline.lib.prices.codes` (cleaning, harmonised code
  system, well-formedness, primary-code rank) as TEMP macros, so nothing is stored in the
  warehouse file and the normaliser and dbt share one definition.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from price_pipeline.lib.prices import codes, payers


class Plugin(BasePlugin):
    def configure_connection(self, conn) -> None:
        payers.register_udf(conn)
        codes.register(conn, temporary=True)

    def configure_cursor(self, cursor) -> None:
        # TEMP macros belong to one DuckDB connection, and dbt runs its SQL on cursors
        # (connections of their own); the UDF registered on the parent is visible to them.
        codes.register(cursor, temporary=True)
