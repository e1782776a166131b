"""The Great Expectations (1.x) suite run on one hospital's ``prices`` partition.

GX is imported inside :func:`run_price_expectations` (and ``_many``) only: importing it costs seconds, and the
ingestion code location must not pay that at load time.

Two batches are validated from the partition's Parquet with an ephemeral GX context and a pandas
datasource (only the needed columns are loaded):

* ``prices_long`` — one row per price (the table as stored): nulls (lineage, charge kind, the
  value its kind requires), allowed values (charge kind, setting, billing class, drug unit type;
  compared trimmed and lower/upper-cased, as the dbt staging layer does), ranges (amounts in
  [0, 10,000,000], percentages in [0, 1000]).
* ``prices_wide`` — one row per item (item-level kinds) or per item × payer/plan (payer kinds)
  with the kinds as columns: ``minimum ≤ maximum``, ``percentile_10th ≤ median ≤ percentile_90th``.

Partitions above ``MAX_ROWS`` rows are validated on a reproducible sample of that many rows
(DuckDB reservoir sample, seed 42); the result says so (``sampled``), and the ``unexpected``
counts are then counts in the sample.

:func:`run_price_expectations_many` gives the same results for many hospitals in a few GX
validations (a batched run of the expectations asset, the rehearsal's library baseline): GX's own
per-validation machinery, not the rows, is most of a small hospital's cost.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from price_pipeline.lib.lake.schemas import CHARGE_KINDS

MAX_ROWS = 200_000
MAX_AMOUNT = 10_000_000.0
MAX_PERCENTAGE = 1000.0
SETTINGS = ["inpatient", "outpatient", "both"]
BILLING_CLASSES = ["professional", "facility", "both"]
DRUG_TYPES = ["GR", "ME", "ML", "UN", "F2", "EA", "GM"]
DOLLAR_KINDS = ["gross", "discounted_cash", "minimum", "maximum", "negotiated_dollar", "estimated_amount",
                "median", "percentile_10th", "percentile_90th"]

_LONG_SQL = """
SELECT hospital_key, file_sha256, source_row, source_path, charge_kind, amount, percentage, value_text,
       lower(trim(setting)) AS setting, lower(trim(billing_class)) AS billing_class,
       upper(trim(drug_type_of_measurement)) AS drug_type_of_measurement
FROM read_parquet(?) {sample}
"""

_ITEM = ("file_sha256, description, primary_code, primary_code_type, setting, billing_class, modifiers, "
         "drug_unit_of_measurement, drug_type_of_measurement, payer_name, plan_name")

_WIDE_SQL = f"""
SELECT {_ITEM},
       max(amount) FILTER (WHERE charge_kind = 'minimum') AS minimum,
       max(amount) FILTER (WHERE charge_kind = 'maximum') AS maximum,
       max(amount) FILTER (WHERE charge_kind = 'percentile_10th') AS percentile_10th,
       max(amount) FILTER (WHERE charge_kind = 'median') AS median,
       max(amount) FILTER (WHERE charge_kind = 'percentile_90th') AS percentile_90th
