"""Per-rule tests of the CMS conformance validator on small fixture files.

Fixtures (price_pipeline_tests/fixtures/validate) are the official v3.0 examples, gen_mrf
samples and mutations of the v3.0 tall example / JSON example (one rule each), the same
mutations as benchmarks/validator_parity.py, where the official validator agrees with us.
"""

from __future__ import annotations

import os

import pytest

from price_pipeline.lib.validate import RULES, validate_file
from price_pipeline.lib.validate.rules import STATE_CODES, resolve_version

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "validate")


def fx(name: str) -> str:
    return os.path.join(FIX, name)


@pytest.mark.parametrize("name", [
    "V3.0.0_Tall_CSV_Format_Example.csv", "V3.0.0_Wide_CSV_Format_Example.csv", "V3.0.0_JSON_Format_Example.json",
    "V2.0.0_JSON_Format_Example.json", "gen_tall_crlf_bom.csv", "gen_wide.csv", "gen_json.json",
    "csv_short_rows.csv", "csv_blank_data_row.csv", "csv_us_date_ok.csv",
])
def test_valid_files(name):
    r = validate_file(fx(name))
    assert r.valid, r.findings[:5]
    assert r.errors == 0 and r.rows_checked > 0


# (file, rule, row, column, path or cell) -- None means "not checked"
CSV_CASES = [
    ("csv_missing_header.csv", "header_column_missing", 1, "hospital_name", None),
    ("csv_duplicate_header.csv", "header_column_duplicate", 1, "version", "J1"),
    ("csv_bad_state.csv", "invalid_state_code", 1, "license_number|XX", "F1"),
    ("csv_state_placeholder.csv", "invalid_state_code", 1, "license_number|[state]", "F1"),
    ("csv_bad_date.csv", "invalid_date", 2, "last_updated_on", "B2"),
    ("csv_blank_hospital_name.csv", "header_value_required", 2, "hospital_name", "A2"),
    ("csv_attestation_maybe.csv", "header_allowed_value", 2, None, "H2"),
    ("csv_missing_column.csv", "column_missing", 3, "setting", None),
    ("csv_duplicate_column.csv", "column_duplicate", 3, "description", None),
    ("csv_code_placeholder.csv", "placeholder_in_header", 3, "code | [i]", "B3"),
    ("csv_blank_row3.csv", "header_blank_row", 3, None, None),
    ("csv_blank_row1.csv", "header_blank_row", 1, None, None),
    ("csv_header_only.csv", "min_rows", None, None, None),
    ("csv_negative_amount.csv", "invalid_number", 4, "standard_charge | gross", "I4"),
    ("csv_dollar_sign.csv", "invalid_number", 5, "standard_charge | negotiated_dollar", "N5"),
    ("csv_zero_amount.csv", "invalid_number", 6, "standard_charge | min", "U6"),
    ("csv_bad_setting.csv", "allowed_value", 4, "setting", "F4"),
    ("csv_bad_code_type.csv", "allowed_value", 4, "code | 1 | type", "C4"),
    ("csv_bad_methodology.csv", "allowed_value", 4, "standard_charge | methodology", "W4"),
    ("csv_bad_count.csv", "invalid_count", 4, "count", "T4"),
    ("csv_missing_description.csv", "required_value", 4, "description", "A4"),
    ("csv_missing_payer.csv", "cond_payer_plan_methodology", 4, "payer_name", "K4"),
    ("csv_payer_without_charge.csv", "cond_charge_with_payer_plan", 4, "payer_name", "K4"),
    ("csv_no_code.csv", "cond_code_pair_missing", 4, None, "row 4"),
    ("csv_code_without_type.csv", "cond_code_type_pair", 4, "code | 1 | type", "C4"),
    ("csv_other_no_notes.csv", "cond_other_methodology_notes", 4, "additional_generic_notes", "X4"),
    ("csv_no_charge.csv", "cond_item_requires_charge", 4, "standard_charge | gross", "I4"),
    ("csv_dollar_without_min.csv", "cond_dollar_needs_min_max", 4, "standard_charge | min", "U4"),
    ("csv_pct_without_count.csv", "cond_count_required", 4, "count", "T4"),
    ("csv_pct_without_count.csv", "cond_allowed_amounts_required", 4, "median_amount", "Q4"),
    ("csv_count_zero_no_notes.csv", "cond_count_zero_notes", 4, "additional_generic_notes", "X4"),
    ("csv_ndc_no_drug.csv", "cond_ndc_drug_info", 4, "drug_unit_of_measurement", "G4"),
    ("csv_drug_unit_only.csv", "cond_drug_unit_type_pair", 4, "drug_type_of_measurement", "H4"),
    ("csv_wide_negative.csv", "invalid_number", 4, "standard_charge | gross", None),
]


@pytest.mark.parametrize("name,rule,row,column,cell", CSV_CASES)
def test_csv_rule_fires(name, rule, row, column, cell):
    r = validate_file(fx(name))
    assert not r.valid
    assert r.errors_by_rule.get(rule, 0) >= 1, r.errors_by_rule
    f = next(f for f in r.findings if f["rule"] == rule)
    assert f["severity"] == "error"
    if row is not None:
        assert f["row"] == row
    if column is not None:
        assert (f["column"] or "").replace(" ", "") == column.replace(" ", "")
    if cell is not None:
        assert f["cell"] == cell


