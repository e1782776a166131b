"""Regression tests for broken inputs: each records the expected finding and never raises."""

from __future__ import annotations

import gzip
import zipfile

import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.parse.mrf import parse_to_parquet, quarantine_path

from ..conftest import BROKEN

EXPECTED_SMALL = [
    (4, "Aetna", 400.0, None),
    (5, "Cigna", 250.0, None),
    (6, "Aetna", None, 80.0),
]


def rules(s):
    return [f.rule for f in s.findings]


def small_values(rows):
    return [(r["source_row"], r["payer_name"], r["negotiated_dollar"], r["negotiated_percentage"]) for r in rows]


@pytest.mark.parametrize("name,rule,encoding,compression", [
    ("small_tall.csv", None, "utf-8", None),
    ("bom_utf8.csv", "utf8_bom", "utf-8-sig", None),
    ("utf16.csv", "utf16_encoding", "utf-16-le", None),
    ("cp1252.csv", "non_utf8_encoding", "cp1252", None),
    ("crlf.csv", None, "utf-8", None),
    ("cr_only.csv", None, "utf-8", None),
    ("quoted_newlines_header.csv", None, "utf-8", None),
    ("small_tall.csv.gz", None, "utf-8", "gzip"),
    ("gzip_named.json", None, "utf-8", "gzip"),  # content, not the name, decides
    ("macosx_junk.zip", "zip_junk_members", "utf-8", "zip"),
])
def test_same_data_any_encoding(parse, name, rule, encoding, compression):
    s, rows = parse(BROKEN / name)
    assert s.ok and s.format == "csv_tall"
    assert (s.encoding, s.compression) == (encoding, compression)
    if rule:
        assert rule in rules(s)
    assert small_values(rows) == EXPECTED_SMALL
    assert rows[2]["description"] == "Café visit, level 3"
    assert s.header["hospital_name"] == "Small Test Hospital"
    assert s.header["last_updated_on"] == "2025-07-01"  # 7/1/2025


def test_quoted_newlines_in_header_rows(parse):
    s, _ = parse(BROKEN / "quoted_newlines_header.csv")
    assert s.header["hospital_address"] == ["1 Main St\nSuite 2\r\nAlbany, NY 12207"]
    assert s.header["attester_name"] == "Ann\nAttester"


def test_zip_picks_largest_real_member(parse):
    s, _ = parse(BROKEN / "macosx_junk.zip")
    assert "zip_multiple_members" in rules(s)  # readme.txt and the csv


@pytest.mark.parametrize("name,rule", [("html_page.csv", "html_instead_of_data"), ("empty.csv", "empty_file")])
def test_not_data(parse, tmp_path, name, rule):
    s, rows = parse(BROKEN / name)
    assert not s.ok and s.format is None and rows == [] and rule in rules(s)


def test_garbage_and_xml(parse, tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"\x00\x01\x02garbage\xff" * 100)
    s, _ = parse(p)
    assert not s.ok and "not_an_mrf" in rules(s)
    p.write_text("a,b,c\n1,2,3\n")
    s, _ = parse(p)
    assert not s.ok and "not_an_mrf" in rules(s)
    p.write_text('{"hello": [1, 2')
    s, _ = parse(p)
    assert s.format == "json" and "json_syntax_error" in rules(s)


def test_short_and_long_rows(parse, tmp_path):
    s, rows = parse(BROKEN / "short_rows.csv")
    assert s.ok and s.rows_parsed == 4 and s.rows_quarantined == 1
    found = {(f.rule, f.row) for f in s.findings}
    assert ("short_row", 5) in found and ("long_row", 7) in found and ("blank_rows", None) in found
    by = {r["source_row"]: r for r in rows}
    assert sorted(by) == [4, 5, 6, 9]  # row 8 is blank, row 7 quarantined
    assert by[5]["negotiated_dollar"] == 250 and by[5]["methodology"] is None
    assert by[9]["payer_name"] == "Cigna"
    q = pq.read_table(quarantine_path(tmp_path / "out1.parquet")).to_pylist()
    assert q[0]["source_row"] == 7 and q[0]["raw"].startswith("x,1,2") and "27 fields" in q[0]["reason"]


def test_dirty_numbers(parse):
    s, rows = parse(BROKEN / "dirty_numbers.csv")
    by = {r["source_row"]: r for r in rows}
    assert by[4]["gross_charge"] == 1234.0 and by[4]["discounted_cash"] == 1080.0
    assert by[4]["negotiated_dollar"] is None and by[4]["minimum"] is None and by[4]["maximum"] == 400
    assert by[5]["negotiated_percentage"] == 50.0 and by[5]["gross_charge"] is None
    assert by[6]["gross_charge"] is None and by[6]["negotiated_dollar"] == 999999999
    found = {(f.rule, f.row, f.column) for f in s.findings}
    assert ("non_numeric_amount", 6, "standard_charge|gross") in found
    assert ("nine_nines_placeholder", 6, "standard_charge|negotiated_dollar") in found
    assert len(found) == 2  # N/A, NA, - are blanks, not findings


