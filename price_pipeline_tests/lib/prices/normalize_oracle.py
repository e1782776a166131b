"""Test oracle: the SQL normaliser that price_pipeline.lib.prices.normalize replaced (issue 12), verbatim.

Kept only so the equality tests can prove the streaming normaliser writes the same rows; nothing
in the package imports it. The original module docstring follows.

Parsed rows (PARSED_SCHEMA) -> canonical prices (PRICES_SCHEMA), with DuckDB SQL.

One output row per charge kind and amount:

* payer-level kinds, one row per parsed row where the value is present, with payer/plan:
  ``negotiated_dollar`` (amount), ``negotiated_percentage`` (percentage),
  ``negotiated_algorithm`` (value_text), ``estimated_amount`` (amount), ``median`` (amount,
  from median_amount), ``percentile_10th`` / ``percentile_90th`` (amount), ``count`` (value_text);
* item-level kinds ``gross``, ``discounted_cash``, ``minimum``, ``maximum``: ONCE per distinct
  item of a file — identity = file, description, codes, setting, billing_class, modifiers,
  drug unit/type and the value — with payer/plan NULL, taking the smallest source_row /
  source_path of the duplicates (tall files repeat them on every payer row; wide and JSON
  don't, so this is what makes the three encodings give the same rows).

``primary_code`` / ``primary_code_type``: the first code by type priority
CPT > HCPCS > MS-DRG > APR-DRG > other DRGs (any type containing "DRG") > NDC > CDT > RC >
any other type > LOCAL; ties keep the file's code order, over the cleaned codes.

Codes are cleaned by code type before anything else (:mod:`price_pipeline.lib.prices.codes`: CPT /
HCPCS five upper-case characters, MS-DRG three digits, revenue codes four digits, NDC 11
digits, LOCAL as published, code types upper-cased with common misspellings mapped), so
``codes``, ``primary_code`` and the item identity use cleaned codes; ``mrf_parsed`` keeps
them as published.

``last_updated_on`` is parsed to a date (YYYY-MM-DD or M/D/YYYY); ``hospital_name`` and
``template_version`` come from the file header. DuckDB runs with a memory limit, no insertion
order and a temp directory, and results are streamed to Parquet batch by batch.
"""

from __future__ import annotations

import os
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.lake.schemas import PRICES_SCHEMA
from price_pipeline.lib.parse.mrf.values import parse_date
from price_pipeline.lib.prices import codes as code_cleaning

ParsedInput = tuple[str, dict, str | None]  # (parsed_parquet_path, header_dict, file_sha256)

CODE_PRIORITY = ["CPT", "HCPCS", "MS-DRG", "APR-DRG", "*DRG", "NDC", "CDT", "RC", "*", "LOCAL"]

# Well-formed codes first, then type priority (price_pipeline.lib.prices.codes, pp_code_rank), as main.
_PRIO_SQL = "pp_code_rank(c.code, c.type)"

