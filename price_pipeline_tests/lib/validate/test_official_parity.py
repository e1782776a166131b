"""Verdicts as the official CMS validator gives them, on the cases issue 15 and issue 18 (item 7) found.

* which rules a file is checked against: as the official command line picks them for the declared
  major version (default), by the declared minor version, or as in force on a date;
* a CSV with lone-CR line endings (the official validator splits records on LF only);
* bytes after the end of a JSON document (the official validator stops at its end);
* a CSV with a header and no data rows (MinRowsError), or with blank data rows only;
* a JSON ``version`` member after the charges array;
* the format label, which is the parser's.

The expected verdicts are the ones ``benchmarks/validator_parity.py`` measured with
``@cmsgov/hpt-validator`` 2.4.0 on the same inputs.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from price_pipeline.cli import main
from price_pipeline.lib.parse.mrf import json_chunks, parse_to_parquet
from price_pipeline.lib.validate import json_check, validate_file
from price_pipeline.lib.validate.rules import (
    cli_version_choice,
    in_force_rules,
    major_rules,
    resolve_version,
    select_rules,
)

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
TALL3 = os.path.join(FIX, "validate", "V3.0.0_Tall_CSV_Format_Example.csv")
JSON3 = os.path.join(FIX, "validate", "V3.0.0_JSON_Format_Example.json")
TALL2 = os.path.join(FIX, "cms", "V2.0.0_Tall_CSV_Format_Example.csv")
JSON2 = os.path.join(FIX, "cms", "V2.0.0_JSON_Format_Example.json")


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _lf(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read().replace(b"\r\n", b"\n")


@pytest.fixture
def chunked(monkeypatch):
    """The chunked Arrow path for JSON on small files (it is used from 8 MB)."""
    monkeypatch.setattr(json_check, "CHUNKED_MIN_BYTES", 0)
    monkeypatch.setattr(json_check, "CHUNK_BYTES", 700)
    monkeypatch.setattr(json_chunks, "READ_BYTES", 512)


# --- rule selection ----------------------------------------------------------------------------
@pytest.mark.parametrize("declared,expected", [
    ("3.0.0", "3.0.0"), ("2.0.0", "2.2.0"), ("2.1.0", "2.2.0"), ("2.2.1", "2.2.0"), ("2", "2.2.0"), ("v3.0", "3.0.0"),
    ("3.0.1", "3.0.0"), (None, "3.0.0"), ("", "3.0.0"), ("abc", "3.0.0"), ("1.1", "3.0.0"), ("4.0.0", "3.0.0"),
])
def test_default_rules_are_the_official_command_lines_choice_for_the_major(declared, expected):
    assert major_rules(declared) == expected
    assert select_rules(declared) == expected


@pytest.mark.parametrize("typed,expected", [
    ("v2.1", "2.1.0"), ("v2.2", "2.2.0"), ("v3.0", "3.0.0"), ("2", "2.2.0"), ("3", "3.0.0"), ("2.2.1", "2.2.0"),
    ("3.0.0", "3.0.0"), ("2.0", "2.0.0"), ("4", None), ("x.y.z", None),
])
def test_cli_version_choice(typed, expected):
    assert cli_version_choice(typed) == expected


@pytest.mark.parametrize("day,expected", [
    (dt.date(2026, 4, 1), "3.0.0"), (dt.date(2026, 3, 31), "2.2.0"), (dt.date(2025, 1, 1), "2.2.0"),
    (dt.date(2024, 12, 31), "2.1.0"), (dt.date(2024, 7, 1), "2.1.0"), (dt.date(2024, 6, 30), "2.0.0"),
])
def test_in_force_dates(day, expected):
    assert in_force_rules(day) == expected
    assert select_rules("2.0.0", "in-force", day) == expected


def test_declared_selection_keeps_the_minor_version():
    assert select_rules("2.0.0", "declared") == resolve_version("2.0.0") == "2.0.0"
    with pytest.raises(ValueError):
        select_rules("3.0.0", "newest")


def test_cms_v2_examples_are_valid_under_the_default_rules():
    # issue 15: the official command line checks a 2.x file against 2.2.0, where CMS's own
    # archived v2.0.0 examples are valid; the 2.0.0 rules reject the tall one (6 CodePairMissingError)
    for path in (TALL2, JSON2):
        r = validate_file(path)
        assert r.valid and r.rules_version == "2.2.0" and r.rules_selection == "major", r.errors_by_rule
    old = validate_file(TALL2, rules="declared")
    assert old.rules_version == "2.0.0" and old.rules_selection == "declared"
    assert old.errors_by_rule == {"cond_code_pair_missing": 6}


def test_in_force_rules_fail_a_file_still_on_a_2x_template():
    r = validate_file(TALL2, rules="in-force", as_of=dt.date(2026, 5, 1))
    assert r.rules_version == "3.0.0" and r.rules_selection == "in-force@2026-05-01" and not r.valid
    assert "header_column_missing" in r.errors_by_rule  # v3 headers (location_name, attester_name...)
    assert validate_file(TALL2, rules="in-force", as_of=dt.date(2025, 6, 1)).valid


def test_forced_version_accepts_the_official_spelling():
    assert validate_file(TALL3, version="v3.0").rules_version == "3.0.0"
    r = validate_file(TALL3, version="x.y.z")
    assert r.errors_by_rule == {"invalid_version": 1}


def test_cli_rules_flags(capsys):
    assert main(["validate", TALL2, "--rules", "declared"]) == 0
    assert main(["validate", TALL2, "--rules", "in-force", "--as-of", "2026-04-01"]) == 0
    assert main(["validate", TALL2]) == 0
    declared, in_force, default = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert (declared["rules_version"], declared["valid"]) == ("2.0.0", False)
    assert (in_force["rules_version"], in_force["rules_selection"], in_force["valid"]) == (
        "3.0.0", "in-force@2026-04-01", False)
    assert (default["rules_version"], default["rules_selection"], default["valid"]) == ("2.2.0", "major", True)


# --- lone-CR line endings -----------------------------------------------------------------------
def test_cr_only_csv_is_min_rows_as_cms_says_and_the_parser_still_reads_it(tmp_path):
    path = _write(tmp_path, "cr.csv", _lf(TALL3).replace(b"\n", b"\r"))
    r = validate_file(path)
    assert not r.valid and r.errors_by_rule == {"min_rows": 1}
    assert r.alerts_by_rule == {"cr_line_endings": 1}
    alert = next(f for f in r.findings if f["rule"] == "cr_line_endings")
    assert "LF only" in alert["message"] and "one record" in alert["message"]
    assert r.format == "csv_tall" and r.version == "3.0.0"  # file facts as the parser reads them
    parsed = parse_to_parquet(path, tmp_path / "cr.parquet")
    assert parsed.ok and parsed.rows_parsed == validate_file(TALL3).rows_checked


def test_lone_cr_between_data_rows_only_is_one_data_row_to_cms(tmp_path):
    lines = _lf(TALL3).split(b"\n")
    path = _write(tmp_path, "mixed.csv", b"\n".join(lines[:3]) + b"\n" + b"\r".join(lines[3:]))
    r = validate_file(path)
    assert r.valid and r.rows_checked == 1 and r.alerts_by_rule == {"cr_line_endings": 1}


def test_lone_cr_in_the_header_rows_gives_the_official_header_errors(tmp_path):
    lines = _lf(TALL3).split(b"\n")
    path = _write(tmp_path, "mixed.csv", b"\r".join(lines[:3]) + b"\r" + b"\n".join(lines[3:]))
    r = validate_file(path)
    # what the official validator reports on this file (rows 1-3 read as one row)
    assert r.errors_by_rule == {"ambiguous_format": 1, "header_value_required": 2, "invalid_date": 1,
                                "rows_not_evaluated": 1}


def test_crlf_and_quoted_cr_are_not_lone_cr(tmp_path):
    data = _lf(TALL3)
    crlf = validate_file(_write(tmp_path, "crlf.csv", data.replace(b"\n", b"\r\n")))
    assert crlf.valid and not crlf.alerts_by_rule
    # a lone CR inside a quoted value is part of the value for both validators
    quoted = data.replace(b"MRI of brain (no contrast)", b'"MRI of brain\r(no contrast)"', 1)
    r = validate_file(_write(tmp_path, "quoted.csv", quoted))
    assert r.valid and not r.alerts_by_rule and r.rows_checked == validate_file(TALL3).rows_checked


# --- bytes after the JSON document ------------------------------------------------------------
@pytest.mark.parametrize("tail,start_shift,named", [
    (b"\nabc xyz", 1, "'abc xyz'"), (b"}", 0, "'}'"), (b"\x00\x00", 0, "'\\x00\\x00'"),
])
@pytest.mark.parametrize("path_kind", ["sequential", "chunked"])
def test_trailing_bytes_are_valid_with_an_alert_naming_them(tmp_path, request, tail, start_shift, named, path_kind):
    if path_kind == "chunked":
        request.getfixturevalue("chunked")
    with open(JSON3, "rb") as f:
        doc = f.read().rstrip()
    r = validate_file(_write(tmp_path, "t.json", doc + tail))
    clean = validate_file(JSON3)
    assert r.valid and r.errors == 0 and r.rows_checked == clean.rows_checked
    assert r.alerts_by_rule == {"trailing_data": 1}
    (alert,) = r.findings
    assert named in alert["message"] and f"from byte {len(doc) + start_shift}" in alert["message"]


def test_trailing_whitespace_is_no_alert_and_a_syntax_error_stays_invalid(tmp_path):
    with open(JSON3, "rb") as f:
        doc = f.read().rstrip()
    assert not validate_file(_write(tmp_path, "ws.json", doc + b"\n \t\r\n")).alerts_by_rule
    broken = validate_file(_write(tmp_path, "bad.json", doc.replace(b'",\n', b'"\n', 1) + b"\nabc"))
    assert not broken.valid and broken.errors_by_rule == {"invalid_json": 1}
    truncated = validate_file(_write(tmp_path, "cut.json", doc[: len(doc) // 2]))
    assert truncated.errors_by_rule == {"invalid_json": 1} and not truncated.alerts_by_rule


def test_json_document_end_with_strings_and_escapes_across_chunks():
    import io

    doc = b'{"a": "x}]\\\\", "b": ["\\"}", {"c": "\\\\\\""}], "d": "{"}'
    assert json.loads(doc)
    for size in (1, 2, 3, 5, 64):
        end, rest = json_check.json_document_end(io.BytesIO(b"  " + doc + b" tail"), chunk_bytes=size)
        assert end == len(doc) + 2
    assert json_check.json_document_end(io.BytesIO(doc[:-1])) is None
    assert json_check.json_document_end(io.BytesIO(b'"just a string"')) is None


# --- a header and no data rows ---------------------------------------------------------------
@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_header_only_csv_is_min_rows(tmp_path, ending):
    head = b"\n".join(_lf(TALL3).split(b"\n")[:3])
    if ending == b"\r\n":
        head = head.replace(b"\n", b"\r\n")
    r = validate_file(_write(tmp_path, "h.csv", head + ending))
    assert not r.valid and r.errors_by_rule == {"min_rows": 1} and r.findings[0]["rule"] == "min_rows"
    assert r.format == "csv_tall" and r.rows_checked == 0


def test_blank_data_rows_follow_the_official_verdict_with_an_alert(tmp_path):
    head = b"\n".join(_lf(TALL3).split(b"\n")[:3])
    r = validate_file(_write(tmp_path, "h.csv", head + b"\n\n"))
    assert r.valid and r.alerts_by_rule == {"no_data_rows": 1}  # the official validator accepts it
    assert "no data rows" in r.findings[0]["message"]


# --- JSON header facts after the items --------------------------------------------------------
@pytest.mark.parametrize("path_kind", ["sequential", "chunked"])
def test_json_version_after_the_items_is_read_and_selects_the_rules(tmp_path, request, path_kind):
    if path_kind == "chunked":
        request.getfixturevalue("chunked")
    with open(JSON3, encoding="utf-8") as f:
        d = json.load(f)
    d.pop("version")
    last = validate_file(_write(tmp_path, "last.json", json.dumps({**d, "version": "3.0.0"}).encode()))
    assert last.version == "3.0.0" and last.rules_version == "3.0.0" and last.valid
    # a 2.x version there selects the 2.2.0 rules, exactly as if it came first
    late = validate_file(_write(tmp_path, "late.json", json.dumps({**d, "version": "2.2.0"}).encode()))
    early = validate_file(_write(tmp_path, "early.json", json.dumps({"version": "2.2.0", **d}).encode()))
    assert late.version == early.version == "2.2.0" and late.rules_version == early.rules_version == "2.2.0"
    assert late.errors_by_rule == early.errors_by_rule and not late.valid
    assert late.rows_checked == early.rows_checked


# --- the format label -------------------------------------------------------------------------
def test_format_label_is_the_parsers(tmp_path):
    import csv
    import io

    rows = list(csv.reader(io.StringIO(_lf(TALL3).decode("utf-8-sig"), newline="")))
    j = [c.strip().lower() for c in rows[2]].index("plan_name")
    for r in rows[2:]:
        del r[j]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path = _write(tmp_path, "no_plan.csv", buf.getvalue().encode())
    r = validate_file(path)
    parsed = parse_to_parquet(path, tmp_path / "no_plan.parquet")
    assert parsed.format == r.format == "csv_tall"  # was csv_wide in the conformance report
    assert "ambiguous_format" in r.errors_by_rule  # the official rules still see no tall/wide layout
