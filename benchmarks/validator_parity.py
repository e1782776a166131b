"""Differential harness: our validator vs the official CMS validator (@cmsgov/hpt-validator).

    .venv/bin/python benchmarks/validator_parity.py [--node-dir benchmarks/.work/node] [--json]

Builds a corpus in benchmarks/.work/parity_corpus and runs both validators on every file:

* the official examples and templates of every version in ``$CMS_HPT_DIR`` (default
  ``/work/shared/cms-hpt``; when that folder does not exist, the copies bundled in
  ``price_pipeline_tests/fixtures/cms``);
* the official validator's own test fixtures (``test/fixtures`` of the installed package, copied
  only when its licence is CC0, the public-domain dedication it carries);
* gen_mrf outputs (``$GEN_MRF``, default ``/work/shared/tools/gen_mrf.py``; skipped when absent),
  also ``--crlf``/``--bom``/``--quoted-newlines``, and three ~12 MB JSON files for the chunked path;
* single-fault mutants of the official v3.0 tall, wide and JSON examples and of the v2 tall and
  JSON examples (one field missing, one enum misspelled, one code without type, one bad date, a
  declared version, line endings, bytes after the JSON document, ...).

The official validator runs in one node process (``hpt_validator_run.mjs --batch``) the way its
command line calls it: each file with the rules the command line picks for the file's declared
major version typed alone (``2`` -> 2.2.0, ``3`` -> 3.0.0; missing or unknown -> ``3``), and the
file format from its extension. Ours runs with its defaults (the same choice, made from the file).

Prints a table, the details of every difference, and one line

    RESULT files=N verdict_agree=K (P%) agreed_invalid=M same_error_classes=J rules_agree=R ...

and exits 1 when the target is missed: verdict agreement below 99 %, a different set of error
classes on a file both call invalid, a different rule set, a file ours rejects without a finding,
or an official crash. Differences listed in ``DELIBERATE`` are explained in docs/quality.md and
count as disagreements all the same. Exit 2 when the official validator is not installed:

    mkdir -p benchmarks/.work/node && cd benchmarks/.work/node && npm init -y \\
        && npm install @cmsgov/hpt-validator@2.4.0
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from price_pipeline.lib.validate import validate_file  # noqa: E402
from price_pipeline.lib.validate.rules import RULES  # noqa: E402

SHARED = os.environ.get("CMS_HPT_DIR", "/work/shared/cms-hpt")
BUNDLED = os.path.join(ROOT, "price_pipeline_tests", "fixtures", "cms")
GEN = os.environ.get("GEN_MRF", "/work/shared/tools/gen_mrf.py")
WORK = os.path.join(HERE, ".work")
CORPUS = os.path.join(WORK, "parity_corpus")
RUNNER = os.path.join(HERE, "hpt_validator_run.mjs")
TARGET_AGREEMENT = 0.99

# file name -> why the verdicts differ on purpose (docs/quality.md "Remaining differences")
DELIBERATE: dict[str, str] = {}

# Alerts only we give (the official verdict stands; they say what the official validator did not see).
OURS_ONLY_ALERTS = {"trailing_data", "cr_line_endings", "no_data_rows"}

# our rule -> official class (CSV) or ajv message family (JSON)
OFFICIAL_CLASS = {
    "header_value_required": "RequiredValueError", "required_value": "RequiredValueError",
    "cond_payer_plan_methodology": "RequiredValueError", "cond_code_type_pair": "RequiredValueError",
    "cond_drug_unit_type_pair": "RequiredValueError", "header_allowed_value": "AllowedValuesError",
    "allowed_value": "AllowedValuesError", "cond_allowed_amounts_required": "PercentageAlgorithm*Error",
    "false_attestation": "False*Alert", "version_mismatch": "VersionMismatchAlert",
    "nine_nines": "NineNinesAlert", "estimated_amount_v3": "EstimatedAmountAlert",
}
_JSON_FAMILY = [
    ("must have required property", "json_required"), ("must be equal to one of the allowed", "json_enum"),
    ("must be equal to constant", "json_const"), ("must NOT have fewer than", "json_min"),
    ("must be >", "json_exclusive_minimum"), ("must match pattern", "json_pattern"),
    ("must match format", "json_format"), ("must match a schema in anyOf", "json_any_of"),
    ("must match \"then\" schema", "json_if_then"), ("must be ", "json_type"), ("JSON parsing error", "invalid_json"),
    ("Nine 9s", "nine_nines"), ("estimated amount' is no longer", "estimated_amount_v3"),
    ("value is false", "false_attestation"), ("does not match", "version_mismatch"),
]


def official_class(rule: str) -> str | None:
    """The official class (family) our rule corresponds to; None for alerts only we give."""
    if rule in OURS_ONLY_ALERTS:
        return None
    if rule.startswith("json_min_"):
        return "json_min"
    if rule.startswith("json_") or rule == "invalid_json":
        return rule
    if rule in OFFICIAL_CLASS:
        return OFFICIAL_CLASS[rule]
    return RULES[rule][1].split(" ")[0].split("/")[0]


def their_class(e: dict, is_json: bool) -> str:
    cls = e.get("class") or ""
    msg = e.get("message", "")
    if is_json and cls in ("ValidationError", "JsonVersionMismatchAlert", "JsonFalseAttestationAlert",
                           "JsonFalseAffirmationAlert", "InvalidJsonError"):
        for prefix, fam in _JSON_FAMILY:
            if msg.startswith(prefix) or prefix in msg:
                return {"nine_nines": "NineNinesAlert", "estimated_amount_v3": "EstimatedAmountAlert",
                        "false_attestation": "False*Alert", "version_mismatch": "VersionMismatchAlert"}.get(fam, fam)
        return "json_other"
    if cls.startswith("PercentageAlgorithm") and cls != "PercentageAlgorithmCountError" and \
            cls != "PercentageAlgorithmEstimateError":
        return "PercentageAlgorithm*Error"
    if "False" in cls:
        return "False*Alert"
    if "VersionMismatch" in cls:
        return "VersionMismatchAlert"
    if "NineNines" in cls:
        return "NineNinesAlert"
    return cls


# --- reading what the file declares (independently of our validator) ---------------------------
def declared_version(path: str) -> str | None:
    """The ``version`` a file declares, as a user reading it would type it into the command line."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace").lstrip("\ufeff")
    if path.endswith(".json"):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text.lstrip())
        except ValueError:
            return None
        v = obj.get("version") if isinstance(obj, dict) else None
        return v if isinstance(v, str) else None
    rows = []
    for row in csv.reader(io.StringIO(text, newline="")):
        rows.append(row)
        if len(rows) == 2:
            break
    if len(rows) < 2:
        return None
    for i, name in enumerate(rows[0]):
        if name.strip().lower() == "version" and i < len(rows[1]):
            return rows[1][i].strip() or None
    return None


