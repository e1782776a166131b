"""Analytics: the dbt project over all hospitals' prices, and the extracts built from it.

Only dbt writes the DuckDB warehouse. Both the dbt models and the exports (which read the
warehouse file) run in the ``duckdb_warehouse`` pool, limited to one at a time in dagster.yaml,
because DuckDB allows a single writing process per file.
"""


import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.exports import export_relation, quote_identifier
from price_pipeline.lib.storage import connect_duckdb
from price_pipeline.settings import PROJECT_ROOT

WAREHOUSE_POOL = "duckdb_warehouse"
# The dbt installed beside this interpreter, so an unactivated virtualenv still finds it.
DBT_EXECUTABLE = shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_analytics"

dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    target=os.environ.get("PRICE_PIPELINE_DBT_TARGET") or None,
)

class PriceDbtTranslator(DagsterDbtTranslator):
    """dbt models and seeds become assets of the ``analytics`` group."""

    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec
        return spec.replace_attributes(group_name="analytics")


@contextlib.contextmanager
def dbt_environment(price_pipeline: PricePipelineResource):
    """dbt reads the lake and warehouse locations from the environment (profiles.yml, sources).

    They are set only while the dbt process starts (it copies the environment) and restored
    afterwards, so nothing leaks into the rest of the process (an in-process run, a test).
    """
    wanted = {
        "PRICE_PIPELINE_LAKE_URL": price_pipeline.lake.root_url,
        "PRICE_PIPELINE_WAREHOUSE_PATH": price_pipeline.warehouse_path,
    }
    if price_pipeline.s3_endpoint_url:
        wanted["PRICE_PIPELINE_S3_ENDPOINT_URL"] = price_pipeline.s3_endpoint_url
    saved = {name: os.environ.get(name) for name in wanted}
    Path(price_pipeline.warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=PriceDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def price_analytics_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, price_pipeline: PricePipelineResource
):
    """Staging, intermediate and mart models over every hospital's prices, built with dbt-duckdb;
    dbt tests are reported as asset checks."""
    # DuckDB lets one process hold the file while dbt writes it, so row counts are read after
    # the build (not per model while it runs); the events are held back until then.
    with dbt_environment(price_pipeline):
        invocation = dbt.cli(["build"], context=context, raise_on_error=False)
    try:
        events = list(invocation.stream())
    except BaseException:
        # Nobody reads dbt's output any more: stop it rather than leave it blocked on a pipe.
        invocation.process.kill()
        invocation.process.wait()
        raise
    invocation.process.wait()  # dbt must have released the warehouse file
    yield from with_table_row_counts(events, price_pipeline)
    if not invocation.is_successful():
        raise invocation.get_error()


def with_table_row_counts(events: list, price_pipeline: PricePipelineResource) -> list:
    """Attach row counts of table models and the warehouse size to dbt's Output events."""
    warehouse = Path(price_pipeline.warehouse_path)
    if not warehouse.exists():
        return events
    nodes = json.loads(Path(dbt_project.manifest_path).read_text())["nodes"]
    con = connect_duckdb(price_pipeline.lake, str(warehouse), read_only=True)
    enriched = []
    try:
        for event in events:
            unique_id = getattr(event, "metadata", {}).get("unique_id")
            node = nodes.get(unique_id.value if hasattr(unique_id, "value") else unique_id) if unique_id else None
            if isinstance(event, dg.Output) and node and node["config"].get("materialized") == "table":
                rows = con.execute(f"SELECT count(*) FROM {node['relation_name']}").fetchone()[0]  # noqa: S608
                event = event.with_metadata(
                    {**event.metadata, "dagster/row_count": rows, "warehouse_bytes": warehouse.stat().st_size}
                )
            enriched.append(event)
    finally:
        con.close()
    return enriched


MART_EXPORTS = (
    "mart_price_distribution",
    "mart_hospital_summary",
    "mart_payer_comparison",
    "mart_hospital_price_index",
    "mart_price_trends",
    "mart_item_codes",
)
# extract name -> warehouse relation; prices_current holds each hospital's current file versions,
# unmapped_payers is the payer-mapping review queue (most frequent first).
EXTRACTS = {
    **{name: name for name in MART_EXPORTS},
    "unmapped_payers": "unmapped_payers",
    "prices_current": "int_prices_current",
}


@dg.asset(
    deps=[dg.AssetKey(relation) for relation in EXTRACTS.values()],
    group_name="exports",
    kinds={"duckdb", "csv", "parquet"},
    pool=WAREHOUSE_POOL,
    owners=["team:analytics"],
)
def exports(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """CSV and Parquet extracts of the marts and of all current prices, under ``exports/`` in the lake.

    CSV cells that a spreadsheet would run as a formula are neutralised with a leading apostrophe.
    """
    started = time.monotonic()
    lake = price_pipeline.lake
    summary: dict[str, dict[str, int]] = {}
    with price_pipeline.scratch_dir("exports") as scratch:
        out_dir = Path(scratch)
        con = connect_duckdb(lake, price_pipeline.warehouse_path, read_only=True)
        try:
            tables = {
                row[0]
                for row in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                ).fetchall()
            }
            for name, relation in EXTRACTS.items():
                if relation not in tables:
                    context.log.warning(f"{relation} is not in the warehouse; skipped")
                    continue
                summary[name] = export_relation(con, quote_identifier(relation), out_dir, name)
        finally:
            con.close()
        for path in sorted(out_dir.iterdir()):
            lake.put_file(path, f"exports/{path.name}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(s["rows"] for s in summary.values()),
            "bytes": sum(s["parquet_bytes"] + s["csv_bytes"] for s in summary.values()),
            "duration_seconds": round(time.monotonic() - started, 3),
            "extracts": dg.MetadataValue.json(summary),
            "lake_prefix": dg.MetadataValue.path(lake.uri("exports")),
        }
    )
