"""Code cleaning, harmonised code systems and primary-code rank (price_pipeline.lib.prices.codes).

Issue 18 items 2 and 3: one code is one cell whatever label a hospital gives it, NDCs with
bracketed suffixes are normalised, and a malformed code never outranks a well-formed one.
"""

from __future__ import annotations

import duckdb
import pytest

from price_pipeline.lib.prices import codes


@pytest.mark.parametrize(
    ("code", "code_type", "expected"),
    [
        ("99213", "HCPCS", ("99213", "CPT", True)),  # five digits labelled HCPCS: Level I (CPT)
        ("99213", "CPT", ("99213", "CPT", True)),
        ("j1100", "CPT", ("J1100", "HCPCS", True)),  # letter + four digits labelled CPT: Level II
        ("0001U", "HCPCS", ("0001U", "CPT", True)),  # PLA code
        ("0500F", "CPT", ("0500F", "CPT", True)),  # category II
        ("12345678", "HCPCS", ("12345678", "HCPCS", False)),  # eight digits: malformed, label kept
        ("43598-426-60 [359385]", "NDC", ("43598042660", "NDC", True)),
        ("0002-1433-80 (vial)", "NDC", ("00002143380", "NDC", True)),
        ("N4 00002-1433-80", "NDC", ("00002143380", "NDC", True)),
        ("4359842660", "NDC", ("4359842660", "NDC", False)),  # bare 10 digits: ambiguous, kept
        ("470", "DRG", ("470", "MS-DRG", True)),  # DRG families
        ("DRG 4", "MS-DRG", ("004", "MS-DRG", True)),
        ("139", "APR-DRG", ("139", "APR-DRG", True)),
        ("12", "TRIS-DRG", ("12", "TRIS-DRG", True)),
        ("450", "RC", ("0450", "RC", True)),
    ],
)
def test_harmonised_code_system(code, code_type, expected):
    assert codes.harmonise_codes([(code, code_type)]) == [expected]


def test_rank_puts_well_formed_codes_first():
    con = duckdb.connect()
    codes.register(con)
    rank = dict(
        con.execute(
            "SELECT c || '/' || t, pp_code_rank(pp_clean_code(c, t), pp_clean_code_type(t)) FROM (VALUES "
            "('12345678', 'HCPCS'), ('0250', 'RC'), ('99213', 'CPT'), ('J1100', 'HCPCS'), "
            "('43598-426-60 [359385]', 'NDC'), ('1234567', 'NDC'), ('X1', 'LOCAL')) v(c, t)"
        ).fetchall()
    )
    # Type priority among well-formed codes, as before.
    assert rank["99213/CPT"] < rank["J1100/HCPCS"] < rank["43598-426-60 [359385]/NDC"] < rank["0250/RC"]
    # Any well-formed code (even LOCAL, which has no shape) before any malformed one.
    assert rank["X1/LOCAL"] < rank["12345678/HCPCS"]
    assert rank["0250/RC"] < rank["1234567/NDC"]


def test_registration_in_an_attached_memory_database_writes_nothing(tmp_path):
    path = str(tmp_path / "w.duckdb")
    with duckdb.connect(path) as con:
        con.execute("ATTACH ':memory:' AS rules")
        con.execute("SET search_path = 'main,rules.main'")
        codes.register(con, schema="rules.main")
        assert con.execute("SELECT pp_code_system('J1100', 'CPT')").fetchall() == [("HCPCS",)]
    with duckdb.connect(path) as con:
        assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'pp_%'").fetchall() == [
            (0,)
        ]