# --- corpus ------------------------------------------------------------------------------------
def official_dir() -> tuple[str, str]:
    """(folder of the official examples/templates, label): the shared CMS copy, else the bundled one."""
    if os.path.isdir(SHARED):
        return SHARED, SHARED
    return BUNDLED, f"{BUNDLED} (bundled copies: {SHARED} not found)"


def official_files(root: str) -> list[str]:
    """Every official example and template (CSV/JSON) under ``root``; schemas are left out."""
    out = []
    for d, _dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if root != BUNDLED and not any(p in ("examples", "templates") for p in rel.split(os.sep)):
            continue
        out += [os.path.join(d, f) for f in files if f.lower().endswith((".csv", ".json"))]
    return sorted(out, key=os.path.basename)


def _find(files: list[str], name: str) -> str:
    return next(f for f in files if os.path.basename(f) == name)


def _read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def _write_csv(path, rows, eol="\n"):
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol).writerows(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def _col(rows, name, r=2):
    norm = [c.replace(" ", "").lower() for c in rows[r]]
    return norm.index(name.replace(" ", "").lower())


class Mutator:
    """Single-fault copies of one CSV file (each mutation changes one thing)."""

    def __init__(self, base: str):
        self.rows0 = _read_csv(base)
        self.out: dict[str, list[list[str]]] = {}

    def add(self, name, *fns):
        rows = [list(r) for r in self.rows0]
        for fn in fns:
            fn(rows)
        self.out[name] = rows

    @staticmethod
    def row1(old, new):
        return lambda rows: rows[0].__setitem__(_col(rows, old, 0), new)

    @staticmethod
    def row2(name, val):
        return lambda rows: rows[1].__setitem__(_col(rows, name, 0), val)

    @staticmethod
    def cell(k, name, val):
        return lambda rows: rows[3 + k].__setitem__(_col(rows, name), val)

    @staticmethod
    def rename3(old, new):
        return lambda rows: rows[2].__setitem__(_col(rows, old), new)

    @staticmethod
    def add_col(name, val):
        def f(rows):
            rows[2].append(name)
            for r in rows[3:]:
                r.append(val)
        return f

    @staticmethod
    def drop_col(name):
        def f(rows):
            j = _col(rows, name)
            for r in rows[2:]:
                del r[j]
        return f

    def license(self):
        return next(c for c in self.rows0[0] if c.lower().startswith("license_number"))

    def attestation(self):
        return next(c for c in self.rows0[0] if c.startswith("To the best"))


def _header_mutations(m: Mutator, p: str) -> None:
    """Rows 1-3 faults (any CSV layout); ``p`` prefixes the names."""
    m.add(f"{p}_missing_header", m.row1("hospital_name", "hospital_nam"))
    m.add(f"{p}_bad_state", m.row1(m.license(), "license_number|XX"))
    m.add(f"{p}_bad_date", m.row2("last_updated_on", "2026-13-45"))
    m.add(f"{p}_blank_hospital_name", m.row2("hospital_name", ""))
    m.add(f"{p}_false_attestation", m.row2(m.attestation(), "false"))
    m.add(f"{p}_attestation_maybe", m.row2(m.attestation(), "maybe"))
    m.add(f"{p}_missing_column", m.rename3("setting", "settings"))
    m.add(f"{p}_duplicate_column", m.add_col("description", "x"))
    m.add(f"{p}_blank_row3", lambda r: r.__setitem__(2, [""] * len(r[2])))
    m.add(f"{p}_header_only", lambda r: r.__delitem__(slice(3, None)))


def _tall_v3_mutations(base: str) -> dict:
    m = Mutator(base)
    c = m.cell
    m.add("csv_missing_header", m.row1("hospital_name", "hospital_nam"))
    m.add("csv_duplicate_header", m.row1("general_contract_provisions", "version"))
    m.add("csv_bad_state", m.row1(m.license(), "license_number|XX"))
    m.add("csv_state_placeholder", m.row1(m.license(), "license_number|[state]"))
    m.add("csv_bad_date", m.row2("last_updated_on", "2026-13-45"))
    m.add("csv_us_date_ok", m.row2("last_updated_on", "4/1/2026"))
    m.add("csv_blank_hospital_name", m.row2("hospital_name", ""))
    m.add("csv_attestation_maybe", m.row2(m.attestation(), "maybe"))
    m.add("csv_false_attestation", m.row2(m.attestation(), "false"))
    m.add("csv_version_mismatch", m.row2("version", "3.0"))
    m.add("csv_missing_column", m.rename3("setting", "settings"))
    m.add("csv_duplicate_column", m.add_col("description", "x"))
    m.add("csv_code_placeholder", m.rename3("code | 1", "code | [i]"))
    m.add("csv_no_plan_name_column", m.drop_col("plan_name"))
    m.add("csv_negative_amount", c(0, "standard_charge | gross", "-5"))
    m.add("csv_dollar_sign", c(1, "standard_charge | negotiated_dollar", "$250"))
    m.add("csv_zero_amount", c(2, "standard_charge | min", "0"))
    m.add("csv_thousands_separator", c(1, "standard_charge | negotiated_dollar", "1,250"))
    m.add("csv_bad_setting", c(0, "setting", "inpt"))
    m.add("csv_setting_case", c(0, "setting", "Outpatient"))
    m.add("csv_bad_code_type", c(0, "code | 1 | type", "FOO"))
    m.add("csv_bad_methodology", c(0, "standard_charge | methodology", "capitation"))
    m.add("csv_missing_payer", c(0, "payer_name", ""))
    m.add("csv_missing_description", c(0, "description", ""))
    m.add("csv_code_without_type", c(0, "code | 1 | type", ""))
    m.add("csv_type_without_code", c(0, "code | 1", ""))
    m.add("csv_bad_count", c(0, "count", "5"))
    m.add("csv_nine_nines", c(0, "standard_charge | negotiated_percentage", "50"), c(0, "count", "11"),
          c(0, "median_amount", "999999999"), c(0, "10th_percentile", "10"), c(0, "90th_percentile", "20"))
    m.add("csv_estimated_amount_v3", m.add_col("estimated_amount", ""))
    m.add("csv_count_zero_no_notes", c(0, "standard_charge | negotiated_percentage", "50"), c(0, "count", "0"))
    m.add("csv_pct_without_count", c(0, "standard_charge | negotiated_percentage", "50"))
    m.add("csv_dollar_without_min", c(0, "standard_charge | min", ""))
    m.add("csv_ndc_no_drug", c(0, "code | 1 | type", "NDC"))
    m.add("csv_drug_unit_only", c(0, "drug_unit_of_measurement", "2"))
    m.add("csv_bad_drug_type", c(0, "drug_unit_of_measurement", "2"), c(0, "drug_type_of_measurement", "XX"))
    m.add("csv_other_no_notes", c(0, "standard_charge | methodology", "other"), c(0, "additional_generic_notes", ""))
    m.add("csv_no_charge", *[c(0, col, "") for col in (
        "standard_charge | gross", "standard_charge | discounted_cash", "standard_charge | negotiated_dollar",
        "payer_name", "plan_name", "standard_charge | methodology")])
    m.add("csv_payer_without_charge", c(0, "standard_charge | negotiated_dollar", ""))
    m.add("csv_no_code", *[c(0, col, "") for col in ("code | 1", "code | 1 | type", "code | 2", "code | 2 | type")])
    m.add("csv_blank_row3", lambda r: r.__setitem__(2, [""] * len(r[2])))
    m.add("csv_blank_row1", lambda r: r.__setitem__(0, [""] * len(r[0])))
    m.add("csv_header_only", lambda r: r.__delitem__(slice(3, None)))
    m.add("csv_short_rows", lambda r: r.__setitem__(3, r[3][:10]))
    m.add("csv_blank_data_row", lambda r: r.insert(4, []))
    for v in ("2.0.0", "2.1.0", "2.2.0", "2.2.1", "2", "3", "v3.0", "3.0.1", "abc", "1.1", ""):
        m.add(f"csv_version_{v.replace('.', '_') or 'blank'}", m.row2("version", v))
    return m.out


def _wide_v3_mutations(base: str) -> dict:
    m = Mutator(base)
    c = m.cell
    ppo = "Platform Health Insurance | PPO"
    _header_mutations(m, "wide")
    m.add("wide_version_mismatch", m.row2("version", "3.0"))
    m.add("wide_payer_placeholder", m.rename3(f"standard_charge | {ppo} | negotiated_dollar",
                                              "standard_charge | [payer_name] | [plan_name] | negotiated_dollar"))
    m.add("wide_plus_payer_name_column", m.add_col("payer_name", ""))
    m.add("wide_negative", c(0, "standard_charge | gross", "-1"))
    m.add("wide_dollar_sign", c(0, f"standard_charge | {ppo} | negotiated_dollar", "$400"))
    m.add("wide_zero_min", c(0, "standard_charge | min", "0"))
    m.add("wide_bad_setting", c(0, "setting", "outpt"))
    m.add("wide_bad_code_type", c(0, "code | 1 | type", "XYZ"))
    m.add("wide_bad_methodology", c(0, f"standard_charge | {ppo} | methodology", "capitation"))
    m.add("wide_missing_description", c(0, "description", ""))
    m.add("wide_code_without_type", c(0, "code | 1 | type", ""))
    m.add("wide_no_code", *[c(0, col, "") for col in ("code | 1", "code | 1 | type", "code | 2", "code | 2 | type")])
    pct = [c(0, f"standard_charge | {ppo} | negotiated_dollar", ""),
           c(0, f"standard_charge | {ppo} | negotiated_percentage", "50")]
    m.add("wide_pct_without_count", *pct)
    allowed = [c(0, f"median_amount | {ppo}", "300"), c(0, f"10th_percentile | {ppo}", "200"),
               c(0, f"90th_percentile | {ppo}", "400")]
    m.add("wide_pct_valid", *pct, c(0, f"count | {ppo}", "11"), *allowed)
    m.add("wide_bad_count", *pct, c(0, f"count | {ppo}", "5"), *allowed)
    m.add("wide_count_zero_no_notes", *pct, c(0, f"count | {ppo}", "0"))
    m.add("wide_pct_missing_median", *pct, c(0, f"count | {ppo}", "11"), *allowed[1:])
    m.add("wide_nine_nines", *pct, c(0, f"count | {ppo}", "11"), c(0, f"median_amount | {ppo}", "999999999"),
          *allowed[1:])
    m.add("wide_other_no_notes", c(0, f"standard_charge | {ppo} | methodology", "other"))
    m.add("wide_no_charge", *[c(0, col, "") for col in (
        "standard_charge | gross", "standard_charge | discounted_cash",
        f"standard_charge | {ppo} | negotiated_dollar", f"standard_charge | {ppo} | methodology",
        "standard_charge | Region Health Insurance | HMO | negotiated_dollar",
        "standard_charge | Region Health Insurance | HMO | methodology")])
    m.add("wide_dollar_without_methodology", c(0, f"standard_charge | {ppo} | methodology", ""))
    m.add("wide_ndc_no_drug", c(0, "code | 1 | type", "NDC"))
    m.add("wide_drug_unit_only", c(0, "drug_unit_of_measurement", "2"))
    m.add("wide_dollar_without_min", c(0, "standard_charge | min", ""))
    m.add("wide_estimated_amount_v3", m.add_col(f"estimated_amount | {ppo}", ""))
    m.add("wide_blank_data_row", lambda r: r.insert(4, []))
    return m.out


def _tall_v2_mutations(base: str) -> dict:
    m = Mutator(base)
    c = m.cell
    _header_mutations(m, "v2_tall")
    m.add("v2_tall_missing_estimated", c(3, "estimated_amount", ""))
    m.add("v2_tall_negative_estimated", c(3, "estimated_amount", "-1"))
    m.add("v2_tall_nine_nines_estimated", c(3, "estimated_amount", "999999999"))
    m.add("v2_tall_bad_setting", c(0, "setting", "inpt"))
    m.add("v2_tall_code_type_v3_only", c(4, "code | 1 | type", "CMG"))
    m.add("v2_tall_missing_payer", c(0, "payer_name", ""))
    m.add("v2_tall_bad_methodology", c(0, "standard_charge | methodology", "capitation"))
    for v in ("2.1.0", "2.2.0", "2.2.1", "3.0.0"):
        m.add(f"v2_tall_version_{v.replace('.', '_')}", m.row2("version", v))
    return m.out


def _json_v3_mutations(base: str) -> dict:
    with open(base, encoding="utf-8") as f:
        d0 = json.load(f)

    def m(fn):
        d = json.loads(json.dumps(d0))
        fn(d)
        return d

    def item(d, i=0):
        return d["standard_charge_information"][i]

    def sc(d, i=0, j=0):
        return item(d, i)["standard_charges"][j]

    def payer(d, i=0, j=0, k=0):
        return sc(d, i, j)["payers_information"][k]

    pct = {"standard_charge_percentage": 50, "count": "11", "median_amount": 300, "10th_percentile": 200,
           "90th_percentile": 400}

    def pct_payer(**over):
        def f(d):
            p = payer(d)
            p.pop("standard_charge_dollar", None)
            p.update({**pct, **over})
            for k, v in over.items():
                if v is None:
                    p.pop(k)
        return f

    out = {
        "json_missing_hospital_name": m(lambda d: d.pop("hospital_name")),
        "json_null_hospital_name": m(lambda d: d.__setitem__("hospital_name", None)),
        "json_bad_state": m(lambda d: d["license_information"].__setitem__("state", "XX")),
        "json_missing_license_state": m(lambda d: d["license_information"].pop("state")),
        "json_bad_date": m(lambda d: d.__setitem__("last_updated_on", "2026-02-30")),
        "json_us_date": m(lambda d: d.__setitem__("last_updated_on", "4/1/2026")),
        "json_empty_location": m(lambda d: d.__setitem__("location_name", [])),
        "json_empty_address": m(lambda d: d.__setitem__("hospital_address", [])),
        "json_bad_npi": m(lambda d: d.__setitem__("type_2_npi", ["12345"])),
        "json_missing_attestation": m(lambda d: d.pop("attestation")),
        "json_wrong_attestation_text": m(lambda d: d["attestation"].__setitem__("attestation", "We attest.")),
        "json_false_attestation": m(lambda d: d["attestation"].__setitem__("confirm_attestation", False)),
        "json_version_mismatch": m(lambda d: d.__setitem__("version", "3.0")),
        "json_negative_dollar": m(lambda d: payer(d).__setitem__("standard_charge_dollar", -5)),
        "json_string_dollar": m(lambda d: payer(d).__setitem__("standard_charge_dollar", "400")),
        "json_zero_gross": m(lambda d: sc(d).__setitem__("gross_charge", 0)),
        "json_missing_methodology": m(lambda d: payer(d).pop("methodology")),
        "json_bad_methodology": m(lambda d: payer(d).__setitem__("methodology", "capitation")),
        "json_missing_plan_name": m(lambda d: payer(d).pop("plan_name")),
        "json_other_no_notes": m(lambda d: payer(d).__setitem__("methodology", "other")),
        "json_nine_nines": m(lambda d: payer(d).update({"standard_charge_percentage": 50, "count": "11",
                                                        "median_amount": 999999999, "10th_percentile": 1,
                                                        "90th_percentile": 2})),
        "json_estimated_amount_v3": m(lambda d: payer(d).__setitem__("estimated_amount", 12.5)),
        "json_bad_setting": m(lambda d: sc(d).__setitem__("setting", "inpt")),
        "json_bad_count": m(lambda d: payer(d).update({"standard_charge_percentage": 50, "count": "5"})),
        "json_pct_without_count": m(lambda d: payer(d).update({"standard_charge_percentage": 50})),
        "json_pct_valid": m(pct_payer()),
        "json_pct_missing_10th": m(pct_payer(**{"10th_percentile": None})),
        "json_count_zero_no_notes": m(pct_payer(count="0")),
        "json_negative_median": m(pct_payer(median_amount=-1)),
        "json_ndc_no_drug": m(lambda d: item(d)["code_information"][0].__setitem__("type", "NDC")),
        "json_bad_drug_type": m(lambda d: item(d).__setitem__("drug_information", {"unit": 2, "type": "XX"})),
        "json_zero_drug_unit": m(lambda d: item(d).__setitem__("drug_information", {"unit": 0, "type": "ML"})),
        "json_no_min_max": m(lambda d: sc(d).pop("minimum")),
        "json_empty_items": m(lambda d: d.__setitem__("standard_charge_information", [])),
        "json_no_items_member": m(lambda d: d.pop("standard_charge_information")),
        "json_null_notes": m(lambda d: payer(d).__setitem__("additional_payer_notes", None)),
        "json_bad_code_type": m(lambda d: item(d)["code_information"][0].__setitem__("type", "FOO")),
        "json_empty_code": m(lambda d: item(d)["code_information"][0].__setitem__("code", "")),
        "json_missing_code_information": m(lambda d: item(d).pop("code_information")),
        "json_missing_description": m(lambda d: item(d).pop("description")),
        "json_empty_description": m(lambda d: item(d).__setitem__("description", "")),
        "json_empty_modifier_code": m(lambda d: sc(d).__setitem__("modifier_code", [])),
        "json_no_charge": m(lambda d: [sc(d).pop(k) for k in ("gross_charge", "discounted_cash", "payers_information",
                                                               "minimum", "maximum")]),
        "json_empty_payers": m(lambda d: sc(d).__setitem__("payers_information", [])),
        "json_missing_version": m(lambda d: d.pop("version")),
    }
    for v in ("2.0.0", "2.2.0", "3", "4.0.0"):
        out[f"json_version_{v.replace('.', '_')}"] = m(lambda d, v=v: d.__setitem__("version", v))
    return out


def _json_v2_mutations(base: str) -> dict:
    with open(base, encoding="utf-8") as f:
        d0 = json.load(f)

    def m(fn):
        d = json.loads(json.dumps(d0))
        fn(d)
        return d

    def first_payer(d, want):
        for it in d["standard_charge_information"]:
            for sc in it["standard_charges"]:
                for p in sc.get("payers_information", []):
                    if want(p):
                        return p
        raise LookupError("no such payer in the v2 example")

    def pct_only(p):
        return "standard_charge_percentage" in p and "standard_charge_dollar" not in p and "estimated_amount" in p

    return {
        "v2_json_bad_setting": m(lambda d: d["standard_charge_information"][0]["standard_charges"][0].__setitem__(
            "setting", "inpt")),
        "v2_json_false_affirmation": m(lambda d: d["affirmation"].__setitem__("confirm_affirmation", False)),
        "v2_json_missing_estimated": m(lambda d: first_payer(d, pct_only).pop("estimated_amount")),
        "v2_json_nine_nines": m(lambda d: first_payer(d, pct_only).__setitem__("estimated_amount", 999999999)),
        "v2_json_version_2_1_0": m(lambda d: d.__setitem__("version", "2.1.0")),
        "v2_json_version_2_2_1": m(lambda d: d.__setitem__("version", "2.2.1")),
        "v2_json_version_3_0_0": m(lambda d: d.__setitem__("version", "3.0.0")),
    }


def _byte_variants(tall: str, wide: str, js: str) -> dict[str, bytes]:
    """Line endings, header-only endings, bytes after the JSON document, version after the items."""
    with open(tall, "rb") as f:
        t = f.read().replace(b"\r\n", b"\n")
    with open(wide, "rb") as f:
        w = f.read().replace(b"\r\n", b"\n")
    with open(js, "rb") as f:
        j = f.read().rstrip()
    lines = t.split(b"\n")
    head = b"\n".join(lines[:3])
    out = {
        "csv_lf.csv": t,
        "csv_crlf.csv": t.replace(b"\n", b"\r\n"),
        "csv_cr_only.csv": t.replace(b"\n", b"\r"),
        "wide_cr_only.csv": w.replace(b"\n", b"\r"),
        "csv_cr_data_only.csv": head + b"\n" + b"\r".join(lines[3:]),
        "csv_cr_header_only.csv": b"\r".join(lines[:3]) + b"\r" + b"\n".join(lines[3:]),
        "csv_header_only_no_eol.csv": head,
        "csv_header_only_crlf.csv": head.replace(b"\n", b"\r\n") + b"\r\n",
        "csv_header_blank_line.csv": head + b"\n\n",
        "csv_header_commas_line.csv": head + b"\n" + b"," * 20 + b"\n",
        "json_trailing_garbage.json": j + b"\nabc xyz",
        "json_trailing_second_document.json": j + j,
        "json_trailing_brace.json": j + b"}",
        "json_trailing_nul.json": j + b"\x00\x00\x00",
        "json_trailing_whitespace.json": j + b"\n\n  \t\n",
        "json_bom.json": b"\xef\xbb\xbf" + j,
        "json_missing_comma.json": j.replace(b'",\n', b'"\n', 1),
        "json_top_array.json": b"[" + j + b"]",
        "json_empty_object.json": b"{}",
    }
    d = json.loads(j)
    v = d.pop("version")
    out["json_version_last.json"] = json.dumps({**d, "version": v}).encode()
    out["json_version_last_2_2_0.json"] = json.dumps({**d, "version": "2.2.0"}).encode()
    return out


LARGE_JSON_ITEMS = 2600  # ~12 MB: over json_check.CHUNKED_MIN_BYTES, so the chunked Arrow path decides


def _large_json_files() -> list[str]:
    """A gen_mrf JSON big enough for the chunked path, and copies with a defect / alerts deep inside,
    bytes after the document, and the version after the items."""
    base = os.path.join(CORPUS, "gen_json_large.json")
    subprocess.run([sys.executable, GEN, "--format", "json", "--rows", str(LARGE_JSON_ITEMS), "--payers", "50",
                    "--seed", "5", "--out", base, "--jobs", "1"], check=True, capture_output=True)
    with open(base, "rb") as f:
        text = f.read()
    mid = len(text) * 2 // 3
    out = [base]
    k = text.index(b'"setting":"', mid) + len(b'"setting":"')
    e = text.index(b'"', k)
    k2 = text.index(b'{"payer_name":"', mid)
    while b"median_amount" in text[k2: text.index(b"}", k2)]:  # no duplicate member
        k2 = text.index(b'{"payer_name":"', k2 + 1)
    k2 += 1
    variants = [("json_large_bad_setting", text[:k] + b"Outpatient" + text[e:]),
                ("json_large_nines", text[:k2] + b'"median_amount":999999999,"estimated_amount":5,' + text[k2:]),
                ("json_large_trailing_garbage", text.rstrip() + b"\n\x00garbage")]
    v_at = text.index(b'"version":')
    v_end = text.index(b",", v_at) + 1
    body = text[:v_at] + text[v_end:]
    close = body.rstrip().rindex(b"}")
    variants.append(("json_large_version_last_2_2_0", body[:close] + b',"version":"2.2.0"' + body[close:]))
    for name, data in variants:
        path = os.path.join(CORPUS, name + ".json")
        with open(path, "wb") as f:
            f.write(data)
        out.append(path)
    return out


def _validator_fixtures(node_dir: str) -> tuple[list[str], str]:
    """Copies of the official validator's test fixtures when its licence allows (CC0)."""
    pkg = os.path.join(node_dir, "node_modules", "@cmsgov", "hpt-validator")
    lic = os.path.join(pkg, "LICENSE.md")
    with open(lic, encoding="utf-8") as f:
        if "CC0" not in f.read():
            return [], "validator fixtures skipped: the package licence is not CC0"
    src = os.path.join(pkg, "test", "fixtures")
    out = []
    for d, _dirs, files in os.walk(src):
        rel = os.path.relpath(d, src)
        prefix = "hptv_" if rel == "." else f"hptv{rel.replace(os.sep, '_').replace('.', '')}_"
        for name in sorted(files):
            if name.lower().endswith((".csv", ".json")):
                dst = os.path.join(CORPUS, prefix + name)
                shutil.copy(os.path.join(d, name), dst)
                out.append(dst)
    return out, f"validator fixtures: {len(out)} files from {src} (CC0)"


def build_corpus(node_dir: str) -> tuple[list[str], list[str]]:
    """Write the corpus; returns (files, notes on where its parts came from)."""
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    os.makedirs(CORPUS)
    notes = []
    files = []
    root, label = official_dir()
    official = official_files(root)
    notes.append(f"official examples and templates: {len(official)} files from {label}")
    for path in official:
        dst = os.path.join(CORPUS, os.path.basename(path))
        shutil.copy(path, dst)
        files.append(dst)
    fixtures, note = _validator_fixtures(node_dir)
    files += fixtures
    notes.append(note)
    n_mutants = 0

    def write_rows(name, rows):
        out = os.path.join(CORPUS, name + ".csv")
        _write_csv(out, rows)
        files.append(out)

    tall3 = _find(official, "V3.0.0_Tall_CSV_Format_Example.csv")
    wide3 = _find(official, "V3.0.0_Wide_CSV_Format_Example.csv")
    json3 = _find(official, "V3.0.0_JSON_Format_Example.json")
    for mutations in (_tall_v3_mutations(tall3), _wide_v3_mutations(wide3),
                      _tall_v2_mutations(_find(official, "V2.0.0_Tall_CSV_Format_Example.csv"))):
        for name, rows in mutations.items():
            write_rows(name, rows)
            n_mutants += 1
    for mutations in (_json_v3_mutations(json3),
                      _json_v2_mutations(_find(official, "V2.0.0_JSON_Format_Example.json"))):
        for name, d in mutations.items():
            out = os.path.join(CORPUS, name + ".json")
            with open(out, "w", encoding="utf-8") as f:
                json.dump(d, f, indent=1)
            files.append(out)
            n_mutants += 1
    with open(json3, "rb") as f:
        data = f.read()
    variants = _byte_variants(tall3, wide3, json3)
    variants["json_truncated.json"] = data[: len(data) // 2]
    for name, content in variants.items():
        out = os.path.join(CORPUS, name)
        with open(out, "wb") as f:
            f.write(content)
        files.append(out)
        n_mutants += 1
    if os.path.exists(GEN):
        n_gen = 0
        for fmt, ext in (("tall", "csv"), ("wide", "csv"), ("json", "json")):
            for opts in ([], ["--crlf"], ["--bom"], ["--quoted-newlines"]):
                if fmt == "json" and opts and opts[0] != "--bom":
                    continue
                name = f"gen_{fmt}{''.join(o.replace('--', '_') for o in opts)}.{ext}"
                out = os.path.join(CORPUS, name)
                subprocess.run([sys.executable, GEN, "--format", fmt, "--rows", "300", "--payers", "6", "--seed",
                                "11", "--out", out, "--jobs", "1", *opts], check=True, capture_output=True)
                files.append(out)
                n_gen += 1
        large = _large_json_files()
        files += large
        n_mutants += len(large) - 1
        notes.append(f"gen_mrf: {n_gen + 1} generated files ({GEN})")
    else:
        notes.append(f"gen_mrf not found at {GEN}: generated files and large-JSON mutants skipped")
    notes.append(f"single-fault mutants: {n_mutants}")
    return files, notes


# --- run ---------------------------------------------------------------------------------------
def run_official(files: list[str], node_dir: str) -> dict[str, dict]:
    """Official results by file (one node process; rules as the command line picks them)."""
    listing = os.path.join(WORK, "parity_list.json")
    entries = [{"file": f, "declared": declared_version(f), "kind": "json" if f.endswith(".json") else "csv"}
               for f in files]
    with open(listing, "w", encoding="utf-8") as f:
        json.dump(entries, f)
    out = os.path.join(WORK, "parity_official.jsonl")
    env = {**os.environ, "HPT_NODE_DIR": os.path.abspath(node_dir)}
    p = subprocess.run(["node", "--max-old-space-size=4096", RUNNER, "--batch", listing, out], capture_output=True,
                       text=True, timeout=3600, env=env)
    results = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                results[r["file"]] = r
    for e in entries:  # a file the batch never reached
        results.setdefault(e["file"], {"crashed": (p.stderr or "no output")[-500:], "declared": e["declared"]})
    return results


def compare(path: str, theirs: dict) -> dict:
    ours = validate_file(path, max_findings=100000)
    is_json = path.endswith(".json")
    our_err = collections.Counter()
    for rule, n in ours.errors_by_rule.items():
        our_err[official_class(rule)] += n
    our_alert = collections.Counter()
    for rule, n in ours.alerts_by_rule.items():
        cls = official_class(rule)
        if cls is not None:
            our_alert[cls] += n
    crashed = theirs.get("crashed")
    if crashed:
        their_valid, their_err, their_alert = None, collections.Counter(), collections.Counter()
    else:
        their_valid = theirs["valid"]
        their_err = collections.Counter(their_class(e, is_json) for e in theirs["errors"])
        their_alert = collections.Counter(their_class(e, is_json) for e in theirs["alerts"])
    return {
        "file": os.path.basename(path), "declared": theirs.get("declared"), "ours_rules": ours.rules_version,
        "their_rules": theirs.get("version"), "rules_same": ours.rules_version == theirs.get("version"),
        "ours_valid": ours.valid, "theirs_valid": their_valid,
        "verdict_same": ours.valid == their_valid, "classes_same": set(our_err) == set(their_err),
        "counts_same": our_err == their_err, "alerts_same": set(our_alert) == set(their_alert),
        "explained": ours.valid or bool(ours.findings),
        "ours": dict(our_err), "theirs": dict(their_err), "ours_alerts": dict(our_alert),
        "theirs_alerts": dict(their_alert), "ours_only_alerts": sorted(set(ours.alerts_by_rule) & OURS_ONLY_ALERTS),
        "crash": crashed,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node-dir", default=os.path.join(WORK, "node"))
    ap.add_argument("--json", action="store_true", help="print one JSON line per file")
    args = ap.parse_args(argv)
    if not os.path.isdir(os.path.join(args.node_dir, "node_modules", "@cmsgov", "hpt-validator")):
        print("official validator not installed: see the module docstring", file=sys.stderr)
        return 2
    files, notes = build_corpus(args.node_dir)
    for note in notes:
        print(f"# {note}")
    official = run_official(files, args.node_dir)
    results = [compare(f, official[f]) for f in files]
    print(f"{'file':46} {'rules':5} {'ours':5} {'off.':5} verdict classes counts alerts")
    for r in results:
        flag = "" if r["verdict_same"] else ("  (deliberate)" if r["file"] in DELIBERATE else "  <-- DISAGREE")
        print(f"{r['file'][:46]:46} {str(r['ours_rules'])[:5]:5} {str(r['ours_valid']):5} {str(r['theirs_valid']):5} "
              f"{'ok' if r['verdict_same'] else 'DIFF':7} {'ok' if r['classes_same'] else 'DIFF':7} "
              f"{'ok' if r['counts_same'] else 'DIFF':6} {'ok' if r['alerts_same'] else 'DIFF'}{flag}"
              + ("" if r["rules_same"] else f"  rules: ours {r['ours_rules']} official {r['their_rules']}")
              + (f"  ours only: {','.join(r['ours_only_alerts'])}" if r["ours_only_alerts"] else ""))
        if not (r["classes_same"] and r["alerts_same"] and r["counts_same"]) or args.json or r["crash"]:
            print(f"    ours={r['ours']} {r['ours_alerts']}\n    official={r['theirs']} {r['theirs_alerts']}"
                  + (f"\n    official crashed: {r['crash']}" if r["crash"] else ""))
    n = len(results)
    agree = sum(r["verdict_same"] for r in results)
    agreed_invalid = [r for r in results if r["verdict_same"] and r["ours_valid"] is False]
    same_classes = sum(r["classes_same"] for r in agreed_invalid)
    rules_agree = sum(r["rules_same"] for r in results)
    unexplained = [r["file"] for r in results if not r["explained"]]
    crashes = [r["file"] for r in results if r["crash"]]
    undocumented = [r["file"] for r in results if not r["verdict_same"] and r["file"] not in DELIBERATE]
    for r in results:
        if not r["verdict_same"] and r["file"] in DELIBERATE:
            print(f"# deliberate: {r['file']}: {DELIBERATE[r['file']]}")
    met = (agree >= TARGET_AGREEMENT * n and same_classes == len(agreed_invalid) and rules_agree == n
           and not unexplained and not crashes)
    print(f"RESULT files={n} verdict_agree={agree} ({100 * agree / max(n, 1):.1f}%) "
          f"agreed_invalid={len(agreed_invalid)} same_error_classes={same_classes} "
          f"error_counts_agree={sum(r['counts_same'] for r in results)} "
          f"alert_classes_agree={sum(r['alerts_same'] for r in results)} rules_agree={rules_agree} "
          f"invalid_without_finding={len(unexplained)} official_crashes={len(crashes)} "
          f"undocumented_disagreements={len(undocumented)} target={'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