def test_header_errors_stop_row_checks():
    r = validate_file(fx("csv_bad_state.csv"))
    assert r.errors_by_rule["rows_not_evaluated"] == 1
    assert r.errors_by_rule["header_column_missing"] == 1  # license_number | [state] is then missing
    assert r.rows_checked == 0


@pytest.mark.parametrize("name,rule", [
    ("csv_false_attestation.csv", "false_attestation"),
    ("csv_version_mismatch.csv", "version_mismatch"),
    ("csv_nine_nines.csv", "nine_nines"),
    ("csv_estimated_amount_v3.csv", "estimated_amount_v3"),
    ("json_false_attestation.json", "false_attestation"),
    ("json_version_mismatch.json", "version_mismatch"),
    ("json_nine_nines.json", "nine_nines"),
    ("json_estimated_amount_v3.json", "estimated_amount_v3"),
])
def test_alerts_do_not_invalidate(name, rule):
    r = validate_file(fx(name))
    assert r.valid and r.errors == 0
    assert r.alerts_by_rule.get(rule) == 1
    f = next(f for f in r.findings if f["rule"] == rule)
    assert f["severity"] == "alert"
    assert f["row"] is not None or f["path"]


JSON_CASES = [
    ("json_missing_hospital_name.json", "json_required", ""),
    ("json_bad_state.json", "json_enum", "/license_information/state"),
    ("json_bad_date.json", "json_format", "/last_updated_on"),
    ("json_us_date.json", "json_format", "/last_updated_on"),
    ("json_negative_dollar.json", "json_exclusive_minimum",
     "/standard_charge_information/0/standard_charges/0/payers_information/0/standard_charge_dollar"),
    ("json_string_dollar.json", "json_type",
     "/standard_charge_information/0/standard_charges/0/payers_information/0/standard_charge_dollar"),
    ("json_missing_methodology.json", "json_required",
     "/standard_charge_information/0/standard_charges/0/payers_information/0"),
    ("json_bad_setting.json", "json_enum", "/standard_charge_information/0/standard_charges/0/setting"),
    ("json_bad_count.json", "json_pattern",
     "/standard_charge_information/0/standard_charges/0/payers_information/0/count"),
    ("json_pct_without_count.json", "json_if_then",
     "/standard_charge_information/0/standard_charges/0/payers_information/0"),
    ("json_ndc_no_drug.json", "json_required", "/standard_charge_information/0"),
    ("json_no_min_max.json", "json_required", "/standard_charge_information/0/standard_charges/0"),
    ("json_empty_items.json", "json_required", ""),
    ("json_null_notes.json", "json_type",
     "/standard_charge_information/0/standard_charges/0/payers_information/0/additional_payer_notes"),
    ("json_bad_code_type.json", "json_enum", "/standard_charge_information/0/code_information/0/type"),
    ("json_truncated.json", "invalid_json", ""),
]


@pytest.mark.parametrize("name,rule,path", JSON_CASES)
def test_json_rule_fires(name, rule, path):
    r = validate_file(fx(name))
    assert not r.valid
    assert r.errors_by_rule.get(rule, 0) >= 1, r.errors_by_rule
    assert any(f["rule"] == rule and f["path"] == path for f in r.findings), r.findings


def test_findings_are_capped_but_counts_complete():
    r = validate_file(fx("csv_pct_without_count.csv"), max_findings=1)
    assert len(r.findings) == 1 and r.findings_truncated
    assert r.errors == 4 and sum(r.errors_by_rule.values()) == 4


def test_every_rule_documented_and_state_codes():
    import price_pipeline.lib.validate as v

    for rule in RULES:
        assert rule in v.__doc__
    with open(os.path.join(FIX, "..", "..", "..", "price_pipeline", "lib", "validate", "README.md")) as f:
        assert "Deliberate differences" in f.read()
    assert len(STATE_CODES) == 56 and "PR" in STATE_CODES and "FM" not in STATE_CODES


@pytest.mark.parametrize("declared,expected", [
    ("3.0.0", "3.0.0"), ("2.2.1", "2.2.0"), ("2.1.0", "2.1.0"), ("2.0.0", "2.0.0"), ("v3.0", "3.0.0"),
    (None, "3.0.0"), ("9.9", "3.0.0"),
])
def test_version_dispatch(declared, expected):
    assert resolve_version(declared) == expected


def test_v2_rules_differ():
    # the v2 example has modifier-only rows: allowed from 2.2.0, not in 2.0.0 (no code pair)
    r20 = validate_file(fx("V2.0.0_JSON_Format_Example.json"), rules="declared")
    assert r20.rules_version == "2.0.0" and r20.valid
    r = validate_file(fx("V3.0.0_Tall_CSV_Format_Example.csv"), version="2.2.0")
    assert r.rules_version == "2.2.0" and not r.valid
    assert "column_missing" in r.errors_by_rule  # estimated_amount is a required 2.2 column
