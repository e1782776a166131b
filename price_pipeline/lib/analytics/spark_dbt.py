"""The dbt project on Spark: the session, the project's Python rules as Spark UDFs, and dbt in-process.

dbt-spark's ``session`` method runs every statement through ``SparkSession.builder
.enableHiveSupport().getOrCreate()`` (``dbt/adapters/spark/session.py``): inside one Python
process that returns the session already running. So this module starts the session first
(:func:`spark_session`: master, warehouse folder, memory, from the environment), registers on it
the functions the models call (:func:`register_udfs`, the Spark counterpart of the dbt-duckdb
plugin :mod:`price_pipeline.lib.analytics.dbt_plugin`), and then runs dbt's CLI in the same process
(:func:`main`). The rules stay one Python definition for both engines:

* ``pp_payer_classify(payer_name, plan_name)`` -> struct: :func:`price_pipeline.lib.prices.payers.classify`;
* ``pp_clean_code``, ``pp_clean_code_type``, ``pp_code_system``, ``pp_code_well_formed``: the
  DuckDB macros of :mod:`price_pipeline.lib.prices.codes`, evaluated by an in-memory DuckDB connection
  in the Python worker (called once per distinct raw code cell, never per price row);
* ``pp_lake_glob(pattern)`` -> array<string>: the files a glob matches (fsspec; local or
  ``s3://``), what DuckDB's ``glob()`` gives the DuckDB models (Spark SQL has no listing
  function, and reading a glob that matches nothing fails).

``price-pipeline-dbt`` (:mod:`price_pipeline.dbt_env`, the dbt executable the Dagster models
asset runs) calls :func:`main` for a Spark build: ``price-pipeline-dbt build --target spark ...``
takes exactly dbt's arguments (and ``python -m price_pipeline.lib.analytics.spark_dbt`` does the same).
For any other target it runs plain dbt, starting no JVM.

Environment (docs/analytics.md, "Spark"):

``PRICE_PIPELINE_SPARK_MASTER``
    ``local[2]`` by default; ``yarn`` on an EMR primary node, ``k8s://...``, ``spark://host:7077``.
``PRICE_PIPELINE_SPARK_REMOTE``
    a Spark Connect URL (``sc://host:15002``, Databricks Connect) instead of a master.
``PRICE_PIPELINE_SPARK_WAREHOUSE``
    ``spark.sql.warehouse.dir``: where the tables are written (a folder or ``s3a://`` prefix).
``PRICE_PIPELINE_SPARK_DRIVER_MEMORY``
    ``spark.driver.memory`` (``1g``).
``PRICE_PIPELINE_SPARK_CONF``
    more settings, ``key=value`` separated by ``;`` (e.g. S3A credentials, executor sizes).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any

from price_pipeline.settings import SparkSettings, dbt_target

SPARK_TARGETS = ("spark",)


def spark_session(*, master: str | None = None, warehouse: str | None = None, conf: dict[str, str] | None = None):
    """The process's SparkSession, created with the project's settings (or the one running)."""
    from pyspark.sql import SparkSession

    settings = SparkSettings.from_env()
    builder = SparkSession.builder.appName("price_pipeline dbt")
    if settings.remote:
        builder = builder.remote(settings.remote)
    else:
        builder = builder.master(master or settings.master)
        warehouse = warehouse or settings.warehouse
        values = {
            "spark.driver.memory": settings.driver_memory,
            # Python workers run this interpreter (the one that has price_pipeline installed).
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
            # Small lakes and 2 cores: the default 200 shuffle partitions make every aggregate
            # 200 tiny tasks; adaptive execution coalesces them on a cluster anyway.
            "spark.sql.shuffle.partitions": "8",
            "spark.sql.adaptive.enabled": "true",
            "spark.ui.enabled": "false",
            "spark.sql.session.timeZone": "UTC",
            # Columns added to the pipeline's schemas later: union by name (DuckDB union_by_name).
            "spark.sql.parquet.mergeSchema": "true",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            # dbt-spark turns ANSI mode off on every statement; the same from the start.
            "spark.sql.ansi.enabled": "false",
        }
        if warehouse:
            values["spark.sql.warehouse.dir"] = warehouse
            # The embedded Derby metastore (when Hive support is on) beside the warehouse, not in the cwd.
            values["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={warehouse.rstrip('/')}-metastore"
        values.update(conf or {})
        values.update(settings.conf)
        for key, value in values.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not settings.remote:
        # A failing statement is reported by dbt (with Spark's message); Spark's own logger
        # would print each as a JSON record with the whole JVM stack trace.
        spark.sparkContext.setLogLevel(settings.log_level)
    return spark


# --- the UDFs -------------------------------------------------------------------------------

@functools.cache
def _duckdb_codes():
    import duckdb

    from price_pipeline.lib.prices import codes

    con = duckdb.connect()
    codes.register(con)
    return con


@functools.lru_cache(maxsize=65536)
def _code_macro(name: str, *args: Any) -> Any:
    placeholders = ", ".join("?" for _ in args)
    return _duckdb_codes().execute(f"select {name}({placeholders})", list(args)).fetchone()[0]


def pp_clean_code(code: str | None, code_type: str | None) -> str | None:
    return _code_macro("pp_clean_code", code, code_type)


def pp_clean_code_type(code_type: str | None) -> str | None:
    return _code_macro("pp_clean_code_type", code_type)


def pp_code_system(code: str | None, code_type: str | None) -> str | None:
    return _code_macro("pp_code_system", code, code_type)


def pp_code_well_formed(code: str | None, code_type: str | None) -> bool | None:
    return _code_macro("pp_code_well_formed", code, code_type)


def pp_lake_glob(pattern: str | None) -> list[str]:
    """Files matching ``pattern`` (local path or ``s3://``), sorted; empty when none."""
    if not pattern:
        return []
    import fsspec

    kwargs: dict[str, Any] = {}
    if pattern.startswith(("s3://", "s3a://")):
        pattern = "s3://" + pattern.split("://", 1)[1]
        endpoint = SparkSettings.from_env().s3_endpoint_url
        kwargs["client_kwargs"] = {"endpoint_url": endpoint} if endpoint else {}
    fs, path = fsspec.core.url_to_fs(pattern, **kwargs)
    found = sorted(fs.glob(path))
    return [fs.unstrip_protocol(p) if "://" in pattern else p for p in found]


def register_udfs(spark) -> None:
    """Register the project's Python rules as SQL functions of the session (see the module doc)."""
    from pyspark.sql.types import ArrayType, BooleanType, StringType, StructField, StructType

    from price_pipeline.lib.prices import payers

    classify_type = StructType([
        StructField(name, StringType())
        for name in ("payer_canonical", "payer_class", "product", "class_rule", "brand_source", "normalized")
    ])
    spark.udf.register("pp_payer_classify", payers.classify_struct, classify_type)
    spark.udf.register("pp_clean_code", pp_clean_code, StringType())
    spark.udf.register("pp_clean_code_type", pp_clean_code_type, StringType())
    spark.udf.register("pp_code_system", pp_code_system, StringType())
    spark.udf.register("pp_code_well_formed", pp_code_well_formed, BooleanType())
    spark.udf.register("pp_lake_glob", pp_lake_glob, ArrayType(StringType()))


# --- dbt in-process ---------------------------------------------------------------------------

def _target(argv: list[str], environ: Mapping[str, str] | None = None) -> str:
    for i, arg in enumerate(argv):
        if arg in ("--target", "-t") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--target="):
            return arg.split("=", 1)[1]
    return dbt_target(environ)


def run_dbt(argv: list[str]) -> int:
    """dbt's CLI in this process: 0 success, 1 failed nodes, 2 error (dbt's own exit codes)."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(argv)
    if result.success:
        return 0
    return 2 if result.exception is not None else 1


def needs_spark_session(argv: list[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether these dbt arguments run SQL on a Spark target (parse, deps, clean do not)."""
    return (bool(argv) and argv[0] not in ("parse", "deps", "clean", "debug", "--version", "--help")
            and _target(argv, environ) in SPARK_TARGETS)


def main(argv: list[str] | None = None) -> int:
    """dbt in this process, with the Spark session and UDFs set up first for a Spark target."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if needs_spark_session(argv):
        register_udfs(spark_session())
    return run_dbt(argv)


if __name__ == "__main__":
    sys.exit(main())
