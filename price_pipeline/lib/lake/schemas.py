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

# What each column holds, for people browsing the tables (Dagster's column schema of mrf_parsed,
# prices and price_changes, declared on the asset and attached to each materialization). The one
# place these words live on the Python side; the dbt source ``lake.prices`` (models/sources.yml)
# documents the same file for dbt and is kept identical by a test.
_LINEAGE_DESCRIPTIONS = {
    "file_sha256": "SHA-256 of the raw machine-readable file the row was parsed from (identifies the file version).",
    "source_row": "1-based physical record number in the source CSV (header rows included); NULL for JSON files.",
    "source_path": "JSON path of the source object (e.g. standard_charge_information[3].standard_charges[0]); "
                   "NULL for CSV files.",
}
_ITEM_DESCRIPTIONS = {
    "description": "Item or service description as published.",
    "setting": "Care setting as published (inpatient, outpatient, both).",
    "billing_class": "Billing class as published (professional, facility, both).",
    "modifiers": "Billing modifiers attached to the item, as published.",
    "drug_unit_of_measurement": "Drug quantity the price applies to (drugs only).",
    "drug_type_of_measurement": "Unit of the drug quantity (GR, ME, ML, UN, F2, EA, GM; drugs only).",
    "primary_code": "The code chosen by the normaliser as the item's comparison code.",
    "primary_code_type": "Code system of primary_code (CPT, HCPCS, MS-DRG, APR-DRG, RC, NDC, ...).",
    "codes": "Every code published for the item, as a list of {code, type} structs.",
}
_PAYER_KIND_DESCRIPTIONS = {
    "payer_name": "Payer of a payer-level charge; NULL for item-level charge kinds.",
    "plan_name": "Plan of a payer-level charge; NULL for item-level charge kinds.",
    "charge_kind": "What the value is: " + ", ".join(CHARGE_KINDS) + ".",
}
_NOTES_DESCRIPTIONS = {
    "methodology": "Contracting methodology of a payer-level charge (case rate, fee schedule, percent of total "
                   "billed charges, ...).",
    "additional_payer_notes": "Free-text notes attached to the payer-specific charge.",
    "additional_generic_notes": "Free-text notes attached to the item.",
}

PRICES_DESCRIPTIONS = {
    "hospital_key": "Pipeline identifier of the hospital (the partition key).",
    **_LINEAGE_DESCRIPTIONS,
    "hospital_name": "Hospital name as written in the file header.",
    "last_updated_on": "File header's last_updated_on date (when the hospital last updated its prices).",
    "template_version": "CMS template version declared by the file (e.g. 2.2.0, 3.0.0).",
    **_ITEM_DESCRIPTIONS,
    **_PAYER_KIND_DESCRIPTIONS,
    "amount": "Dollar value, set for the dollar charge kinds.",
    "percentage": "Percentage value, set for negotiated_percentage.",
    "value_text": 'Text value, set for negotiated_algorithm and count (count may read "1 through 10").',
    **_NOTES_DESCRIPTIONS,
}

PARSED_DESCRIPTIONS = {
    **_LINEAGE_DESCRIPTIONS,
    **{k: v for k, v in _ITEM_DESCRIPTIONS.items() if not k.startswith("primary_code")},
    "gross_charge": "Gross charge of the item, as published (repeated on each payer row of the item).",
    "discounted_cash": "Discounted cash price of the item, as published.",
    "minimum": "De-identified minimum negotiated charge of the item, as published.",
    "maximum": "De-identified maximum negotiated charge of the item, as published.",
    "payer_name": "Payer of the payer-specific charges of this row; NULL when the row has none.",
    "plan_name": "Plan of the payer-specific charges of this row; NULL when the row has none.",
    "negotiated_dollar": "Payer-specific negotiated charge in dollars.",
    "negotiated_percentage": "Payer-specific negotiated charge as a percentage (of the gross charge, per the methodology).",
    "negotiated_algorithm": "Payer-specific negotiated charge as an algorithm (text).",
    "estimated_amount": "Estimated allowed amount for a percentage or algorithm charge (CMS v2.2+).",
    "median_amount": "Median allowed amount paid (CMS v3).",
    "percentile_10th": "10th percentile of the allowed amounts paid (CMS v3).",
    "percentile_90th": "90th percentile of the allowed amounts paid (CMS v3).",
    "count": 'Count of allowed amounts behind the median and percentiles, as text (CMS v3 allows "1 through 10").',
    **_NOTES_DESCRIPTIONS,
}

PRICE_CHANGES_DESCRIPTIONS = {
    "hospital_key": "Pipeline identifier of the hospital (the partition key).",
    "old_file_sha256": "The file version replaced (the hospital's previous version).",
    "new_file_sha256": "The hospital's newest file version.",
    "old_last_updated_on": "last_updated_on of the old version's file header.",
    "new_last_updated_on": "last_updated_on of the new version's file header.",
    "change_kind": "added (only in the new version), removed (only in the old one) or changed (value differs).",
    **{k: v for k, v in _ITEM_DESCRIPTIONS.items() if k != "codes"},
    **_PAYER_KIND_DESCRIPTIONS,
    "old_amount": "Dollar value in the old version (NULL when added or not a dollar kind).",
    "new_amount": "Dollar value in the new version (NULL when removed or not a dollar kind).",
    "amount_change": "new_amount - old_amount.",
    "amount_change_ratio": "(new_amount - old_amount) / old_amount (NULL when old_amount is 0 or NULL).",
    "old_percentage": "Percentage in the old version (negotiated_percentage).",
    "new_percentage": "Percentage in the new version (negotiated_percentage).",
    "old_value_text": "Text value in the old version (negotiated_algorithm, count).",
    "new_value_text": "Text value in the new version (negotiated_algorithm, count).",
    "old_source_row": "CSV record number of the row in the old file (NULL for JSON).",
    "new_source_row": "CSV record number of the row in the new file (NULL for JSON).",
    "old_source_path": "JSON path of the row in the old file (NULL for CSV).",
    "new_source_path": "JSON path of the row in the new file (NULL for CSV).",
}
