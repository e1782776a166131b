"""Analytics: the dbt project over all hospitals' prices, and the extracts built from it.

Only dbt writes the DuckDB warehouse. Both the dbt models and the exports (which read the
warehouse file) run in the ``duckdb_warehouse`` pool, limited to one at a time in dagster.yaml,
because DuckDB allows a single writing process per file.
"""


import functools
import importlib.metadata
import json
import shutil
import sys
import uuid
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version  # dagster-dbt's own dependency: the version type it expects

from price_pipeline.dbt_env import COMMAND as DBT_ENV_COMMAND
from price_pipeline.dbt_env import env_flags
from price_pipeline.defs.ops.retries import timed
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.defs.table_metadata import (
    COLUMN_SCHEMA,
    PREVIEW,
    csv_table_metadata,
    parquet_table_metadata,
    table_metadata,
)
from price_pipeline.lib.analytics import (
    ExportFilters,
    export_relation,
    forget_build,
    in_dependency_order,
    incremental_build_args,
    keep_partial_parse,
    natural_keys,
    needs_full_refresh,
    partial_parse_cache,
    publish_tables,
    quote_identifier,
    record_build,
    seed_partial_parse,
    unchanging_nodes,
)
from price_pipeline.lib.lake import connect_duckdb, layout
from price_pipeline.lib.ops import FULL_REFRESH_TAG
from price_pipeline.settings import PROJECT_ROOT, Settings, child_environment, environ

WAREHOUSE_POOL = "duckdb_warehouse"
# The dbt installed beside this interpreter, so an unactivated virtualenv still finds it.
DBT_EXECUTABLE = shutil.which("dbt", path=str(Path(sys.executable).parent)) or "dbt"
# dbt started with a run's environment (price_pipeline/dbt_env.py), installed beside it
DBT_WITH_ENV = shutil.which(DBT_ENV_COMMAND, path=str(Path(sys.executable).parent)) or DBT_ENV_COMMAND
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_analytics"

dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    profiles_dir=DBT_PROJECT_DIR,
    # the target of `dbt parse` (make manifest); runs pass their own (dbt_for_run)
    target=Settings.from_env().dbt_target,
)

class PriceDbtTranslator(DagsterDbtTranslator):
    """dbt models and seeds become assets of the ``analytics`` group."""

    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec
        return spec.replace_attributes(group_name="analytics")

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        """dbt tests become asset checks named after the test. A model's column rules (required,
        unique and accepted-value columns, its grain) are one ``column_rules`` test
        (macros/test_column_rules.sql) named ``column_rules_<model>``: its check says in the UI
        which columns and rules it covers."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        description = check_description(manifest["nodes"][unique_id])
        return spec._replace(description=description) if description else spec


def check_description(test_node: dict) -> str | None:
    """The asset check description of a dbt test node that has no ``meta.description`` of its own:
    the columns and rules of a model's ``column_rules`` test (its name only says which model it is on)."""
    metadata = test_node.get("test_metadata") or {}
    if metadata.get("name") != "column_rules":
        return None
    kwargs = metadata.get("kwargs") or {}
    parts = []
    if kwargs.get("not_null"):
        parts.append("No NULL in any of these columns: " + ", ".join(kwargs["not_null"]) + ".")
    if kwargs.get("unique"):
        parts.append("Unique: " + ", ".join(kwargs["unique"]) + ".")
    for column, values in (kwargs.get("accepted_values") or {}).items():
        parts.append(f"{column} is one of: " + ", ".join(str(v) for v in values) + ".")
    for columns in kwargs.get("unique_combinations") or []:
        parts.append("Unique together: " + ", ".join(columns) + ".")
    return " ".join(parts) or None


class RunDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two fixed costs it pays on every invocation, for things the
    models asset does not use (about 5 s of a 2-core machine per analytics build):

    * it asks the dbt executable for its version, a process that imports dbt (~2.5 s): ours is
      the launcher of the dbt-core installed beside this interpreter, whose version the package
      metadata gives;
    * it builds a dbt adapter and loads every macro in this process (~2 s), used only to fetch
      column metadata from the database: the models asset reads row counts and columns from the
      warehouse itself after the build (:func:`with_table_row_counts`).

    Both are dagster-dbt internals (``_cli_version``, ``_initialize_dbt_core_adapter``); a test
    fails when the installed dagster-dbt no longer has them."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