def test_odd_header_case_and_spaces(parse):
    s, rows = parse(BROKEN / "odd_header_wide.csv")
    assert s.ok and s.format == "csv_wide" and s.header["license_state"] == "NY"
    assert s.header["hospital_name"] == "Small Test Hospital"
    (r,) = rows
    assert (r["payer_name"], r["plan_name"]) == ("Aetna Health", "Open Access PPO")
    assert (r["negotiated_dollar"], r["median_amount"], r["methodology"]) == (400, 390, "fee schedule")
    assert r["codes"] == [{"code": "70551", "type": "CPT"}]


def test_pipes_inside_payer_name(parse, tmp_path):
    p = tmp_path / "w.csv"
    p.write_text((BROKEN / "odd_header_wide.csv").read_text().replace("Aetna Health |", "Aetna | Health |"))
    s, rows = parse(p)
    assert "ambiguous_payer_plan" in rules(s)
    assert (rows[0]["payer_name"], rows[0]["plan_name"]) == ("Aetna", "Health|Open Access PPO")


def test_invalid_utf8_after_sample_restarts_as_cp1252(parse, tmp_path):
    text = (BROKEN / "small_tall.csv").read_text()
    filler = "MRI of brain,70551,CPT,611,RC,outpatient,,,1200,1080,Aetna,PPO,,400,,,,,,,fee schedule,250,400,\n"
    p = tmp_path / "late.csv"
    p.write_bytes((text + filler * 20000).encode() + "Caf\u00e9,1,CPT,,,both,,,5,4,,,,,,,,,,,,,,\n".encode("cp1252"))
    s, rows = parse(p)
    assert s.encoding == "cp1252" and "non_utf8_encoding" in rules(s)
    assert s.rows_parsed == 20004 and rows[-1]["description"] == "Café"


def test_invalid_utf8_next_to_valid_non_ascii_in_one_batch(parse, tmp_path):
    # Arrow reads without its per-value UTF-8 check; the parser's own check must still see a
    # cp1252 byte in a column whose other values hold valid multi-byte UTF-8.
    text = (BROKEN / "small_tall.csv").read_text()
    filler = "Café visit,70551,CPT,611,RC,outpatient,,,1200,1080,Aetna,PPO,,400,,,,,,,fee schedule,250,400,\n"
    p = tmp_path / "mixed.csv"
    bad = "MRI,1,CPT,,,both,,,5,4,Señor Health,PPO,,,,,,,,,,,,\n".encode("cp1252")
    p.write_bytes((text + filler * 20000).encode() + bad + (filler * 10).encode())
    s, rows = parse(p)
    assert s.encoding == "cp1252" and "non_utf8_encoding" in rules(s)
    assert s.rows_parsed == 20014 and rows[20003]["payer_name"] == "Señor Health"
    assert rows[20004]["description"] == "CafÃ© visit"  # UTF-8 bytes read as cp1252, none lost


def test_short_row_with_cp1252_bytes_restarts_as_cp1252(parse, tmp_path):
    # pyarrow cannot decode such a row for invalid_row_handler, so Arrow stops the parse there;
    # that must restart as cp1252 (the row kept as a padded short row), not lose the file's rest.
    text = (BROKEN / "small_tall.csv").read_text()
    filler = "MRI of brain,70551,CPT,611,RC,outpatient,,,1200,1080,Aetna,PPO,,400,,,,,,,fee schedule,250,400,\n"
    p = tmp_path / "short_cp1252.csv"
    p.write_bytes((text + filler * 20000).encode() + "Caf\u00e9 short,1,CPT\n".encode("cp1252") + (filler * 3).encode())
    s, rows = parse(p)
    assert s.ok and s.encoding == "cp1252"
    assert "non_utf8_encoding" in rules(s) and "short_row" in rules(s) and "csv_parse_error" not in rules(s)
    assert s.rows_parsed == 20007
    short = [r for r in rows if r["description"] == "Caf\u00e9 short"]
    assert len(short) == 1 and short[0]["source_row"] == 20007