FROM read_parquet(?)
WHERE charge_kind IN ('minimum', 'maximum', 'percentile_10th', 'median', 'percentile_90th')
GROUP BY ALL
"""  # noqa: S608 - constant


def _load_frames(path: str | os.PathLike, max_rows: int):
    import duckdb

    con = duckdb.connect()
    try:
        total = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()[0][0]
        sampled = total > max_rows
        sample = f"USING SAMPLE reservoir({int(max_rows)} ROWS) REPEATABLE (42)" if sampled else ""
        long = con.execute(_LONG_SQL.format(sample=sample), [str(path)]).fetchdf()
        wide = con.execute(f"SELECT * FROM ({_WIDE_SQL}) {sample}", [str(path)]).fetchdf()  # noqa: S608
    finally:
        con.close()
    return long, wide, total, sampled


def build_suites(gx) -> dict[str, Any]:
    """The two expectation suites (``prices_long``, ``prices_wide``) built with the ``gx`` module."""
    E = gx.expectations
    dollar_condition = "charge_kind in " + repr(DOLLAR_KINDS)
    long = gx.ExpectationSuite(
        name="prices_long",
        expectations=[
            E.ExpectTableRowCountToBeBetween(min_value=1),
            *[E.ExpectColumnValuesToNotBeNull(column=c) for c in ("hospital_key", "file_sha256", "charge_kind")],
            E.ExpectColumnValuesToBeInSet(column="charge_kind", value_set=list(CHARGE_KINDS)),
            E.ExpectColumnValuesToBeInSet(column="setting", value_set=SETTINGS),
            E.ExpectColumnValuesToBeInSet(column="billing_class", value_set=BILLING_CLASSES),
            E.ExpectColumnValuesToBeInSet(column="drug_type_of_measurement", value_set=DRUG_TYPES),
            E.ExpectColumnValuesToNotBeNull(column="amount", row_condition=dollar_condition,
                                            condition_parser="pandas"),
            E.ExpectColumnValuesToNotBeNull(column="percentage", row_condition="charge_kind == 'negotiated_percentage'",
                                            condition_parser="pandas"),
            E.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=MAX_AMOUNT),
            E.ExpectColumnValuesToBeBetween(column="percentage", min_value=0, max_value=MAX_PERCENTAGE),
        ],
    )
    pair = {"ignore_row_if": "either_value_is_missing", "or_equal": True}
    wide = gx.ExpectationSuite(
        name="prices_wide",
        expectations=[
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="maximum", column_B="minimum", **pair),
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="median", column_B="percentile_10th", **pair),
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="percentile_90th", column_B="median", **pair),
        ],
    )
    return {"prices_long": long, "prices_wide": wide}


def _plain(value: Any) -> Any:
    """numpy scalars and tuples of them as plain Python values (for JSON metadata)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value  # NaN -> null


def _describe(result) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",) and v is not None}
    outcome = result.result or {}
    return {
        "expectation": config.type,
        "kwargs": kwargs,
        "success": bool(result.success),
        "unexpected_count": outcome.get("unexpected_count"),
        "unexpected_percent": outcome.get("unexpected_percent"),
        "examples": [_plain(v) for v in (outcome.get("partial_unexpected_list") or [])[:5]],
        **({"observed_value": outcome["observed_value"]} if "observed_value" in outcome else {}),
        **({"error": str(result.exception_info.get("exception_message"))}
           if getattr(result, "exception_info", None) and result.exception_info.get("raised_exception") else {}),
    }


def _import_great_expectations():
    """``import great_expectations``, safe where ``__main__`` has neither a spec nor a file
    (``python -c``, Dagster's run workers): Great Expectations imports ``pyspark.sql.connect``
    when pyspark is installed (the ``spark`` extra), and that import takes such a ``__main__`` for
    a doctest run and calls ``sys.exit(0)`` when Spark Connect's dependencies are missing, which
    ended the expectations step with SystemExit. ``__main__`` gets a file name for the import."""
    main = sys.modules.get("__main__")
    named = main is not None and getattr(main, "__spec__", None) is None and not hasattr(main, "__file__")
    if named:
        main.__file__ = "<price_pipeline>"
    try:
        import great_expectations
    finally:
        if named:
            del main.__file__
    return great_expectations


class _Validator:
    """One ephemeral GX context with the two suites and their dataframe batch definitions, made
    once per process: a batched run validates tens of hospitals, and building the context,
    datasource and suites anew for each cost ~30 % of a small hospital's validation."""

    def __init__(self, gx):
        context = gx.get_context(mode="ephemeral")
        with contextlib.suppress(Exception):  # cosmetic: progress bars only
            context.variables.progress_bars = {"globally": False}
        datasource = context.data_sources.add_pandas("prices")
        self.suites = {}
        for name, suite in build_suites(gx).items():
            definition = datasource.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
            self.suites[name] = (context.suites.add(suite), definition)

    def validate(self, name: str, frame) -> list[dict[str, Any]]:
        suite, definition = self.suites[name]
        validation = definition.get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="SUMMARY")
        return [{"suite": name, **_describe(r)} for r in validation.results]


_validator: _Validator | None = None


def _suite_validator() -> _Validator:
    """This process's :class:`_Validator`, made (and Great Expectations imported) on first use."""
    global _validator
    if _validator is None:
        _validator = _Validator(_import_great_expectations())
    return _validator