def dbt_run_env(price_pipeline: PricePipelineResource) -> dict[str, str]:
    """The settings a run's dbt gets in its environment, beside the calling process's own."""
    settings = price_pipeline.settings
    env = {
        "PRICE_PIPELINE_DBT_TARGET": settings.dbt_target,
        "PRICE_PIPELINE_LAKE_URL": price_pipeline.lake.root_url,
        "PRICE_PIPELINE_WAREHOUSE_PATH": str(settings.warehouse_path),
    }
    if settings.s3_endpoint_url:
        env["PRICE_PIPELINE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


def dbt_for_run(dbt: DbtCliResource, price_pipeline: PricePipelineResource) -> DbtCliResource:
    """The dbt resource of one run: the run's target, and dbt started by ``price-pipeline-dbt``
    with the run's lake, warehouse and S3 endpoint in dbt's environment (profiles.yml and the
    sources read them), never in this process's (price_pipeline/dbt_env.py)."""
    settings = price_pipeline.settings
    env = dbt_run_env(price_pipeline)
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    return RunDbtCliResource(
        project_dir=dbt.project_dir,
        profiles_dir=dbt.profiles_dir,
        profile=dbt.profile,
        target=settings.dbt_target,
        state_path=dbt.state_path,
        dbt_executable=DBT_WITH_ENV,
        global_config_flags=[*env_flags(env), *dbt.global_config_flags],
    )


class DbtBuildConfig(dg.Config):
    """Run config of the dbt models (``ops: price_analytics_dbt_models: config: full_refresh``)."""

    full_refresh: bool = False
    """Rebuild every per-hospital incremental table from scratch (dbt ``--full-refresh``), not only
    the hospitals whose versions changed. Also set by the run tag ``price_pipeline/full_refresh=true``
    (``price-pipeline launch --job build_analytics --full-refresh``). See docs/analytics.md."""


def dbt_build_args(full_refresh: bool) -> list[str]:
    """The dbt command of the models asset: an incremental ``build`` (dbt finds the changed
    hospitals itself, macros/incremental_by_hospital.sql), or a full refresh on request."""
    return ["build", "--full-refresh"] if full_refresh else ["build"]


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=PriceDbtTranslator(),
    pool=WAREHOUSE_POOL,
)
def price_analytics_dbt_models(
    context: dg.AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    price_pipeline: PricePipelineResource,
):
    """Staging, intermediate and mart models over every hospital's prices, built with dbt-duckdb;
    dbt tests are reported as asset checks. The per-hospital intermediate tables are incremental:
    only hospitals whose file versions, catalog status or payer classes changed are recomputed,
    unless the run asks for a full refresh (config or tag, see DbtBuildConfig)."""
    full_refresh = config.full_refresh or context.run.tags.get(FULL_REFRESH_TAG) == "true"
    if not full_refresh and needs_full_refresh(price_pipeline.settings.warehouse_path):
        # a warehouse of the layout before the incremental tables: rebuild it once
        context.log.info("warehouse has no per-hospital fingerprints yet: dbt build --full-refresh")
        full_refresh = True
    warehouse = price_pipeline.settings.warehouse_path
    selection, fingerprint = incremental_build_args(
        _manifest(), warehouse, child_environment(dbt_run_env(price_pipeline)), full_refresh=full_refresh)
    whole_project = is_whole_project(context) and price_pipeline.settings.dbt_target != "spark"
    if not whole_project:
        selection = []  # dagster-dbt selects the subset; its tests follow dbt's indirect selection
    elif selection:
        context.log.info("same project and settings as the last successful build: seeds and views are "
                         "kept, every table, incremental model and data test runs")
    forget_build(warehouse)
    # The run's own target directory, as dagster-dbt would name it, seeded with the parse state of
    # this warehouse's previous build (same profile: dbt re-parses only what changed).
    target_path = (Path(dbt.project_dir) / environ().get("DBT_TARGET_PATH", "target")
                   / f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}")
    parse_cache = partial_parse_cache(warehouse)
    seed_partial_parse(parse_cache, target_path)
    # DuckDB lets one process hold the file while dbt writes it, so row counts are read after
    # the build (not per model while it runs); the events are held back until then.
    invocation = dbt_for_run(dbt, price_pipeline).cli([*dbt_build_args(full_refresh), *selection],
                                                      context=context, raise_on_error=False,
                                                      target_path=target_path)
    try:
        events = list(invocation.stream())
    except BaseException:
        # Nobody reads dbt's output any more: stop it rather than leave it blocked on a pipe.
        invocation.process.kill()
        invocation.process.wait()
        raise
    invocation.process.wait()  # dbt must have released the warehouse file
    keep_partial_parse(target_path, parse_cache)
    if selection and invocation.is_successful():
        # Dagster takes a multi-asset's outputs in dependency order only
        events = in_dependency_order(events, event_unique_id, kept_node_outputs(context), _manifest())
    yield from with_table_row_counts(events, price_pipeline)
    if not invocation.is_successful():
        raise invocation.get_error()
    if whole_project:
        record_build(warehouse, fingerprint)


