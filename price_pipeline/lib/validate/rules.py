"""Rule ids, severities, official-validator classes and the CMS value lists.

``RULES[rule] = (severity, official class or message family, short description)``; severity is
``"error"`` (makes the file non-conformant) or ``"alert"`` (reported, does not).
"""

from __future__ import annotations

import datetime as dt
import re

SUPPORTED_VERSIONS = ("2.0.0", "2.1.0", "2.2.0", "3.0.0")

RULES: dict[str, tuple[str, str, str]] = {
    # --- file level / reading
    "invalid_version": ("error", "InvalidVersionError", "requested rule set is not a supported version"),
    "unreadable_file": ("error", "(none: the official validator needs a plain CSV/JSON stream)",
                        "not CSV or JSON, empty, HTML, or a broken archive"),
    "invalid_json": ("error", "InvalidJsonError", "JSON syntax error; nothing after it is checked"),
    # damaged archives and reader limits (price_pipeline.lib.parse.mrf.sniff / .limits): the file is not read to its end
    "decompression_limit": ("error", "(none)", "zip/gzip payload over the byte or ratio cap"),
    "truncated_archive": ("error", "(none)", "the zip/gzip stream ends early (file cut off)"),
    "bad_crc": ("error", "(none)", "the archive's CRC-32 check failed"),
    "bad_archive": ("error", "(none)", "corrupt archive data or headers"),
    "encrypted_archive": ("error", "(none)", "encrypted zip member"),
    "unsupported_compression": ("error", "(none)", "zip compression method that cannot be read (deflate64, ...)"),
    "json_too_deep": ("error", "(none)", "JSON nested deeper than the limit"),
    "number_too_long": ("error", "(none)", "a JSON number with more digits than the limit"),
    "token_too_long": ("error", "(none)", "a JSON string longer than the limit"),
    "record_too_large": ("error", "(none)", "a CSV record longer than the limit"),
    "unterminated_field": ("error", "(none)", "the CSV ends inside a quoted field"),
    "min_rows": ("error", "MinRowsError", "CSV has no data row after the three header rows"),
    # --- CSV rows 1-3
    "header_blank_row": ("error", "HeaderBlankError", "row 1 or row 3 is blank"),
    "header_column_missing": ("error", "HeaderColumnMissingError", "required row-1 header missing"),
    "header_column_duplicate": ("error", "DuplicateHeaderColumnError", "row-1 header repeated"),
    "invalid_state_code": ("error", "InvalidStateCodeError", "license_number|[state] state not a valid code"),
    "header_value_required": ("error", "RequiredValueError (row 2)", "row-2 value of a required header is blank"),
    "invalid_date": ("error", "InvalidDateError", "last_updated_on not YYYY-MM-DD / M/D/YYYY"),
    "header_allowed_value": ("error", "AllowedValuesError (row 2)", "attestation/affirmation not true/false"),
    "column_missing": ("error", "ColumnMissingError", "required row-3 column missing"),
    "column_duplicate": ("error", "DuplicateColumnError", "row-3 column repeated"),
    "placeholder_in_header": ("error", "PlaceholderError", "[i] / [payer_name] / [plan_name] left in row 3"),
    "ambiguous_format": ("error", "AmbiguousFormatError", "neither clearly tall nor wide"),
    "rows_not_evaluated": ("error", "ProblemsInHeaderError", "rows 1-3 have errors, data rows not checked"),
    # --- CSV data rows: values
    "required_value": ("error", "RequiredValueError", "description / setting blank"),
    "allowed_value": ("error", "AllowedValuesError", "setting, code type, methodology, drug type not allowed"),
    "invalid_number": ("error", "InvalidPositiveNumberError", "numeric element not a positive number"),
    "invalid_count": ("error", "InvalidCountNumberError", "count not 0, '1 through 10' or an integer >= 11"),
    # --- CSV conditional requirements (data dictionary numbering)
    "cond_payer_plan_methodology": ("error", "RequiredValueError (payer-specific suffix)",
                                    "1: negotiated charge needs payer, plan, methodology"),
    "cond_charge_with_payer_plan": ("error", "ChargeWithPayerPlanError", "1 (converse): payer+plan need a charge"),
    "cond_code_pair_missing": ("error", "CodePairMissingError", "2: a charge needs a code and code type"),
    "cond_code_type_pair": ("error", "RequiredValueError (code/type)", "3: code and code type come in pairs"),
    "cond_other_methodology_notes": ("error", "OtherMethodologyNotesError", "4: methodology 'other' needs notes"),
    "cond_item_requires_charge": ("error", "ItemRequiresChargeError", "5: an item needs at least one charge"),
    "cond_dollar_needs_min_max": ("error", "DollarNeedsMinMaxError", "6: dollar charge needs min and max"),
    "cond_count_required": ("error", "PercentageAlgorithmCountError", "7: percentage/algorithm needs count"),
    "cond_allowed_amounts_required": ("error", "PercentageAlgorithm{Median,10th,90th}Error",
                                      "8: percentage/algorithm needs median, 10th, 90th (unless count 0)"),
    "cond_count_zero_notes": ("error", "AllowedCountZeroNotesError", "9: count 0 needs notes"),
    "cond_ndc_drug_info": ("error", "DrugInformationRequiredError", "10: NDC needs drug unit and type"),
    "cond_modifier_info": ("error", "ModifierMissingInfoError", "11: modifier row needs a charge or notes"),
    "cond_drug_unit_type_pair": ("error", "RequiredValueError (drug suffix)", "12: drug unit and type in pairs"),
    "cond_estimated_amount_required": ("error", "PercentageAlgorithmEstimateError",
                                       "v2.2: percentage/algorithm without dollar needs estimated_amount"),
    # --- JSON schema (per keyword, as ajv reports them)
    "json_required": ("error", "ajv required: must have required property", "JSON schema"),
    "json_type": ("error", "ajv type: must be <type>", "JSON schema"),
    "json_enum": ("error", "ajv enum: must be equal to one of the allowed values", "JSON schema"),
    "json_const": ("error", "ajv const: must be equal to constant", "JSON schema"),
    "json_min_length": ("error", "ajv minLength: must NOT have fewer than 1 characters", "JSON schema"),
    "json_min_items": ("error", "ajv minItems: must NOT have fewer than 1 items", "JSON schema"),
    "json_exclusive_minimum": ("error", "ajv exclusiveMinimum: must be > 0", "JSON schema"),
    "json_minimum": ("error", "ajv minimum: must be >= N", "JSON schema"),
    "json_pattern": ("error", "ajv pattern: must match pattern", "JSON schema"),
    "json_format": ("error", "ajv format: must match format \"date\"", "JSON schema"),
    "json_any_of": ("error", "ajv anyOf: must match a schema in anyOf", "JSON schema"),
    "json_if_then": ("error", "ajv if: must match \"then\" schema", "JSON schema"),
    "json_schema_other": ("error", "other ajv keyword", "JSON schema"),
    # --- alerts (never make a file non-conformant)
    "nine_nines": ("alert", "CsvNineNinesAlert / 'Nine 9s used for ...'", "999999999 placeholder amount"),
    "estimated_amount_v3": ("alert", "EstimatedAmountAlert / JSON $message",
                            "estimated_amount is no longer a data element in v3"),
    "false_attestation": ("alert", "Csv/JsonFalseAttestationAlert, Csv/JsonFalseAffirmationAlert",
                          "attestation (v3) / affirmation (v2) is false"),
    "version_mismatch": ("alert", "Csv/JsonVersionMismatchAlert", "declared version differs from the rule set's"),
    # --- alerts of ours: the official verdict stands, the alert says what it did not see
    "trailing_data": ("alert", "(none: the official validator stops at the end of the JSON document)",
                      "bytes after the end of the top-level JSON document (named in the message)"),
    "cr_line_endings": ("alert", "(none: the official validator splits CSV records on LF only)",
                        "records end with a lone CR; checked as the official validator reads them"),
    "no_data_rows": ("alert", "(none: the official validator counts blank lines as rows)",
                     "rows 1-3 present but every data row is blank"),
}