def run_price_expectations(path: str | os.PathLike | Path, *, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """Validate one prices Parquet file; returns ``{success, rows, sampled, results: [...]}``."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no telemetry calls from a pipeline
    validator = _suite_validator()
    long, wide, total, sampled = _load_frames(path, max_rows)
    results = validator.validate("prices_long", long) + validator.validate("prices_wide", wide)
    return {
        "success": all(r["success"] for r in results),
        "rows": total,
        "rows_validated": len(long),
        "sampled": sampled,
        "items_validated": len(wide),
        "results": results,
    }


# Hospitals whose frames are validated together are cut into chunks of at most this many long rows
# (a chunk's long and wide frames are in memory at once); a hospital has at most MAX_ROWS rows.
CHUNK_ROWS = MAX_ROWS
HOSPITAL_TAG = "_validated_hospital"  # the combined frames' tag column: no expectation reads it


class _NotDerivable(Exception):
    """A combined result from which per-hospital results cannot be derived exactly."""


def run_price_expectations_many(
    paths: Mapping[str, str | os.PathLike | Path], *, max_rows: int = MAX_ROWS, chunk_rows: int = CHUNK_ROWS
) -> dict[str, dict[str, Any]]:
    """:func:`run_price_expectations` for many hospitals (``{hospital: path}``) in a few GX
    validations; each hospital's result equals what :func:`run_price_expectations` returns for it.

    A GX validation costs ~0.5 s of GX's own machinery almost whatever the row count, so the
    hospitals' frames are loaded on one DuckDB connection, tagged with their hospital
    (``HOSPITAL_TAG``), concatenated into chunks of at most ``chunk_rows`` rows and validated once
    per chunk. Every expectation of the suites is row-wise (nulls, sets, ranges, column pairs) or
    the row count, so when every expectation holds on a chunk it holds on each hospital's rows, with
    no unexpected rows; the rest of a hospital's result is computed from its own rows the way GX
    does (:func:`_derive`). Validated alone, exactly as by :func:`run_price_expectations`: a
    hospital with no rows or above ``max_rows`` (sampled), one whose schema differs from the
    others', every hospital of a chunk in which any expectation failed or raised, and every
    hospital when loading or deriving fails.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    keys = list(paths)
    out: dict[str, dict[str, Any]] = {}
    alone: list[str] = []
    try:
        chunks, alone = _plan_chunks(paths, max_rows, chunk_rows)
        for chunk in chunks:
            derived = _validate_chunk(paths, chunk)
            if derived is None:
                alone.extend(k for k, _ in chunk)
            else:
                out.update(derived)
    except Exception:  # the exact per-hospital path below decides, and raises if it must
        out, alone = {}, keys
    for key in alone:
        out[key] = run_price_expectations(paths[key], max_rows=max_rows)
    return {key: out[key] for key in keys}


def _plan_chunks(paths, max_rows: int, chunk_rows: int):
    """([[(hospital, rows), ...], ...] chunks to validate together, [hospitals to validate alone])."""
    import duckdb

    con = duckdb.connect()
    groups: dict[tuple, list[tuple[str, int]]] = {}
    alone = []
    try:
        for key, path in paths.items():
            total = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()[0][0]
            if total == 0 or total > max_rows:
                alone.append(key)
                continue
            # Hospitals are combined only with hospitals of the same Parquet schema: a UNION of
            # different types would cast their values (and the frames' dtypes) unlike a lone load.
            schema = tuple(con.execute("SELECT name, type, converted_type, logical_type FROM parquet_schema(?)",
                                       [str(path)]).fetchall())
            groups.setdefault(schema, []).append((key, total))
    finally:
        con.close()
    chunks = []
    for members in groups.values():
        chunk, rows = [], 0
        for key, total in members:
            if chunk and rows + total > chunk_rows:
                chunks.append(chunk)
                chunk, rows = [], 0
            chunk.append((key, total))
            rows += total
        if chunk:
            chunks.append(chunk)
    return chunks, alone


def _load_chunk(paths, keys: list[str]):
    """The combined long and wide frames of ``keys``, each row tagged with its hospital: each
    hospital's rows are exactly those :func:`_load_frames` returns for it unsampled."""
    import duckdb

    long_sql = " UNION ALL ".join(
        f"SELECT ? AS {HOSPITAL_TAG}, * FROM ({_LONG_SQL.format(sample='')})" for _ in keys)  # noqa: S608
    wide_sql = " UNION ALL ".join(
        f"SELECT ? AS {HOSPITAL_TAG}, * FROM ({_WIDE_SQL})" for _ in keys)  # noqa: S608
    params = [v for key in keys for v in (key, str(paths[key]))]
    con = duckdb.connect()
    try:
        return con.execute(long_sql, params).fetchdf(), con.execute(wide_sql, params).fetchdf()
    finally:
        con.close()


def _validate_chunk(paths, chunk: list[tuple[str, int]]) -> dict[str, dict[str, Any]] | None:
    """Per-hospital results of one combined validation, or None when they cannot be derived."""
    validator = _suite_validator()
    keys = [key for key, _ in chunk]
    long, wide = _load_chunk(paths, keys)
    combined = {"prices_long": (long, validator.validate("prices_long", long)),
                "prices_wide": (wide, validator.validate("prices_wide", wide))}
    if not all(r["success"] and "error" not in r for _, results in combined.values() for r in results):
        return None
    per_hospital: dict[str, list] = {key: [] for key in keys}
    for frame, results in combined.values():
        for template in results:
            for key, result in _derive(template, frame, keys).items():
                per_hospital[key].append(result)
    long_rows = long.groupby(HOSPITAL_TAG).size()
    wide_rows = wide.groupby(HOSPITAL_TAG).size()
    out = {}
    for key, total in chunk:
        if int(long_rows.get(key, 0)) != total:  # the load disagrees with the count: not this path
            raise _NotDerivable(f"{key}: {int(long_rows.get(key, 0))} rows loaded, {total} counted")
        out[key] = {
            "success": True,
            "rows": total,
            "rows_validated": total,
            "sampled": False,
            "items_validated": int(wide_rows.get(key, 0)),
            "results": per_hospital[key],
        }
    return out


def _derive(template: dict[str, Any], frame, keys: list[str]) -> dict[str, dict[str, Any]]:
    """One hospital's result for an expectation that held on the combined ``frame`` (no
    unexpected rows at all, so none in any hospital's rows), as GX 1.x reports it for that
    hospital's rows alone (``_format_map_output``, result format SUMMARY): ``unexpected_count``
    0, no examples, and ``unexpected_percent`` 0.0 where GX's denominator is positive, else None.
    The denominator is the rows the expectation considers: for ``not_be_null`` the rows matching
    its row condition; for other column map expectations their non-null values; for a column
    pair with ``either_value_is_missing`` the rows where both are present. The row count's
    ``observed_value`` is the hospital's row count (every hospital of a chunk has rows). A
    hospital with no rows in ``frame`` (a wide frame without item-level kinds) has denominator 0,
    as GX's empty batch does. Anything else is not derived."""
    import pandas as pd

    kind, kwargs = template["expectation"], template["kwargs"]
    tags = frame[HOSPITAL_TAG]
    if kind == "expect_table_row_count_to_be_between":
        counts = tags.value_counts()
        if any(int(counts.get(key, 0)) == 0 for key in keys):
            raise _NotDerivable("a hospital without rows")
        return {key: {**template, "observed_value": int(counts[key])} for key in keys}
    rows = pd.Series(True, index=frame.index)
    condition = kwargs.get("row_condition")
    if condition is not None:
        # The rows GX's pandas engine keeps (PandasExecutionEngine._apply_row_condition_filter).
        if isinstance(condition, dict) and condition.get("type") == "pass_through":
            kept = frame.query(condition["pass_through_filter"])
        elif isinstance(condition, str) and kwargs.get("condition_parser") == "pandas":
            kept = frame.query(condition, parser="pandas")
        else:
            raise _NotDerivable(f"{kind}: row condition {condition!r}")
        rows = pd.Series(frame.index.isin(kept.index), index=frame.index)
    if kind == "expect_column_values_to_not_be_null":
        considered = rows
    elif kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_be_between"):
        considered = rows & frame[kwargs["column"]].notna()
    elif kind == "expect_column_pair_values_a_to_be_greater_than_b" and \
            kwargs.get("ignore_row_if") == "either_value_is_missing" and kwargs.get("row_condition") is None:
        considered = frame[kwargs["column_A"]].notna() & frame[kwargs["column_B"]].notna()
    else:
        raise _NotDerivable(kind)
    if template["unexpected_count"] != 0 or template["examples"] or "observed_value" in template:
        raise _NotDerivable(f"{kind}: {template}")
    denominators = considered.groupby(tags).sum()
    return {
        key: {**template, "unexpected_percent": 0.0 if int(denominators.get(key, 0)) > 0 else None}
        for key in keys
    }
