"""The lake: where every dataset lives and how it is written (no Dagster imports).

* :mod:`.storage` — the small :class:`Lake` protocol over a local folder or S3/MinIO; every
  write is atomic (temp file + rename, or one PUT).
* :mod:`.layout` — every key of the lake, one function or constant per key.
* :mod:`.schemas` — the Arrow schemas of the parsed rows, prices, history and changes.
* :mod:`.text` — text every store accepts (no NULs, no lone surrogates).
* :mod:`.preview` — a table's columns and first rows, for asset metadata.
"""

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.preview import Column, describe, describe_arrow, preview_markdown
from price_pipeline.lib.lake.schemas import (
    CHARGE_KINDS,
    PARSED_DESCRIPTIONS,
    PARSED_SCHEMA,
    PRICE_CHANGES_DESCRIPTIONS,
    PRICE_CHANGES_SCHEMA,
    PRICE_VERSIONS_SCHEMA,
    PRICES_DESCRIPTIONS,
    PRICES_SCHEMA,
)
from price_pipeline.lib.lake.storage import Lake, LocalLake, S3Lake, connect_duckdb, open_lake
from price_pipeline.lib.lake.text import TextFix, clean_json, clean_text

__all__ = [
    "Column",
    "CHARGE_KINDS",
    "PARSED_DESCRIPTIONS",
    "PARSED_SCHEMA",
    "PRICES_DESCRIPTIONS",
    "PRICES_SCHEMA",
    "PRICE_CHANGES_DESCRIPTIONS",
    "PRICE_CHANGES_SCHEMA",
    "PRICE_VERSIONS_SCHEMA",
    "Lake",
    "LocalLake",
    "S3Lake",
    "TextFix",
    "clean_json",
    "clean_text",
    "connect_duckdb",
    "describe",
    "describe_arrow",
    "layout",
    "open_lake",
    "preview_markdown",
]
