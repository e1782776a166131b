"""Template-version differences that change parsed values (v2.0 / 2.1 / 2.2 / 3.0)."""

from __future__ import annotations

import json

V22_TALL = (
    "hospital_name,last_updated_on,version,hospital_location,hospital_address,license_number|NY,"
    "\"To the best of its knowledge and belief, the hospital has included all applicable standard charge "
    "information\"\n"
    "V22 Hospital,2024-07-01,2.2.0,Main,1 Main St,123,true\n"
    "description,code|1,code|1|type,code|2,code|2|type,modifiers,setting,drug_unit_of_measurement,"
    "drug_type_of_measurement,standard_charge|gross,standard_charge|discounted_cash,payer_name,plan_name,"
    "standard_charge|negotiated_dollar,standard_charge|negotiated_percentage,standard_charge|negotiated_algorithm,"
    "estimated_amount,standard_charge|methodology,standard_charge|min,standard_charge|max,additional_generic_notes\n"
    "Knee replacement,27447,CPT,470,MS-DRG,,inpatient,,,40000,32000,Aetna,PPO,,80,,25500.50,percent of total "
    "billed charges,20000,36000,\n"
    "Ondansetron inj,J2405,HCPCS,00409-4755-03,NDC,,outpatient,2,ML,15,12,Aetna,PPO,8.25,,,,fee schedule,8,9,\n"
)


def test_v22_tall_estimated_amount_and_drug_fields(parse, tmp_path):
    p = tmp_path / "v22.csv"
    p.write_text(V22_TALL)
    s, rows = parse(p)
    assert s.ok and s.version == "2.2.0" and s.format == "csv_tall" and s.rows_quarantined == 0
    a, b = sorted(rows, key=lambda r: r["source_row"])
    assert (a["estimated_amount"], a["negotiated_percentage"], a["negotiated_dollar"]) == (25500.5, 80.0, None)
    assert a["codes"] == [{"code": "27447", "type": "CPT"}, {"code": "470", "type": "MS-DRG"}]
    assert (b["drug_unit_of_measurement"], b["drug_type_of_measurement"]) == (2.0, "ML")
    assert b["codes"][1] == {"code": "00409-4755-03", "type": "NDC"}


def _json_doc(version, payer_extra, code_type="CPT"):
    return {
        "hospital_name": "J Hospital", "last_updated_on": "2025-01-01", "version": version,
        "hospital_address": ["1 Main St"], "license_information": {"license_number": "1", "state": "NY"},
        "standard_charge_information": [{
            "description": "Item", "code_information": [{"code": "A1", "type": code_type}],
            "drug_information": {"unit": 1.5, "type": "UN"},
            "standard_charges": [{"setting": "both", "gross_charge": 10,
                                  "payers_information": [{"payer_name": "P", "plan_name": "Q",
                                                          "methodology": "other", **payer_extra}]}]}],
    }


def test_json_version_specific_fields(parse, tmp_path):
    cases = [
        ("2.1.0", {"standard_charge_dollar": 5}, {"negotiated_dollar": 5.0}),
        ("2.2.0", {"standard_charge_percentage": 50, "estimated_amount": 7.25},
         {"negotiated_percentage": 50.0, "estimated_amount": 7.25}),
        ("3.0.0", {"standard_charge_algorithm": "see contract", "median_amount": 6, "10th_percentile": 4,
                   "90th_percentile": 9, "count": "1 through 10"},
         {"negotiated_algorithm": "see contract", "median_amount": 6.0, "percentile_10th": 4.0,
          "percentile_90th": 9.0, "count": "1 through 10"}),
    ]
    for version, extra, expected in cases:
        p = tmp_path / f"v{version}.json"
        p.write_text(json.dumps(_json_doc(version, extra)))
        s, (row,) = parse(p)
        assert s.ok and s.version == version
        assert {k: row[k] for k in expected} == expected
        assert (row["drug_unit_of_measurement"], row["drug_type_of_measurement"]) == (1.5, "UN")


def test_code_types_are_kept_verbatim(parse, tmp_path):
    # v3 added code types (e.g. CMG, MS-LTC-DRG, HIPPS); unknown types are kept, not dropped.
    for t in ("CMG", "MS-LTC-DRG", "HIPPS", "TRIS-DRG", "CDM"):
        p = tmp_path / f"{t}.json"
        p.write_text(json.dumps(_json_doc("3.0.0", {"standard_charge_dollar": 1}, code_type=t)))
        s, (row,) = parse(p)
        assert s.ok and row["codes"] == [{"code": "A1", "type": t}]
