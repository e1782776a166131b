"""Arrow schemas shared by the parser, the normaliser, the lake and the dbt sources.

Two tables matter:

* ``PARSED_SCHEMA``: source-faithful rows, one per item x charge record (one per payer/plan
  where the file has payer-specific charges), exactly as the hospital published them, with
  the source row number (CSV) or JSON path (JSON) for lineage.
* ``PRICES_SCHEMA``: the canonical long table, one row per charge kind and amount, which every
  analytic reads. Item-level charges (gross, discounted cash, min, max) appear once per item,
  not once per payer row, so tall, wide and JSON encodings of the same data give the same rows.
"""

from __future__ import annotations

import pyarrow as pa

CODE_STRUCT = pa.struct([("code", pa.string()), ("type", pa.string())])
CODES_TYPE = pa.list_(CODE_STRUCT)

PARSED_SCHEMA = pa.schema(
    [
        ("file_sha256", pa.string()),
        # 1-based physical record number in the CSV, header rows included (first data row = 4).
        ("source_row", pa.int64()),
        # JSON path of the payer (or charge) object, e.g. standard_charge_information[3].standard_charges[0]
        ("source_path", pa.string()),
        ("description", pa.string()),
        ("codes", CODES_TYPE),
        ("modifiers", pa.string()),
        ("setting", pa.string()),
        ("billing_class", pa.string()),
        ("drug_unit_of_measurement", pa.float64()),
        ("drug_type_of_measurement", pa.string()),
        ("gross_charge", pa.float64()),
        ("discounted_cash", pa.float64()),
        ("minimum", pa.float64()),
        ("maximum", pa.float64()),
        ("payer_name", pa.string()),
        ("plan_name", pa.string()),
        ("negotiated_dollar", pa.float64()),
        ("negotiated_percentage", pa.float64()),
        ("negotiated_algorithm", pa.string()),
        ("estimated_amount", pa.float64()),
        ("median_amount", pa.float64()),
        ("percentile_10th", pa.float64()),
        ("percentile_90th", pa.float64()),
        # Text on purpose: v3 allows the literal "1 through 10".
        ("count", pa.string()),
        ("methodology", pa.string()),
        ("additional_payer_notes", pa.string()),
        ("additional_generic_notes", pa.string()),
    ]
)

# Charge kinds of the canonical table, in the order they are documented in the README.
ITEM_LEVEL_CHARGE_KINDS = ("gross", "discounted_cash", "minimum", "maximum")
PAYER_LEVEL_CHARGE_KINDS = (
    "negotiated_dollar",
    "negotiated_percentage",
    "negotiated_algorithm",
    "estimated_amount",
    "median",
    "percentile_10th",
    "percentile_90th",
    "count",
)
CHARGE_KINDS = ITEM_LEVEL_CHARGE_KINDS + PAYER_LEVEL_CHARGE_KINDS

# The item and the payer/plan/kind of one price fact: the prices and the changes tables share them
# (prices.history.NATURAL_KEY compares versions on them).
_ITEM_FIELDS = [
    ("description", pa.string()),
    ("setting", pa.string()),
    ("billing_class", pa.string()),
    ("modifiers", pa.string()),
    ("drug_unit_of_measurement", pa.float64()),
    ("drug_type_of_measurement", pa.string()),
    ("primary_code", pa.string()),
    ("primary_code_type", pa.string()),
]
_PAYER_KIND_FIELDS = [
    ("payer_name", pa.string()),
    ("plan_name", pa.string()),
    ("charge_kind", pa.string()),
]

PRICES_SCHEMA = pa.schema(
    [
        ("hospital_key", pa.string()),
        ("file_sha256", pa.string()),
        ("source_row", pa.int64()),
        ("source_path", pa.string()),
        ("hospital_name", pa.string()),
        ("last_updated_on", pa.date32()),
        ("template_version", pa.string()),
        *_ITEM_FIELDS,
        ("codes", CODES_TYPE),
        *_PAYER_KIND_FIELDS,
        # Exactly one of amount / percentage / value_text is set, by charge_kind:
        # dollars -> amount; negotiated_percentage -> percentage; negotiated_algorithm and
        # count -> value_text.
        ("amount", pa.float64()),
        ("percentage", pa.float64()),
        ("value_text", pa.string()),
        ("methodology", pa.string()),
        ("additional_payer_notes", pa.string()),
        ("additional_generic_notes", pa.string()),
    ]
)

# One row per file version of a hospital ever normalised (prices_history/hospital_key=<k>/versions.parquet).
PRICE_VERSIONS_SCHEMA = pa.schema(
    [
        ("hospital_key", pa.string()),
        ("file_sha256", pa.string()),
        # 1, 2, 3 ... in the order the pipeline first saw the versions of the hospital.
        ("version_seq", pa.int64()),
        ("url", pa.string()),
        ("last_updated_on", pa.date32()),
        ("template_version", pa.string()),
        ("rows", pa.int64()),
        ("is_current", pa.bool_()),
        ("first_seen_at", pa.timestamp("s", tz="UTC")),
        ("last_seen_at", pa.timestamp("s", tz="UTC")),
        ("superseded_at", pa.timestamp("s", tz="UTC")),
    ]
)

# Newest version of a hospital vs the version it replaced (price_changes/hospital_key=<k>/changes.parquet).
PRICE_CHANGES_SCHEMA = pa.schema(
    [
        ("hospital_key", pa.string()),
        ("old_file_sha256", pa.string()),
        ("new_file_sha256", pa.string()),
        ("old_last_updated_on", pa.date32()),
        ("new_last_updated_on", pa.date32()),
        # added (only in the new version), removed (only in the old one), changed (value differs)
        ("change_kind", pa.string()),
        *_ITEM_FIELDS,
        *_PAYER_KIND_FIELDS,
        ("old_amount", pa.float64()),
        ("new_amount", pa.float64()),
        ("amount_change", pa.float64()),
        ("amount_change_ratio", pa.float64()),
        ("old_percentage", pa.float64()),
        ("new_percentage", pa.float64()),
        ("old_value_text", pa.string()),
        ("new_value_text", pa.string()),
        ("old_source_row", pa.int64()),
        ("new_source_row", pa.int64()),
        ("old_source_path", pa.string()),
        ("new_source_path", pa.string()),
    ]
)