def test_record_longer_than_the_parse_block(parse, tmp_path):
    # A record must fit in one Arrow block: a 5 MB note makes the parser read again with
    # bigger blocks instead of stopping ("straddling object"), and every row is kept.
    text = (BROKEN / "small_tall.csv").read_text()
    note = "x" * 5_000_000
    p = tmp_path / "long.csv"
    p.write_text(text + f'Long note item,99213,CPT,,,outpatient,,,10,9,,,,,,,,,,,,,,"{note}"\n' + text.splitlines(True)[3])
    s, rows = parse(p)
    assert s.ok and "long_record" in rules(s) and "csv_parse_error" not in rules(s)
    assert s.rows_parsed == 5
    assert rows[3]["description"] == "Long note item" and rows[3]["additional_generic_notes"] == note
    assert small_values(rows[:3]) == EXPECTED_SMALL and rows[4]["source_row"] == 8


def test_decompression_caps(parse, tmp_path):
    p = tmp_path / "bomb.csv.gz"
    base = (BROKEN / "small_tall.csv").read_bytes()
    p.write_bytes(gzip.compress(base + b"\n" * 5_000_000))
    s, _ = parse(p, max_ratio=50, ratio_grace_bytes=1 << 20)
    assert not s.ok and "decompression_limit" in rules(s)
    z = tmp_path / "big.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", base + b"\n" * 3_000_000)
    s, _ = parse(z, max_decompressed_bytes=1_000_000)
    assert not s.ok and "decompression_limit" in rules(s)


def test_xlsx_workbook(parse, tmp_path):
    pytest.importorskip("python_calamine")
    # Minimal xlsx written by hand (no writer library needed): inline strings and numbers.
    rows = [line.split(",") for line in [
        "hospital_name,last_updated_on,version", "Sheet Hospital,2025-01-02,3.0.0",
        "description,code|1,code|1|type,setting,standard_charge|gross,payer_name,plan_name,"
        "standard_charge|negotiated_dollar,standard_charge|methodology",
        "X-ray,71046,CPT,outpatient,#200,Aetna,PPO,#150.5,fee schedule"]]

    def cell(ref, v):
        if v.startswith("#"):
            return f'<c r="{ref}"><v>{v[1:]}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{v}</t></is></c>'

    sheet = "".join(
        f'<row r="{i + 1}">' + "".join(cell(f"{chr(65 + j)}{i + 1}", v) for j, v in enumerate(r)) + "</row>"
        for i, r in enumerate(rows))
    p = tmp_path / "book.csv"  # misleading name on purpose
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
        zf.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        zf.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
        zf.writestr("xl/_rels/workbook.xml.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
        zf.writestr("xl/worksheets/sheet1.xml", f'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{sheet}</sheetData></worksheet>')
    s, out = parse(p)
    assert "xlsx_not_cms_format" in rules(s)
    assert s.ok and s.rows_parsed == 1 and s.header["hospital_name"] == "Sheet Hospital"
    assert out[0]["source_row"] == 4 and out[0]["negotiated_dollar"] == 150.5 and out[0]["gross_charge"] == 200


def test_findings_are_capped(parse, tmp_path):
    text = (BROKEN / "small_tall.csv").read_text()
    bad = "Bad,1,CPT,,,both,,,oops,,,,,,,,,,,,,,,\n"
    p = tmp_path / "many.csv"
    p.write_text(text + bad * 50)
    s, _ = parse(p, max_findings=5)
    assert len(s.findings) == 5 and s.findings_total == 50


def test_json_header_after_charges(parse, tmp_path):
    import json

    doc = json.loads((BROKEN.parent / "cms" / "V3.0.0_JSON_Format_Example.json").read_text())
    sci = doc.pop("standard_charge_information")
    reordered = {"standard_charge_information": sci * 40, **doc}  # header after a ~200 KB array
    p = tmp_path / "late_header.json"
    p.write_text(json.dumps(reordered, indent=1))
    for full_below in (0, 1 << 30):  # tail heuristic and plain second pass must agree
        s, rows = parse(p, json_full_parse_below=full_below)
        assert s.ok and s.header["hospital_name"] == "West Mercy Hospital" and s.version == "3.0.0"
        assert s.header["license_state"] == "CA"
        assert s.rows_parsed == 39 * 40 + 6


def test_unknown_version(parse, tmp_path):
    p = tmp_path / "v.csv"
    p.write_text((BROKEN / "small_tall.csv").read_text().replace(",3.0.0,", ",9.9,"))
    s, _ = parse(p)
    assert s.ok and "unknown_version" in rules(s)


def test_unwritable_output_raises(tmp_path):
    with pytest.raises(OSError):
        parse_to_parquet(BROKEN / "small_tall.csv", tmp_path / "missing-dir" / "x.parquet")