def event_unique_id(event) -> str | None:
    """The dbt node of a dbt event (an Output or a check result), from its metadata."""
    unique_id = (getattr(event, "metadata", None) or {}).get("unique_id")
    return unique_id.value if hasattr(unique_id, "value") else unique_id


def kept_node_outputs(context: dg.AssetExecutionContext) -> dict[str, dg.Output]:
    """An Output for each seed and view the lean build kept rather than rebuilt: the relation in
    the warehouse is the one this build would have made, and the assets downstream of them in the
    job (published_marts, exports) must not be skipped for want of their materialization."""
    manifest = _manifest()
    translator = PriceDbtTranslator()
    outputs = {}
    for unique_id in unchanging_nodes(manifest):
        if manifest["nodes"][unique_id]["resource_type"] == "test":
            continue
        key = translator.get_asset_spec(manifest, unique_id, dbt_project).key
        outputs[unique_id] = dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_key(key),
                                       metadata={"unique_id": unique_id,
                                                 "dbt_kept": "unchanged since the last successful build, not rebuilt"})
    return outputs


def is_whole_project(context: dg.AssetExecutionContext) -> bool:
    """Whether the run builds every model and check of the dbt project (the build_analytics job),
    not a subset picked in the UI: only then may the build skip the nodes that cannot change."""
    assets_def = context.assets_def
    return (set(context.selected_asset_keys) == set(assets_def.keys)
            and set(context.selected_asset_check_keys) == set(assets_def.check_keys))


def shows_table_metadata(node: dict) -> bool:
    """Whether the models asset reads a model's row count, schema and preview after the build:
    tables and incremental tables, and the marts that are views of a table (mart_item_codes),
    which users read like any mart. Not the other views: they read the lake row by row."""
    materialized = node["config"].get("materialized")
    return materialized in ("table", "incremental") or (
        materialized == "view" and node["original_file_path"].startswith("models/marts/"))