# Constant SQL (the priority CASE is a module constant); file paths are bound parameters.
_QUERY = """
WITH src AS (
  SELECT p.* REPLACE (
           list_transform(p.codes, lambda c: {'code': pp_clean_code(c.code, c.type),
                                              'type': pp_clean_code_type(c.type)}) AS codes),
         h.hospital_key, h.hospital_name, h.last_updated_on, h.template_version,
         coalesce(p.file_sha256, h.sha) AS sha
  FROM read_parquet($files, filename = true) p JOIN hdr h ON h.filename = p.filename
),
base AS (
  SELECT *,
    list_sort(list_transform(list_filter(coalesce(codes, []), lambda c: c.code IS NOT NULL),
                             lambda c, i: {'p': __PRIO__, 'i': i, 'code': c.code, 'type': c.type}))[1] AS pc
  FROM src
),
item_long AS (
  SELECT b.*, k.kind, k.val FROM base b,
    LATERAL (VALUES ('gross', b.gross_charge), ('discounted_cash', b.discounted_cash),
                    ('minimum', b.minimum), ('maximum', b.maximum)) k(kind, val)
  WHERE k.val IS NOT NULL
),
items AS (
  SELECT any_value(hospital_key) AS hospital_key, sha AS file_sha256,
         min(source_row) AS source_row, min(source_path) AS source_path,
         any_value(hospital_name) AS hospital_name, any_value(last_updated_on) AS last_updated_on,
         any_value(template_version) AS template_version,
         description, setting, billing_class, modifiers, drug_unit_of_measurement, drug_type_of_measurement,
         any_value(pc.code) AS primary_code, any_value(pc.type) AS primary_code_type, codes,
         NULL::VARCHAR AS payer_name, NULL::VARCHAR AS plan_name, kind AS charge_kind,
         val AS amount, NULL::DOUBLE AS percentage, NULL::VARCHAR AS value_text,
         NULL::VARCHAR AS methodology, NULL::VARCHAR AS additional_payer_notes,
         arg_min(additional_generic_notes, coalesce(source_row::VARCHAR, source_path)) AS additional_generic_notes
  FROM item_long
  GROUP BY sha, description, codes, setting, billing_class, modifiers, drug_unit_of_measurement,
           drug_type_of_measurement, kind, val
),
payer_long AS (
  SELECT b.hospital_key, b.sha AS file_sha256, b.source_row, b.source_path, b.hospital_name,
         b.last_updated_on, b.template_version, b.description, b.setting, b.billing_class, b.modifiers,
         b.drug_unit_of_measurement, b.drug_type_of_measurement, b.pc.code AS primary_code,
         b.pc.type AS primary_code_type, b.codes, b.payer_name, b.plan_name, k.kind AS charge_kind,
         k.amount, k.percentage, k.value_text, b.methodology, b.additional_payer_notes,
         b.additional_generic_notes
  FROM base b,
    LATERAL (VALUES
      ('negotiated_dollar', b.negotiated_dollar, NULL::DOUBLE, NULL::VARCHAR),
      ('negotiated_percentage', NULL, b.negotiated_percentage, NULL),
      ('negotiated_algorithm', NULL, NULL, b.negotiated_algorithm),
      ('estimated_amount', b.estimated_amount, NULL, NULL),
      ('median', b.median_amount, NULL, NULL),
      ('percentile_10th', b.percentile_10th, NULL, NULL),
      ('percentile_90th', b.percentile_90th, NULL, NULL),
      ('count', NULL, NULL, b."count")) k(kind, amount, percentage, value_text)
  WHERE coalesce(k.amount::VARCHAR, k.percentage::VARCHAR, k.value_text) IS NOT NULL
)
SELECT * FROM items
UNION ALL
SELECT * FROM payer_long
""".replace("__PRIO__", _PRIO_SQL)


def normalize_to_prices(parsed: list[ParsedInput], out_path: str | os.PathLike, *, hospital_key: str,
                        memory_limit: str = "1GB") -> int:
    """Write PRICES_SCHEMA Parquet at ``out_path`` for all given parsed files of one hospital.

    ``parsed`` holds ``(parsed_parquet_path, header_dict, file_sha256)`` tuples. Returns the
    number of rows written (the file is always written, empty when there is nothing).
    """
    out_path = os.fspath(out_path)
    writer = pq.ParquetWriter(out_path, PRICES_SCHEMA, compression="zstd")
    total = 0
    try:
        if not parsed:
            return 0
        files = [os.path.abspath(os.fspath(p)) for p, _, _ in parsed]
        hdr = pa.table({
            "filename": files,
            "hospital_key": [hospital_key] * len(files),
            "hospital_name": [(h or {}).get("hospital_name") for _, h, _ in parsed],
            "last_updated_on": pa.array([parse_date((h or {}).get("last_updated_on")) for _, h, _ in parsed],
                                        pa.date32()),
            "template_version": [(h or {}).get("version") for _, h, _ in parsed],
            "sha": [s for _, _, s in parsed],
        })
        with tempfile.TemporaryDirectory(prefix="duckdb-normalize-") as tmp:
            con = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False,
                                         "temp_directory": tmp, "threads": max(1, min(4, os.cpu_count() or 1))})
            try:
                code_cleaning.register(con)
                con.register("hdr", hdr)
                reader = con.sql(_QUERY, params={"files": files}).to_arrow_reader(64 * 1024)
                for batch in reader:
                    t = pa.Table.from_batches([batch]).select(PRICES_SCHEMA.names).cast(PRICES_SCHEMA)
                    writer.write_table(t)
                    total += t.num_rows
            finally:
                con.close()
    finally:
        writer.close()
    return total