STATE_CODES = frozenset(
    ["AL", "AK", "AS", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "GU", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "MP", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VI", "VA", "WA", "WV", "WI", "WY"]
)
BILLING_CODE_TYPES_V2 = (
    "CPT", "HCPCS", "ICD", "DRG", "MS-DRG", "R-DRG", "S-DRG", "APS-DRG", "AP-DRG", "APR-DRG", "APC", "NDC",
    "HIPPS", "LOCAL", "EAPG", "CDT", "RC", "CDM", "TRIS-DRG",
)
BILLING_CODE_TYPES_V3 = BILLING_CODE_TYPES_V2 + ("CMG", "MS-LTC-DRG")
DRUG_UNITS = ("GR", "ME", "ML", "UN", "F2", "EA", "GM")
METHODOLOGIES = ("case rate", "fee schedule", "percent of total billed charges", "per diem", "other")
SETTINGS = ("inpatient", "outpatient", "both")

AFFIRMATION = (
    "To the best of its knowledge and belief, the hospital has included all applicable standard charge "
    "information in accordance with the requirements of 45 CFR 180.50, and the information encoded is true, "
    "accurate, and complete as of the date indicated."
)
ATTESTATION = (
    "To the best of its knowledge and belief, this hospital has included all applicable standard charge "
    "information in accordance with the requirements of 45 CFR 180.50, and the information encoded is true, "
    "accurate, and complete as of the date in the file. This hospital has included all payer-specific "
    "negotiated charges in dollars that can be expressed as a dollar amount. For payer-specific negotiated "
    "charges that cannot be expressed as a dollar amount in the machine-readable file or not knowable in "
    "advance, the hospital attests that the payer-specific negotiated charge is based on a contractual "
    "algorithm, percentage or formula that precludes the provision of a dollar amount and has provided all "
    "necessary information available to the hospital for the public to be able to derive the dollar amount, "
    "including, but not limited to, the specific fee schedule or components referenced in such percentage, "
    "algorithm or formula."
)


def vkey(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a supported version string."""
    a, b, c = version.split(".")
    return int(a), int(b), int(c)


def resolve_version(declared: str | None) -> str:
    """Rule set for a declared version: same major.minor (2.2.1 -> 2.2.0), else 3.0.0 (current rules).

    This is the ``declared`` selection; the default is :func:`major_rules`."""
    m = _VERSION_RE.search(declared or "")
    if m:
        cand = f"{int(m.group(1))}.{int(m.group(2) or 0)}.0"
        if cand in SUPPORTED_VERSIONS:
            return cand
    return "3.0.0"


# --- which rule set a file is checked against (docs/quality.md "Which rules are applied") -------
_VERSION_RE = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")
# ``major`` (default): the official command line's choice for a bare major version; ``declared``:
# the declared major.minor; ``in-force``: what CMS enforces on a date, whatever the file declares.
RULE_SELECTIONS = ("major", "declared", "in-force")
DEFAULT_RULE_SELECTION = "major"
# The rule set CMS enforces from each date (newest first). The official command line states
# v2.1 "effective July 1, 2024", v2.2 "effective January 1, 2025", v3.0 "effective January 1,
# 2026 and enforced April 1, 2026". Before July 2024 the 2.0.0 rules are used.
IN_FORCE_FROM = (
    (dt.date(2026, 4, 1), "3.0.0"),
    (dt.date(2025, 1, 1), "2.2.0"),
    (dt.date(2024, 7, 1), "2.1.0"),
)


def cli_version_choice(value: str) -> str | None:
    """The rule set the official command line (``@cmsgov/hpt-validator-cli``) uses for a version
    argument: with a dot, that minor version (3.0.x, 2.2.x, 2.1.x; we also keep 2.0.x, which the
    CLI no longer offers); without one, the latest minor of the major (``2`` -> 2.2.0, ``3`` ->
    3.0.0). None when it names no rule set."""
    m = _VERSION_RE.search(value or "")
    if not m:
        return None
    major = int(m.group(1))
    if "." in value:
        cand = f"{major}.{int(m.group(2) or 0)}.0"
        return cand if cand in SUPPORTED_VERSIONS else None
    return {2: "2.2.0", 3: "3.0.0"}.get(major)


def major_rules(declared: str | None) -> str:
    """Default selection: the latest rules of the declared major version, as the official command
    line picks them for a bare major (2.x -> 2.2.0, 3.x -> 3.0.0); missing or unknown -> 3.0.0."""
    m = _VERSION_RE.search(declared or "")
    return (cli_version_choice(str(int(m.group(1)))) if m else None) or "3.0.0"


def in_force_rules(as_of: dt.date | None = None) -> str:
    """The rule set CMS enforces on ``as_of`` (default: today, UTC)."""
    day = as_of or dt.datetime.now(dt.UTC).date()
    return next((v for start, v in IN_FORCE_FROM if day >= start), "2.0.0")


def as_chooser(version=None):
    """``declared version -> rule set`` function from what the checkers are given: a rule set
    (forced), a function (returned as is) or None (the default selection, :func:`major_rules`)."""
    if version is None:
        return major_rules
    if callable(version):
        return version
    return lambda _declared: version


def select_rules(declared: str | None, selection: str = DEFAULT_RULE_SELECTION, as_of: dt.date | None = None) -> str:
    """Rule set for a file declaring ``declared`` under ``selection`` (see :data:`RULE_SELECTIONS`)."""
    if selection == "major":
        return major_rules(declared)
    if selection == "declared":
        return resolve_version(declared)
    if selection == "in-force":
        return in_force_rules(as_of)
    raise ValueError(f"unknown rule selection {selection!r}; one of {', '.join(RULE_SELECTIONS)}")


def header_columns(version: str) -> list[str]:
    """Required row-1 headers for ``version`` (official order)."""
    cols = ["hospital_name", "last_updated_on", "version", "hospital_address", "license_number | [state]"]
    if vkey(version) >= (3, 0, 0):
        cols += ["location_name", "type_2_npi", ATTESTATION, "attester_name"]
    else:
        cols += ["hospital_location", AFFIRMATION]
    return cols


def csv_cell(row0: int, col: int) -> str:
    """Official cell name: 0-based record index and column index (-1: whole row)."""
    if col is None or col < 0:
        return f"row {row0 + 1}"
    name = ""
    while col >= 0:
        name = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[col % 26] + name
        col = col // 26 - 1
    return f"{name}{row0 + 1}"