def with_table_row_counts(events: list, price_pipeline: PricePipelineResource) -> list:
    """Attach row counts of table and incremental models (and of the marts that are views) and the
    warehouse size to dbt's Output events."""
    warehouse = Path(price_pipeline.settings.warehouse_path)
    if not warehouse.exists():
        return events
    nodes = json.loads(Path(dbt_project.manifest_path).read_text())["nodes"]
    con = connect_duckdb(price_pipeline.lake, str(warehouse), read_only=True)
    enriched = []
    try:
        for event in events:
            unique_id = getattr(event, "metadata", {}).get("unique_id")
            node = nodes.get(unique_id.value if hasattr(unique_id, "value") else unique_id) if unique_id else None
            if isinstance(event, dg.Output) and node and shows_table_metadata(node):
                relation = node["relation_name"]
                rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]  # noqa: S608
                descriptions = {name: column.get("description") for name, column in node.get("columns", {}).items()}
                event = event.with_metadata(
                    {
                        **event.metadata,
                        "dagster/row_count": rows,
                        "warehouse_bytes": warehouse.stat().st_size,
                        **table_metadata(con, relation, descriptions),
                    }
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
# unmapped_payers is the payer-mapping review queue (most frequent first; the dbt model
# review_unmapped_payers, published under its earlier name so analysts' paths stay).
EXTRACTS = {
    **{name: name for name in MART_EXPORTS},
    "unmapped_payers": "review_unmapped_payers",
    "prices_current": "int_prices_current",
}
# The relation that gives each hospital's state, so a state filter reaches tables keyed by hospital.
HOSPITALS_RELATION = "stg_hospitals"


@functools.cache
def _manifest() -> dict:
    """The manifest of ``make manifest`` as this code location loaded it (read once)."""
    return json.loads(Path(dbt_project.manifest_path).read_text())


def _mart_models() -> list[str]:
    """Every dbt model under models/marts/ (so a new mart is published without editing this file)."""
    return sorted(
        n["name"] for n in _manifest()["nodes"].values()
        if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")
    )


def _documented_columns(relation: str) -> dict[str, dict]:
    """The dbt model's documented columns (schema.yml), in their documented order."""
    node = next((n for n in _manifest()["nodes"].values()
                 if n["resource_type"] in ("model", "seed") and n["name"] == relation), None)
    return dict(node.get("columns", {})) if node else {}


def column_descriptions(relation: str) -> dict[str, str]:
    """Column -> dbt description of a warehouse relation (the model's schema.yml docs)."""
    return {name: c["description"] for name, c in _documented_columns(relation).items() if c.get("description")}


def declared_tables(tables: dict[str, str]) -> dict:
    """Definition metadata of an asset that writes several tables (``name -> relation``): each
    table's column schema from its dbt docs (types as dbt knows them; ``?`` until built)."""
    metadata = {}
    for name, relation in sorted(tables.items()):
        columns = _documented_columns(relation)
        if columns:
            metadata[f"{name}/column_schema"] = dg.TableSchema(columns=[
                dg.TableColumn(column, info.get("data_type") or "?", description=info.get("description") or None)
                for column, info in columns.items()
            ])
    return metadata


def written_tables(files: dict[str, Path], tables: dict[str, str]) -> dict:
    """Materialization metadata of the tables an asset wrote (``name -> local file``): each
    table's column schema (dbt descriptions included) and first rows, read from the file."""
    metadata = {}
    for name, path in sorted(files.items()):
        if path.suffix == ".parquet":
            shown = parquet_table_metadata(str(path), column_descriptions(tables[name]))
        else:  # a CSV-only export: the cells as the file holds them (all text)
            shown = csv_table_metadata(str(path), column_descriptions(tables[name]))
        if COLUMN_SCHEMA in shown:  # absent when the file could not be read back (best effort)
            metadata[f"{name}/column_schema"] = shown[COLUMN_SCHEMA]
        metadata[f"{name}/preview"] = shown[PREVIEW]
    return metadata


# published name -> warehouse relation: every mart, the extracts' other tables and the hospitals.
PUBLISHED_TABLES = {
    **{name: name for name in _mart_models()},
    **EXTRACTS,
    "hospitals": HOSPITALS_RELATION,
}
# relation -> the columns its rows are written in order of (its dbt unique tests): the same data
# gives byte-identical extracts and published files in every build.
NATURAL_KEYS = natural_keys(_manifest())


@dg.asset(
    deps=[dg.AssetKey(relation) for relation in sorted(set(PUBLISHED_TABLES.values()))],
    group_name="exports",
    kinds={"duckdb", "parquet"},
    pool=WAREHOUSE_POOL,
    owners=["team:analytics"],
    metadata=declared_tables(PUBLISHED_TABLES),
)
def published_marts(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """Every mart (and current prices, the payer review queue, the hospitals) as Parquet in the lake.

    One snapshot per build under ``marts/<name>/built_at=<UTC>/``, the newest also at
    ``marts/<name>/latest/``, and ``marts/_latest.json`` naming the build's snapshots, so analysts
    read the marts from the lake (DuckDB, pandas, Spark, Athena) without the warehouse file, and
    the warehouse is never the only copy (docs/analysts.md). Rows are in the order of each table's
    key, and each table's columns and first rows are shown in the materialization.
    """
    lake = price_pipeline.lake
    with price_pipeline.scratch_dir("published_marts") as scratch:
        con = connect_duckdb(lake, str(price_pipeline.settings.warehouse_path), read_only=True)
        try:
            manifest = publish_tables(con, lake, PUBLISHED_TABLES, Path(scratch), keys=NATURAL_KEYS)
        finally:
            con.close()
        shown = written_tables({name: Path(scratch) / f"{name}.parquet" for name in manifest["tables"]},
                               PUBLISHED_TABLES)
    for name in manifest["missing"]:
        context.log.warning(f"{PUBLISHED_TABLES[name]} is not in the warehouse; {name} not published")
    tables = manifest["tables"]
    return dg.MaterializeResult(
        metadata={
            "built_at": manifest["built_at"],
            "tables": dg.MetadataValue.json({name: {k: v for k, v in t.items() if k != "latest"} for name, t in tables.items()}),
            "missing": dg.MetadataValue.json(manifest["missing"]),
            "dagster/row_count": sum(t["rows"] for t in tables.values()),
            "bytes": sum(t["bytes"] for t in tables.values()),
            "lake_prefix": dg.MetadataValue.path(lake.uri("marts")),
            **shown,
        }
    )


class ExportConfig(dg.Config):
    """Filters for a run of ``exports``; with any filter the extracts go to ``exports/subsets/<filters>/``."""

    hospitals: list[str] = []
    states: list[str] = []
    codes: list[str] = []
    payer_classes: list[str] = []
    formats: list[str] = ["parquet", "csv"]


@dg.asset(
    deps=[dg.AssetKey(relation) for relation in EXTRACTS.values()],
    group_name="exports",
    kinds={"duckdb", "csv", "parquet"},
    pool=WAREHOUSE_POOL,
    owners=["team:analytics"],
    metadata=declared_tables(EXTRACTS),
)
@timed
def exports(
    context: dg.AssetExecutionContext, config: ExportConfig, price_pipeline: PricePipelineResource
) -> dg.MaterializeResult:
    """CSV and Parquet extracts of the marts and of all current prices, under ``exports/`` in the lake.

    CSV cells that a spreadsheet would run as a formula are neutralised with a leading apostrophe,
    and every CSV is read back with that rule before anything is published (an unsafe file fails
    the run instead of reaching the lake). Run config filters by hospital, state, code and payer
    class; a filtered run writes under ``exports/subsets/<filters>/`` and leaves the national
    extracts alone, and skips (with a warning) a table that cannot honour a filter. Rows are
    written in the order of each table's key (its dbt unique tests), so the same data gives the
    same bytes; each extract's columns and first rows are shown in the materialization.
    """
    unknown = set(config.formats) - {"parquet", "csv"}
    if unknown or not config.formats:
        raise dg.Failure(f"formats must be parquet and/or csv, not {config.formats}")
    filters = ExportFilters.of(config.hospitals, config.states, config.codes, config.payer_classes)
    subset = None if filters.is_empty() else filters.slug()
    lake = price_pipeline.lake
    summary: dict[str, dict[str, int]] = {}
    skipped: list[str] = []
    with price_pipeline.scratch_dir("exports") as scratch:
        out_dir = Path(scratch)
        con = connect_duckdb(lake, str(price_pipeline.settings.warehouse_path), read_only=True)
        try:
            tables = {
                row[0]
                for row in con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                ).fetchall()
            }
            hospitals = quote_identifier(HOSPITALS_RELATION) if HOSPITALS_RELATION in tables else None
            for name, relation in EXTRACTS.items():
                if relation not in tables:
                    context.log.warning(f"{relation} is not in the warehouse; skipped")
                    continue
                relation_sql = quote_identifier(relation)
                columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()}  # noqa: S608
                where = filters.where(columns, hospitals)
                if where is None:
                    context.log.warning(f"{name} has no column for filters {filters.as_dict()}; skipped")
                    skipped.append(name)
                    continue
                summary[name] = export_relation(con, relation_sql, out_dir, name, where=where,
                                                formats=tuple(config.formats), key=NATURAL_KEYS.get(relation))
        finally:
            con.close()
        written = {name: out_dir / f"{name}.{'parquet' if 'parquet' in config.formats else 'csv'}"
                   for name in summary}
        shown = written_tables(written, EXTRACTS)
        # Nothing reaches the lake before every file was written and checked.
        for path in sorted(out_dir.iterdir()):
            lake.put_file(path, layout.export_key(path.stem, path.suffix.lstrip("."), subset))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(s["rows"] for s in summary.values()),
            "bytes": sum(s["parquet_bytes"] + s["csv_bytes"] for s in summary.values()),
            "extracts": dg.MetadataValue.json(summary),
            "filters": dg.MetadataValue.json(filters.as_dict()),
            "skipped_for_filters": dg.MetadataValue.json(skipped),
            "lake_prefix": dg.MetadataValue.path(lake.uri(layout.export_key("x", "csv", subset).rsplit("/", 1)[0])),
            **shown,
        }
    )
