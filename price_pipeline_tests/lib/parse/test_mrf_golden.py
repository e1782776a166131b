"""Golden tests: the official CMS examples (v2.0.0, v3.0.0; tall, wide, JSON) and templates.

Row counts were derived by reading the files: tall = data rows; wide = per row, one record
per payer/plan group with any value (or one payer-less record); JSON = payer records plus
modifier_information payer records.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake.schemas import PARSED_SCHEMA

from ..conftest import CMS

V3_TALL = CMS / "V3.0.0_Tall_CSV_Format_Example.csv"
V3_WIDE = CMS / "V3.0.0_Wide_CSV_Format_Example.csv"
V3_JSON = CMS / "V3.0.0_JSON_Format_Example.json"
V2_TALL = CMS / "V2.0.0_Tall_CSV_Format_Example.csv"
V2_WIDE = CMS / "V2.0.0_Wide_CSV_Format_Example.csv"
V2_JSON = CMS / "V2.0.0_JSON_Format_Example.json"


def by_row(rows):
    return {r["source_row"]: r for r in rows}


def by_path(rows):
    return {r["source_path"]: r for r in rows}


def test_v3_tall(parse):
    s, rows = parse(V3_TALL)
    assert (s.ok, s.format, s.version, s.encoding, s.compression) == (True, "csv_tall", "3.0.0", "utf-8", None)
    assert s.rows_parsed == len(rows) == 45 and s.rows_quarantined == 0
    assert s.findings == []
    h = s.header
    assert h["hospital_name"] == "West Mercy Hospital"
    assert h["last_updated_on"] == "2026-04-01"  # published as 4/1/2026
    assert h["location_name"] == ["West Mercy Hospital", "West Mercy Surgical Center"]
    assert h["hospital_address"][1] == "23 Ocean Ave, San Jose, CA 94088"
    assert (h["license_number"], h["license_state"]) == ("50056", "CA")
    assert h["type_2_npi"] == ["0000000001", "0000000002", "0000000003"]
    assert h["attestation"] is True and h["attester_name"] == "Leigh Attester"
    assert h["general_contract_provisions"].startswith("When total claim charges exceed $200,000.00")
    r = by_row(rows)
    assert sorted(r) == list(range(4, 49))
    assert r[4]["description"] == "MRI of brain (no contrast)"
    assert r[4]["codes"] == [{"code": "611", "type": "RC"}, {"code": "70551", "type": "CPT"}]
    assert (r[4]["payer_name"], r[4]["plan_name"], r[4]["negotiated_dollar"]) == ("Platform Health Insurance", "PPO", 400.0)
    assert (r[4]["gross_charge"], r[4]["discounted_cash"], r[4]["minimum"], r[4]["maximum"]) == (1200, 1080, 250, 400)
    assert r[14]["negotiated_algorithm"].startswith("Allowed amount = $8,000 + MAX")
    assert (r[14]["median_amount"], r[14]["percentile_10th"], r[14]["percentile_90th"]) == (11000, 8000, 17000)
    assert r[14]["count"] == "1 through 10" and r[14]["methodology"] == "case rate"
    assert r[21]["count"] == "0" and r[21]["median_amount"] is None
    assert r[22]["negotiated_percentage"] == 80 and r[22]["methodology"] == "percent of total billed charges"
    assert r[7]["additional_generic_notes"] == "This service paid at 140% of the OPPS APC rate."
    assert r[20]["codes"] == [{"code": "001", "type": "MS-DRG"}]  # leading zero kept
    assert r[31]["modifiers"] == "50" and r[31]["negotiated_percentage"] == 150 and r[31]["codes"] is None
    assert r[35]["modifiers"] == "50|62" and r[36]["negotiated_percentage"] == 87
    assert (r[37]["drug_unit_of_measurement"], r[37]["drug_type_of_measurement"]) == (1.0, "UN")
    assert r[37]["negotiated_dollar"] == 0.75 and r[40]["drug_type_of_measurement"] == "EA"
    assert r[48]["codes"] == [{"code": "J3420", "type": "HCPCS"}, {"code": "63323-0044-01", "type": "NDC"}]
    assert r[48]["negotiated_dollar"] == 15 and r[48]["plan_name"] == "HMO"


def test_v3_wide(parse):
    s, rows = parse(V3_WIDE)
    assert (s.ok, s.format, s.version, s.encoding) == (True, "csv_wide", "3.0.0", "utf-8-sig")
    assert s.rows_parsed == 45 and s.rows_quarantined == 0
    assert [f.rule for f in s.findings] == ["utf8_bom"]
    assert s.header["type_2_npi"] == ["0000000001", "0000000002", "0000000003"]  # trailing spaces in source
    assert {(r["payer_name"], r["plan_name"]) for r in rows} == {
        ("Platform Health Insurance", "PPO"), ("Region Health Insurance", "HMO")}
    key = {(r["source_row"], r["plan_name"]): r for r in rows}
    assert sorted({r["source_row"] for r in rows}) == list(range(4, 30))
    mri = key[(4, "HMO")]
    assert mri["negotiated_dollar"] == 250 and mri["methodology"] == "fee schedule" and mri["minimum"] == 250
    assert key[(5, "HMO")]["additional_payer_notes"] == "This service paid at 140% of the OPPS APC rate."
    ces = key[(9, "PPO")]
    assert ces["negotiated_algorithm"].startswith("Allowed amount = $8,000") and ces["count"] == "1 through 10"
    assert key[(9, "HMO")]["percentile_10th"] == 3000
    heart = key[(12, "HMO")]
    assert heart["count"] == "0" and heart["additional_payer_notes"].endswith("15-month lookback period.")
    assert key[(13, "HMO")]["negotiated_percentage"] == 75 and key[(13, "HMO")]["median_amount"] == 6502.54
    # Behavioral health days 1-3: only the Region group has values -> one row.
    assert [r["plan_name"] for r in rows if r["source_row"] == 15] == ["HMO"]
    assert key[(20, "PPO")]["additional_payer_notes"].startswith("150% payment adjustment")
    assert key[(22, "HMO")]["modifiers"] == "50|62" and key[(22, "HMO")]["negotiated_percentage"] == 87
    assert key[(29, "PPO")]["codes"][1] == {"code": "63323-0044-01", "type": "NDC"}


def test_v3_json(parse):
    s, rows = parse(V3_JSON)
    assert (s.ok, s.format, s.version, s.encoding) == (True, "json", "3.0.0", "utf-8")
    doc = json.loads(V3_JSON.read_text())
    payer_records = sum(len(sc.get("payers_information") or [1]) for it in doc["standard_charge_information"]
                        for sc in it["standard_charges"])
    mod_records = sum(len(m["modifier_payer_information"]) for m in doc["modifier_information"])
    assert (payer_records, mod_records) == (39, 6)
    assert s.rows_parsed == 45 and s.findings == []
    h = s.header
    assert (h["license_number"], h["license_state"], h["attestation"]) == ("50056", "CA", True)
    assert h["attester_name"] == "Leigh Attester" and h["last_updated_on"] == "2026-04-01"
    assert "Region Health Insurance: When total claim charges exceed $250,000.00" in h["general_contract_provisions"]
    p = by_path(rows)
    r = p["standard_charge_information[0].standard_charges[0].payers_information[1]"]
    assert (r["description"], r["negotiated_dollar"], r["minimum"], r["gross_charge"]) == (
        "MRI of brain (no contrast)", 250, 250, 1200)
    r = p["standard_charge_information[5].standard_charges[0].payers_information[0]"]
    assert r["count"] == "1 through 10" and r["median_amount"] == 11000
    r = p["standard_charge_information[8].standard_charges[0].payers_information[1]"]
    assert r["count"] == "0" and r["methodology"] == "other"
    r = p["standard_charge_information[9].standard_charges[0].payers_information[0]"]
    assert r["negotiated_percentage"] == 80 and r["percentile_90th"] == 16784.22
    r = p["standard_charge_information[14].standard_charges[0].payers_information[1]"]
    assert r["additional_payer_notes"].startswith("Negotiated standard charge without surgery and with rule")
    r = p["standard_charge_information[17].standard_charges[0].payers_information[0]"]
    assert (r["drug_unit_of_measurement"], r["drug_type_of_measurement"], r["negotiated_dollar"]) == (1, "EA", 350)
    r = p["modifier_information[2].modifier_payer_information[1]"]
    assert (r["modifiers"], r["description"], r["setting"], r["plan_name"]) == (
        "50|62", "Bilateral procedure with co-surgeon", "both", "HMO")
    assert r["additional_payer_notes"].startswith("87% of the amount")
    assert all(x["source_row"] is None for x in rows)


def test_v2_tall(parse):
    s, rows = parse(V2_TALL)
    assert (s.ok, s.format, s.version) == (True, "csv_tall", "2.0.0")
    assert s.rows_parsed == 31 and s.findings == []
    h = s.header
    assert h["location_name"] == ["West Mercy Hospital", "West Mercy Surgical Center"]  # v2 hospital_location
    assert h["attestation"] is True and h["last_updated_on"] == "2024-07-01"
    r = by_row(rows)
    assert r[4]["codes"] == [{"code": "470", "type": "MS-DRG"}, {"code": "175869", "type": "LOCAL"}]
    assert r[4]["estimated_amount"] == 22243.34 and r[4]["negotiated_algorithm"] == "MS-DRG"
    assert r[7]["negotiated_percentage"] == 50 and r[7]["estimated_amount"] == 23145.98
    assert r[9]["additional_generic_notes"] == "115% of the state's workers' compensation amount."
    assert r[17]["modifiers"] == "50" and r[17]["negotiated_percentage"] == 150
    assert r[34]["negotiated_dollar"] == 15


def test_v2_wide_cp1252(parse):
    s, rows = parse(V2_WIDE)
    assert (s.ok, s.format, s.version, s.encoding) == (True, "csv_wide", "2.0.0", "cp1252")
    assert s.rows_parsed == 33
    assert "non_utf8_encoding" in [f.rule for f in s.findings]
    key = {(r["source_row"], r["plan_name"]): r for r in rows}
    assert key[(4, "PPO")]["payer_name"] == "Platform_Health_Insurance"  # exactly as in the header
    assert key[(4, "HMO")]["negotiated_percentage"] == 50 and key[(4, "HMO")]["estimated_amount"] == 23145.98
    assert key[(7, "PPO")]["additional_payer_notes"] == "110% of the Medicare fee schedule"
    assert key[(12, "PPO")]["description"] == "Treatment or observation room \u2014 observation room"


def test_v2_json(parse):
    s, rows = parse(V2_JSON)
    assert (s.ok, s.format, s.version) == (True, "json", "2.0.0")
    assert s.rows_parsed == 31
    assert s.header["attestation"] is True and s.header["location_name"][0] == "West Mercy Hospital"
    p = by_path(rows)
    r = p["standard_charge_information[0].standard_charges[0].payers_information[3]"]
    assert r["negotiated_percentage"] == 50 and r["estimated_amount"] == 23145.98
    r = p["standard_charge_information[4].standard_charges[0].payers_information[0]"]
    assert r["drug_unit_of_measurement"] == 1.0  # published as the string "1"
    assert p["modifier_information[0].modifier_payer_information[0]"]["modifiers"] == "50"


@pytest.mark.parametrize("name,fmt,version", [
    ("V3.0.0_Tall_CSV_Format_Template.csv", "csv_tall", "3.0.0"),
    ("V3.0.0_Wide_CSV_Format_Template.csv", "csv_wide", "3.0.0"),
    ("V2.0.0_Tall_CSV_Format_Template.csv", "csv_tall", "2.0.0"),
    ("V2.0.0_Wide_CSV_Format_Template.csv", "csv_wide", "2.0.0"),
])
def test_templates_parse_empty(parse, tmp_path, name, fmt, version):
    s, rows = parse(CMS / name)
    assert s.ok and s.format == fmt and s.version == version and s.rows_parsed == 0 and rows == []
    assert s.header["hospital_name"] is None


def test_output_schema_and_sha(tmp_path):
    from price_pipeline.lib.parse.mrf import parse_to_parquet

    out = tmp_path / "x.parquet"
    parse_to_parquet(V3_TALL, out, file_sha256="abc")
    t = pq.read_table(out)
    assert t.schema.equals(PARSED_SCHEMA)
    assert set(t.column("file_sha256").to_pylist()) == {"abc"}
    assert not (tmp_path / "x.quarantine.parquet").exists()
    json.dumps(parse_to_parquet(V3_JSON, out).as_dict())  # serialisable
