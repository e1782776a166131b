"""Hostile text (issue 19, items 6-7): NUL characters and lone surrogates in catalog and MRF header
text, registry batches with a record the database refuses, spreadsheet formulas hidden behind
leading whitespace/BOM/controls or in ENUM columns, and lake keys that name the lake root.

The registry tests run on SQLite and on a real PostgreSQL (``postgres_database`` fixture):
PostgreSQL refuses a NUL in text and a value longer than its column, SQLite does not, and both
refuse a lone surrogate (no UTF-8 encoder accepts it).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from price_pipeline.demo.server import DemoCatalogServer, generate_catalog
from price_pipeline.lib.analytics.exports import export_relation, quote_identifier
from price_pipeline.lib.discovery.discover import apply_discovery, discover
from price_pipeline.lib.discovery.sources.cms_hpt import parse_cms_hpt
from price_pipeline.lib.discovery.sources.overrides import parse_overrides
from price_pipeline.lib.lake.storage import LocalLake, S3Lake
from price_pipeline.lib.parse.mrf import parse_to_parquet
from price_pipeline.lib.parse.mrf.findings import FindingCollector
from price_pipeline.lib.parse.mrf.header import json_header
from price_pipeline.lib.prices.normalize import normalize_to_prices
from price_pipeline.lib.registry import Registry
from price_pipeline.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cms"


def _has_bad_text(value) -> bool:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    return "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return request.getfixturevalue("postgres_database")


# -- the cleaning itself ------------------------------------------------------------------------


def test_clean_text_removes_nul_replaces_lone_surrogates_and_joins_pairs():
    from price_pipeline.lib.lake.text import TextFix, clean_json, clean_text

    assert clean_text("plain") == ("plain", 0, 0)
    assert clean_text("West\x00 Mercy\x00") == ("West Mercy", 2, 0)
    assert clean_text("a\ud800b\udfffc") == ("a\ufffdb\ufffdc", 0, 2)
    # a pair written as two JSON escapes is the character it encodes, not two replacements
    assert clean_text("smile \ud83d\ude00") == ("smile \U0001f600", 0, 0)
    cleaned, fixes = clean_json({"name": "x\x00", "files": [{"url": "u\ud800"}], "k\x00": 1, "n": 5})
    assert cleaned == {"name": "x", "files": [{"url": "u\ufffd"}], "k": 1, "n": 5}
    assert sorted(fixes) == [TextFix("files[0].url", 0, 1), TextFix("k (key)", 1, 0), TextFix("name", 1, 0)]
    value = {"a": ["ok"]}
    assert clean_json(value) == (value, []) and clean_json(value)[0] is value  # nothing copied
    deep: list = []
    node = deep
    for _ in range(5000):  # deeper than Python's recursion limit
        node.append([])
        node = node[0]
    node.append("\x00")
    assert clean_json(deep)[1][0].nul == 1


def test_cms_hpt_and_overrides_clean_text_and_say_which_field():
    from price_pipeline.lib.lake.text import TextFix

    entries = parse_cms_hpt(
        b"location-name: West\x00 Mercy\nmrf-url: https://west.example.org/a\x00.csv\n\n"
        b"location-name: Clean Clinic\nmrf-url: https://clean.example.org/b.csv\n"
    )
    assert [(e.location_name, e.mrf_url) for e in entries] == [
        ("West Mercy", "https://west.example.org/a.csv"),
        ("Clean Clinic", "https://clean.example.org/b.csv"),
    ]
    assert entries[0].text_fixes == (TextFix("location-name", 1, 0), TextFix("mrf-url", 1, 0))
    assert entries[1].text_fixes == ()
    claims = parse_overrides(
        json.loads('{"hospital": [{"ccn": "050901", "name": "Bad\\ud800Name", "city": "X\\u0000"}]}')
    )
    assert claims[0].name == "Bad\ufffdName" and claims[0].city == "X"
    assert set(claims[0].text_fixes) == {TextFix("name", 0, 1), TextFix("city", 1, 0)}
    assert "text_fixes" not in claims[0].payload()  # the claim digest does not change


# -- one bad catalog value never blocks the other hospitals ------------------------------------


def test_bad_catalog_values_from_every_source_are_cleaned_recorded_and_block_nothing(
    tmp_path, registry_url
):
    hospitals, files = generate_catalog(12)
    hospitals[0]["name"] = "West\x00 Mercy Hospital"  # served as JSON "\u0000"
    hospitals[1]["address"] = "1 Main St\ud800"  # served as JSON "\ud800"
    hospitals[2]["cms_hpt"] = (
        b"location-name: " + hospitals[2]["name"].encode() + b"\x00\n"
        b"mrf-url: https://example.org/x\x00_standardcharges.csv\n"
    )
    overrides = tmp_path / "overrides.json"
    # the overrides file names hospital 3 by its CCN and renames it with a lone surrogate
    overrides.write_text(json.dumps({"hospital": [{"ccn": hospitals[3]["ccn"], "name": "Renamed\ud800"}]}))
    with DemoCatalogServer(hospitals=hospitals, files=files) as server:
        settings = Settings(
            data_dir=tmp_path,
            lake_url=str(tmp_path / "lake"),
            registry_url=registry_url,
            warehouse_path=tmp_path / "w.duckdb",
            catalog_url=server.catalog_url,
            allowed_private_hosts=(f"127.0.0.1:{server.port}",),
            http_timeout_seconds=5,
            host_max_requests_per_second=0,
            host_max_concurrency=16,
            overrides_path=str(overrides),
        )
        registry = Registry(registry_url)
        try:
            result = discover(settings, registry)
            counts = apply_discovery(registry, result)
            stored = registry.list_hospitals()
            findings = registry.discovery_findings()
        finally:
            registry.dispose()
    assert len(stored) == 12 and counts["rejected"] == 0 and counts["records_rejected"] == 0
    assert not any(_has_bad_text(row) for row in stored)
    names = {row["name"] for row in stored}
    assert "West Mercy Hospital" in names and "Renamed\ufffd" in names
    assert any(row["address"] == "1 Main St\ufffd" for row in stored)
    by_source = {(f["source"], f["field"]) for f in findings if f["rule"] == "text_cleaned"}
    assert {("catalog_api", "name"), ("catalog_api", "address"), ("overrides", "name")} <= by_source
    assert {("cms_hpt", "location-name"), ("cms_hpt", "mrf-url")} <= by_source
    assert counts["text_cleaned"] == len([f for f in findings if f["rule"] == "text_cleaned"])
    # each finding names the hospital the claim was reconciled into
    keys = {row["hospital_key"] for row in stored}
    assert all(f["hospital_key"] in keys for f in findings)
    west = next(f for f in findings if f["source"] == "catalog_api" and f["field"] == "name")
    assert west["message"] == "removed 1 NUL character" and west["severity"] == "warning"


def test_a_refused_record_is_reported_and_the_rest_of_the_batch_is_stored(registry_url):
    registry = Registry(registry_url)
    try:
        postgres = registry.engine.dialect.name == "postgresql"
        good = [{"hospital_key": f"good-{i}", "name": f"Good {i}", "state": "CA"} for i in range(40)]
        bad = [
            {"hospital_key": "bad-surrogate", "name": "x\ud800"},  # refused by every driver
            {"hospital_key": "bad-nul", "name": "x\x00y"},  # refused by PostgreSQL only
            {"hospital_key": "bad-long-state", "name": "Long", "state": "X" * 40},  # String(8): PostgreSQL
        ]
        rows = good[:20] + bad + good[20:]
        counts = registry.upsert_hospitals(rows, source="catalog_api")
        expected_bad = {"bad-surrogate", "bad-nul", "bad-long-state"} if postgres else {"bad-surrogate"}
        stored = {row["hospital_key"] for row in registry.list_hospitals()}
        assert {g["hospital_key"] for g in good} <= stored and not (expected_bad & stored)
        assert counts == {"new": len(rows) - len(expected_bad), "seen": 0, "rejected": len(expected_bad)}
        # the caller gets each refused record with the reason
        rejected: list = []
        registry.upsert_hospitals(rows, source="catalog_api", rejected=rejected)
        assert {r.hospital_key for r in rejected} == expected_bad
        assert all(r.table == "hospitals" and r.error for r in rejected)
        surrogate = next(r for r in rejected if r.hospital_key == "bad-surrogate")
        assert "UnicodeEncodeError" in surrogate.error
        # the good hospitals' claims were written with them; the refused ones' were not
        assert len(registry.claims_for("good-0")) == 1 and registry.claims_for("bad-surrogate") == []
        # an update batch isolates the same way
        again: list = []
        counts = registry.upsert_hospitals(
            [{**good[0], "name": "Renamed"}, {**good[1], "name": "Bad\ud800"}], source=None, rejected=again
        )
        assert counts == {"new": 0, "seen": 1, "rejected": 1} and [r.hospital_key for r in again] == ["good-1"]
        assert registry.hospital("good-0")["name"] == "Renamed" and registry.hospital("good-1")["name"] == "Good 1"
        # the other batch writes of a discovery pass isolate too
        file_rejects: list = []
        new = registry.ensure_file_states(
            [("good-0", "https://a.example/ok.csv"), ("good-0", "https://a.example/\ud800.csv"),
             ("good-1", "https://b.example/" + "x" * 3000)],
            rejected=file_rejects,
        )
        assert new == (1 if postgres else 2) and len(file_rejects) == (2 if postgres else 1)
        id_rejects: list = []
        registry.record_identifiers([("npi", "1234567893", "good-0"), ("npi", "9\ud800", "good-1")],
                                    rejected=id_rejects)
        assert registry.identifiers() == {("npi", "1234567893"): "good-0"} and len(id_rejects) == 1
        crawl_rejects: list = []
        registry.record_site_crawls(
            [{"website": "https://ok.example", "hospital_key": "good-0", "status": "found"},
             {"website": "https://bad.example", "hospital_key": "good-1", "status": "error", "error": "e\ud800"}],
            rejected=crawl_rejects,
        )
        assert set(registry.site_crawls()) == {"https://ok.example"} and len(crawl_rejects) == 1
    finally:
        registry.dispose()


def test_errors_that_are_not_about_a_record_still_raise():
    from price_pipeline.lib.registry import _is_record_error

    statement_error = sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
    assert not _is_record_error(statement_error)
    assert not _is_record_error(RuntimeError("bug"))
    assert _is_record_error(sa.exc.DataError("INSERT", {}, Exception("value too long")))
    assert _is_record_error(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert _is_record_error(ValueError("A string literal cannot contain NUL (0x00) characters."))


# -- MRF header text --------------------------------------------------------------------------


def test_json_mrf_header_text_is_cleaned_with_a_finding_per_field(tmp_path):
    doc = json.loads((FIXTURES / "V3.0.0_JSON_Format_Example.json").read_text())
    doc["hospital_name"] = "West\u0000 Mercy"
    doc["location_name"] = ["Main\u0000 Campus", "Clinic"]
    doc["license_information"]["license_number"] = "50056\ud800"
    src = tmp_path / "h.json"
    src.write_text(json.dumps(doc))  # JSON escapes \u0000 and \ud800
    summary = parse_to_parquet(src, tmp_path / "h.parquet", file_sha256="a" * 64)
    assert summary.ok and summary.rows_parsed > 0
    assert summary.header["hospital_name"] == "West Mercy"
    assert summary.header["location_name"] == ["Main Campus", "Clinic"]
    assert not _has_bad_text(summary.header)
    cleaned = {f.column: f for f in summary.findings if f.rule == "text_cleaned"}
    # (ijson's C backend already turns a lone surrogate into "?"; json_header cleans any backend's)
    assert {"hospital_name", "location_name[0]"} <= set(cleaned)
    assert cleaned["hospital_name"].severity == "warning" and "NUL" in cleaned["hospital_name"].message
    fc = FindingCollector()
    header = json_header({"hospital_name": "X\ud800", "license_information": {"license_number": "1\x00"}}, fc)
    assert (header["hospital_name"], header["license_number"]) == ("X\ufffd", "1")
    assert {(f.column, f.message) for f in fc.findings} == {
        ("hospital_name", "file header hospital_name: replaced 1 lone surrogate with U+FFFD"),
        ("license_number", "file header license_number: removed 1 NUL character"),
    }


def test_csv_mrf_header_text_is_cleaned(tmp_path):
    lines = (FIXTURES / "V3.0.0_Tall_CSV_Format_Example.csv").read_bytes().split(b"\n")
    # A NUL in the first 4 KB makes the file "binary"; a long first header value puts it past that.
    names, values = lines[0], lines[1]
    lines[0] = b"financial_aid_policy," + names
    lines[1] = b'"' + b"p" * 5000 + b'",' + values.replace(b"West Mercy", b"West\x00 Mercy", 1)
    src = tmp_path / "h.csv"
    src.write_bytes(b"\n".join(lines))
    summary = parse_to_parquet(src, tmp_path / "h.parquet", file_sha256="a" * 64)
    assert summary.ok and summary.rows_parsed > 0
    assert summary.header["hospital_name"] == "West Mercy Hospital"
    assert [f.column for f in summary.findings if f.rule == "text_cleaned"] == ["hospital_name"]


def test_nul_in_a_price_row_value_goes_through_parquet_prices_and_duckdb(tmp_path):
    """Checked, not changed: row values keep a NUL (Parquet, DuckDB and CSV hold it)."""
    lines = (FIXTURES / "V3.0.0_Tall_CSV_Format_Example.csv").read_bytes().split(b"\n")
    body = [line for line in lines[3:] if line.strip()] * 20
    body[-1] = b"Bad\x00Row" + body[-1][body[-1].index(b","):]  # far past the 4 KB sniff window
    src = tmp_path / "rows.csv"
    src.write_bytes(b"\n".join(lines[:3] + body) + b"\n")
    summary = parse_to_parquet(src, tmp_path / "rows.parquet", file_sha256="b" * 64)
    assert summary.ok and not [f for f in summary.findings if f.severity == "error"]
    assert "Bad\x00Row" in pq.read_table(tmp_path / "rows.parquet").column("description").to_pylist()
    rows = normalize_to_prices(
        [(tmp_path / "rows.parquet", summary.header, "b" * 64)], tmp_path / "prices.parquet", hospital_key="h"
    )
    assert rows > 0
    con = duckdb.connect()
    hits = con.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE description = 'Bad' || chr(0) || 'Row'",
        [str(tmp_path / "prices.parquet")],
    ).fetchone()[0]
    assert hits > 0


# -- formula-safe CSV -----------------------------------------------------------------------------

UNSAFE_CELLS = [
    "=1+1",
    "+1",
    "@SUM(A1)",
    "-2",  # text, not a number column: neutralised as before
    "\n=1+1",  # leading LF
    "\ufeff=HYPERLINK(\"x\")",  # leading BOM
    "  @cmd",  # leading spaces
    "\u00a0=1",  # no-break space
    "\u200b+1",  # zero-width space
    "\x00=1",  # control character
    "\t-1",
    "\r",
    "＝1",  # full-width equals
]
SAFE_CELLS = ["plain", "a=1", " text", "[=x, y]", ""]


def test_csv_export_neutralises_every_text_like_column_and_the_check_agrees(tmp_path):
    con = duckdb.connect()
    con.execute("CREATE TYPE kind AS ENUM ('=cmd|'' /C calc''!A0', 'ok')")
    con.execute("CREATE TABLE cells (n INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO cells VALUES (?, ?)", list(enumerate(UNSAFE_CELLS + SAFE_CELLS)))
    con.execute(
        "CREATE TABLE m AS SELECT n, v, CASE WHEN n = 0 THEN '=cmd|'' /C calc''!A0' ELSE 'ok' END::kind AS k,"
        " [v, 'x'] AS l, -5.5 - n AS amount FROM cells"
    )
    export_relation(con, quote_identifier("m"), tmp_path, "m")
    exported = con.execute(
        "SELECT v, k, amount, l FROM read_csv(?, all_varchar=true, header=true) ORDER BY n::INTEGER",
        [str(tmp_path / "m.csv")],
    ).fetchall()
    for (value, kind, amount, listed), original in zip(exported, UNSAFE_CELLS + SAFE_CELLS, strict=True):
        assert kind in ("ok", "'=cmd|' /C calc'!A0") and listed.startswith("[")  # ENUM; list as text
        if original in UNSAFE_CELLS:
            assert value == "'" + original, repr(original)
        else:
            assert value == (original or None), repr(original)
        assert not amount.startswith("'")  # numbers stay numbers
    assert exported[0][1] == "'=cmd|' /C calc'!A0"  # the ENUM column
    from price_pipeline.lib.analytics.exports import count_formula_cells

    assert count_formula_cells(con, tmp_path / "m.csv") == 0
    # the check's rule is the export's rule: every unsafe cell is counted in an unneutralised CSV
    con.execute("COPY (SELECT v FROM cells ORDER BY n) TO ? (FORMAT csv, HEADER true)", [str(tmp_path / "raw.csv")])
    assert count_formula_cells(con, tmp_path / "raw.csv") == len(UNSAFE_CELLS)
    # a column of plain numbers is a number column, as in the export: negatives are not formulas
    con.execute("COPY (SELECT amount FROM m) TO ? (FORMAT csv, HEADER true)", [str(tmp_path / "numbers.csv")])
    assert count_formula_cells(con, tmp_path / "numbers.csv") == 0
    con.execute("COPY (SELECT k FROM m) TO ? (FORMAT csv, HEADER true)", [str(tmp_path / "enum.csv")])
    assert count_formula_cells(con, tmp_path / "enum.csv") == 1
    parquet = con.execute("SELECT v FROM read_parquet(?) ORDER BY n", [str(tmp_path / "m.parquet")]).fetchall()
    assert parquet[4][0] == "\n=1+1"  # Parquet keeps the value as published


# -- lake keys --------------------------------------------------------------------------------------

BAD_KEYS = ["", ".", "./", "raw/..", "raw/../..", "a/./b", "a//b", "/etc/passwd", "..", "raw\\..\\x", "a\x00b"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_local_lake_refuses_keys_that_do_not_name_an_object_inside_it(tmp_path, key):
    lake = LocalLake(tmp_path / "lake")
    source = tmp_path / "src.bin"
    source.write_bytes(b"x")
    before = sorted(p.name for p in tmp_path.iterdir())
    for write in (lambda: lake.put_bytes(b"x", key), lambda: lake.put_file(source, key),
                  lambda: lake.move_file(source, key)):
        with pytest.raises(ValueError, match="lake key"):
            write()
    for read in (lake.exists, lake.get_bytes, lake.delete, lake.size):
        with pytest.raises(ValueError, match="lake key"):
            read(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing beside the lake
    assert list((tmp_path / "lake").iterdir()) == []
    assert source.exists()


def test_lake_listing_and_uris_still_accept_the_whole_lake_and_folders(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.put_bytes(b"1", "prices/hospital_key=a/prices.parquet")
    assert lake.list_keys("") == lake.list_keys("prices/") == ["prices/hospital_key=a/prices.parquet"]
    assert lake.uri("exports").endswith("lake/exports")
    with pytest.raises(ValueError):
        lake.list_keys("../")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_s3_lake_refuses_the_same_keys(moto_s3, tmp_path, key):
    bucket = f"keys-{abs(hash(key)) % 10**8}-{tmp_path.name.lower().replace('_', '-')[:20]}"
    client = boto3.client("s3", endpoint_url=moto_s3)
    client.create_bucket(Bucket=bucket)
    lake = S3Lake(f"s3://{bucket}/prefix", endpoint_url=moto_s3)
    source = tmp_path / "src.bin"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="lake key"):
        lake.put_bytes(b"x", key)
    with pytest.raises(ValueError, match="lake key"):
        lake.put_file(source, key)
    with pytest.raises(ValueError, match="lake key"):
        lake.exists(key)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
