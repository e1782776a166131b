"""Differential harness: our validator vs the official CMS validator (@cmsgov/hpt-validator).

    .venv/bin/python benchmarks/validator_parity.py [--node-dir benchmarks/.work/node] [--keep]

Builds a corpus in benchmarks/.work/parity_corpus (official examples and templates, gen_mrf
outputs incl. --crlf/--bom/--quoted-newlines, and mutated files covering each rule), runs both
validators on every file (node as a separate process, with the rule-set version ours chose),
and prints a disagreement table and a summary line. Exit status 1 when a verdict differs on a
file not listed in DELIBERATE (documented in price_pipeline/lib/validate/README.md).

Install the official validator first:
    mkdir -p benchmarks/.work/node && cd benchmarks/.work/node && npm init -y && npm install @cmsgov/hpt-validator
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
sys.path.insert(0, os.path.dirname(HERE))

from price_pipeline.lib.validate import validate_file  # noqa: E402
from price_pipeline.lib.validate.rules import RULES  # noqa: E402

SHARED = os.environ.get("CMS_HPT_DIR", "/work/shared/cms-hpt")
GEN = os.environ.get("GEN_MRF", "/work/shared/tools/gen_mrf.py")
WORK = os.path.join(HERE, ".work")
CORPUS = os.path.join(WORK, "parity_corpus")
RUNNER = os.path.join(HERE, "hpt_validator_run.mjs")

# file name -> why the verdicts differ on purpose (see README "Deliberate differences")
DELIBERATE: dict[str, str] = {}

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


def official_class(rule: str) -> str:
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


# --- corpus ------------------------------------------------------------------------------------
def _read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f))


def _write_csv(path, rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def _col(rows, name, r=2):
    norm = [c.replace(" ", "").lower() for c in rows[r]]
    return norm.index(name.replace(" ", "").lower())


def _csv_mutations(base):
    rows0 = _read_csv(base)

    def m(fn):
        rows = [list(r) for r in rows0]
        fn(rows)
        return rows

    def set_row1(old, new):
        return lambda rows: rows[0].__setitem__(_col(rows, old, 0), new)

    def set_row2(name, val):
        return lambda rows: rows[1].__setitem__(_col(rows, name, 0), val)

    def set_cell(k, name, val):
        return lambda rows: rows[3 + k].__setitem__(_col(rows, name), val)

    def rename3(old, new):
        return lambda rows: rows[2].__setitem__(_col(rows, old), new)

    def add_col(name, val):
        def f(rows):
            rows[2].append(name)
            for r in rows[3:]:
                r.append(val)
        return f

    lic = next(c for c in rows0[0] if c.lower().startswith("license_number"))
    att = next(c for c in rows0[0] if c.startswith("To the best"))
    return {
        "csv_missing_header": m(set_row1("hospital_name", "hospital_nam")),
        "csv_duplicate_header": m(set_row1("general_contract_provisions", "version")),
        "csv_bad_state": m(set_row1(lic, "license_number|XX")),
        "csv_state_placeholder": m(set_row1(lic, "license_number|[state]")),
        "csv_bad_date": m(set_row2("last_updated_on", "2026-13-45")),
        "csv_us_date_ok": m(set_row2("last_updated_on", "4/1/2026")),
        "csv_blank_hospital_name": m(set_row2("hospital_name", "")),
        "csv_attestation_maybe": m(set_row2(att, "maybe")),
        "csv_false_attestation": m(set_row2(att, "false")),
        "csv_version_mismatch": m(set_row2("version", "3.0")),
        "csv_missing_column": m(rename3("setting", "settings")),
        "csv_duplicate_column": m(add_col("description", "x")),
        "csv_code_placeholder": m(rename3("code | 1", "code | [i]")),
        "csv_negative_amount": m(set_cell(0, "standard_charge | gross", "-5")),
        "csv_dollar_sign": m(set_cell(1, "standard_charge | negotiated_dollar", "$250")),
        "csv_zero_amount": m(set_cell(2, "standard_charge | min", "0")),
        "csv_bad_setting": m(set_cell(0, "setting", "inpt")),
        "csv_bad_code_type": m(set_cell(0, "code | 1 | type", "FOO")),
        "csv_bad_methodology": m(set_cell(0, "standard_charge | methodology", "capitation")),
        "csv_missing_payer": m(set_cell(0, "payer_name", "")),
        "csv_missing_description": m(set_cell(0, "description", "")),
        "csv_code_without_type": m(set_cell(0, "code | 1 | type", "")),
        "csv_bad_count": m(lambda r: (set_cell(0, "count", "5")(r))),
        "csv_nine_nines": m(lambda r: (set_cell(0, "standard_charge | negotiated_percentage", "50")(r),
                                       set_cell(0, "count", "11")(r), set_cell(0, "median_amount", "999999999")(r),
                                       set_cell(0, "10th_percentile", "10")(r),
                                       set_cell(0, "90th_percentile", "20")(r))),
        "csv_estimated_amount_v3": m(add_col("estimated_amount", "")),
        "csv_count_zero_no_notes": m(lambda r: (set_cell(0, "standard_charge | negotiated_percentage", "50")(r),
                                                set_cell(0, "count", "0")(r))),
        "csv_pct_without_count": m(set_cell(0, "standard_charge | negotiated_percentage", "50")),
        "csv_dollar_without_min": m(set_cell(0, "standard_charge | min", "")),
        "csv_ndc_no_drug": m(set_cell(0, "code | 1 | type", "NDC")),
        "csv_drug_unit_only": m(set_cell(0, "drug_unit_of_measurement", "2")),
        "csv_other_no_notes": m(lambda r: (set_cell(0, "standard_charge | methodology", "other")(r),
                                           set_cell(0, "additional_generic_notes", "")(r))),
        "csv_no_charge": m(lambda r: [set_cell(0, c, "")(r) for c in (
            "standard_charge | gross", "standard_charge | discounted_cash", "standard_charge | negotiated_dollar",
            "payer_name", "plan_name", "standard_charge | methodology")]),
        "csv_payer_without_charge": m(set_cell(0, "standard_charge | negotiated_dollar", "")),
        "csv_no_code": m(lambda r: [set_cell(0, c, "")(r) for c in ("code | 1", "code | 1 | type", "code | 2",
                                                                   "code | 2 | type")]),
        "csv_blank_row3": m(lambda r: r.__setitem__(2, [""] * len(r[2]))),
        "csv_blank_row1": m(lambda r: r.__setitem__(0, [""] * len(r[0]))),
        "csv_header_only": m(lambda r: r.__delitem__(slice(3, None))),
        "csv_short_rows": m(lambda r: r.__setitem__(3, r[3][:10])),
        "csv_blank_data_row": m(lambda r: r.insert(4, [])),
    }


def _json_mutations(base):
    with open(base, encoding="utf-8") as f:
        d0 = json.load(f)

    def m(fn):
        d = json.loads(json.dumps(d0))
        fn(d)
        return d

    def payer(d, i=0, j=0, k=0):
        return d["standard_charge_information"][i]["standard_charges"][j]["payers_information"][k]

    return {
        "json_missing_hospital_name": m(lambda d: d.pop("hospital_name")),
        "json_bad_state": m(lambda d: d["license_information"].__setitem__("state", "XX")),
        "json_bad_date": m(lambda d: d.__setitem__("last_updated_on", "2026-02-30")),
        "json_us_date": m(lambda d: d.__setitem__("last_updated_on", "4/1/2026")),
        "json_negative_dollar": m(lambda d: payer(d).__setitem__("standard_charge_dollar", -5)),
        "json_string_dollar": m(lambda d: payer(d).__setitem__("standard_charge_dollar", "400")),
        "json_missing_methodology": m(lambda d: payer(d).pop("methodology")),
        "json_nine_nines": m(lambda d: payer(d).update({"standard_charge_percentage": 50, "count": "11",
                                                        "median_amount": 999999999, "10th_percentile": 1,
                                                        "90th_percentile": 2})),
        "json_estimated_amount_v3": m(lambda d: payer(d).__setitem__("estimated_amount", 12.5)),
        "json_false_attestation": m(lambda d: d["attestation"].__setitem__("confirm_attestation", False)),
        "json_version_mismatch": m(lambda d: d.__setitem__("version", "3.0")),
        "json_bad_setting": m(lambda d: d["standard_charge_information"][0]["standard_charges"][0].__setitem__(
            "setting", "inpt")),
        "json_bad_count": m(lambda d: payer(d).update({"standard_charge_percentage": 50, "count": "5"})),
        "json_pct_without_count": m(lambda d: payer(d).update({"standard_charge_percentage": 50})),
        "json_ndc_no_drug": m(lambda d: d["standard_charge_information"][0]["code_information"][0].__setitem__(
            "type", "NDC")),
        "json_no_min_max": m(lambda d: d["standard_charge_information"][0]["standard_charges"][0].pop("minimum")),
        "json_empty_items": m(lambda d: d.__setitem__("standard_charge_information", [])),
        "json_null_notes": m(lambda d: payer(d).__setitem__("additional_payer_notes", None)),
        "json_bad_code_type": m(lambda d: d["standard_charge_information"][0]["code_information"][0].__setitem__(
            "type", "FOO")),
    }


LARGE_JSON_ITEMS = 2600  # ~12 MB: over json_check.CHUNKED_MIN_BYTES, so the chunked Arrow path decides


def _large_json_files() -> list[str]:
    """A gen_mrf JSON big enough for the chunked path, and copies with a defect / alerts deep inside."""
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
    for name, data in (("json_large_bad_setting", text[:k] + b"Outpatient" + text[e:]),
                       ("json_large_nines", text[:k2] + b'"median_amount":999999999,"estimated_amount":5,' + text[k2:])):
        path = os.path.join(CORPUS, name + ".json")
        with open(path, "wb") as f:
            f.write(data)
        out.append(path)
    return out


def build_corpus() -> list[str]:
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    os.makedirs(CORPUS)
    files = []
    for sub in ("v3.0/examples", "v2/examples", "v3.0/templates", "v2/templates"):
        d = os.path.join(SHARED, sub)
        for name in sorted(os.listdir(d)):
            dst = os.path.join(CORPUS, name)
            shutil.copy(os.path.join(d, name), dst)
            files.append(dst)
    for fmt, ext in (("tall", "csv"), ("wide", "csv"), ("json", "json")):
        for opts in ([], ["--crlf"], ["--bom"], ["--quoted-newlines"]):
            if fmt == "json" and opts and opts[0] != "--bom":
                continue
            name = f"gen_{fmt}{''.join(o.replace('--', '_') for o in opts)}.{ext}"
            out = os.path.join(CORPUS, name)
            subprocess.run([sys.executable, GEN, "--format", fmt, "--rows", "300", "--payers", "6", "--seed", "11",
                            "--out", out, "--jobs", "1", *opts], check=True, capture_output=True)
            files.append(out)
    for name, rows in _csv_mutations(os.path.join(SHARED, "v3.0/examples/V3.0.0_Tall_CSV_Format_Example.csv")).items():
        out = os.path.join(CORPUS, name + ".csv")
        _write_csv(out, rows)
        files.append(out)
    wide = _read_csv(os.path.join(SHARED, "v3.0/examples/V3.0.0_Wide_CSV_Format_Example.csv"))
    neg = [list(r) for r in wide]
    neg[3][_col(neg, "standard_charge | gross")] = "-1"
    for name, rows in (("csv_wide_negative", neg),):
        out = os.path.join(CORPUS, name + ".csv")
        _write_csv(out, rows)
        files.append(out)
    for name, d in _json_mutations(os.path.join(SHARED, "v3.0/examples/V3.0.0_JSON_Format_Example.json")).items():
        out = os.path.join(CORPUS, name + ".json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(d, f, indent=1)
        files.append(out)
    files += _large_json_files()
    trunc = os.path.join(CORPUS, "json_truncated.json")
    with open(os.path.join(SHARED, "v3.0/examples/V3.0.0_JSON_Format_Example.json"), "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[: len(data) // 2])
    files.append(trunc)
    return files


# --- run ---------------------------------------------------------------------------------------
def run_official(path: str, version: str, kind: str) -> dict:
    p = subprocess.run(["node", RUNNER, path, version, kind, "0"], capture_output=True, text=True, timeout=600)
    if p.returncode != 0 or not p.stdout.strip():
        return {"crashed": p.stderr[-500:]}
    return json.loads(p.stdout)


def compare(path: str) -> dict:
    ours = validate_file(path, max_findings=100000)
    kind = "json" if ours.format == "json" else "csv"
    version = ours.rules_version or "3.0.0"
    theirs = run_official(path, version, kind)
    is_json = kind == "json"
    our_err = collections.Counter()
    for rule, n in ours.errors_by_rule.items():
        our_err[official_class(rule)] += n
    our_alert = collections.Counter()
    for rule, n in ours.alerts_by_rule.items():
        our_alert[official_class(rule)] += n
    if "crashed" in theirs:
        their_valid, their_err, their_alert = None, collections.Counter(), collections.Counter()
    else:
        their_valid = theirs["valid"]
        their_err = collections.Counter(their_class(e, is_json) for e in theirs["errors"])
        their_alert = collections.Counter(their_class(e, is_json) for e in theirs["alerts"])
    return {
        "file": os.path.basename(path), "version": version, "ours_valid": ours.valid, "theirs_valid": their_valid,
        "verdict_same": ours.valid == their_valid, "classes_same": set(our_err) == set(their_err),
        "counts_same": our_err == their_err, "alerts_same": set(our_alert) == set(their_alert),
        "ours": dict(our_err), "theirs": dict(their_err), "ours_alerts": dict(our_alert),
        "theirs_alerts": dict(their_alert), "crash": theirs.get("crashed"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--node-dir", default=os.path.join(WORK, "node"))
    ap.add_argument("--json", action="store_true", help="print one JSON line per file")
    args = ap.parse_args(argv)
    os.environ["HPT_NODE_DIR"] = os.path.abspath(args.node_dir)
    if not os.path.isdir(os.path.join(args.node_dir, "node_modules", "@cmsgov", "hpt-validator")):
        print("official validator not installed: see the module docstring", file=sys.stderr)
        return 2
    files = build_corpus()
    results = [compare(f) for f in files]
    bad = 0
    print(f"{'file':42} {'ver':6} {'ours':6} {'theirs':6} verdict classes counts alerts")
    for r in results:
        flag = "" if r["verdict_same"] else ("  (deliberate)" if r["file"] in DELIBERATE else "  <-- DISAGREE")
        if not r["verdict_same"] and r["file"] not in DELIBERATE:
            bad += 1
        print(f"{r['file'][:42]:42} {r['version']:6} {str(r['ours_valid']):6} {str(r['theirs_valid']):6} "
              f"{'ok' if r['verdict_same'] else 'DIFF':7} {'ok' if r['classes_same'] else 'DIFF':7} "
              f"{'ok' if r['counts_same'] else 'DIFF':6} {'ok' if r['alerts_same'] else 'DIFF'}{flag}")
        if not (r["classes_same"] and r["alerts_same"]) or args.json:
            print(f"    ours={r['ours']} {r['ours_alerts']}\n    theirs={r['theirs']} {r['theirs_alerts']}"
                  + (f"\n    official crashed: {r['crash']}" if r["crash"] else ""))
    n = len(results)
    print(f"SUMMARY files={n} verdict_agree={sum(r['verdict_same'] for r in results)} "
          f"error_classes_agree={sum(r['classes_same'] for r in results)} "
          f"error_counts_agree={sum(r['counts_same'] for r in results)} "
          f"alert_classes_agree={sum(r['alerts_same'] for r in results)} "
          f"undocumented_verdict_disagreements={bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
