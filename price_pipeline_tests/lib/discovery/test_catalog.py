"""Catalog client against the demo server: pagination, filters, failure modes, keys, fingerprints."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline.lib.discovery.catalog import (
    CatalogError,
    CatalogFile,
    CatalogHospital,
    fetch_catalog,
    files_fingerprint,
    hospital_key,
    parse_ein_npi_from_filename,
)

KEY_RE = re.compile(r"^[a-z0-9_-]{1,64}$")


@pytest.fixture
def server():
    with DemoCatalogServer() as srv:
        yield srv


def no_sleep(_seconds: float) -> None:
    pass


def catalog_requests(server):
    return [q for q in server.requests if q.path == "/api/v1/hospitals"]


def test_walks_every_page(server):
    hospitals = fetch_catalog(server.catalog_url, per_page=3)
    assert len(hospitals) == 10 and len({h.id for h in hospitals}) == 10
    assert [q.query for q in catalog_requests(server)] == [f"page={p}&per_page=3" for p in (1, 2, 3, 4)]
    h = hospitals[0]
    assert (h.id, h.ccn, h.name, h.state) == ("demo-001", "050901", "West Mercy Hospital", "CA")
    assert h.files[0].url.startswith(server.url + "/files/") and h.files[0].size and h.files[0].sha256
    assert h.files[0].filename == "951234567_west-mercy-hospital_standardcharges.csv"
    assert fetch_catalog(server.catalog_url) == hospitals  # one page, same result


def test_state_filter(server):
    hospitals = fetch_catalog(server.catalog_url, state="CA", per_page=1)
    assert [h.state for h in hospitals] == ["CA", "CA"]
    with pytest.raises(CatalogError, match="0 hospitals"):
        fetch_catalog(server.catalog_url, state="ZZ")


def test_empty_catalog_is_an_error(server):
    server.set_hospitals([])
    with pytest.raises(CatalogError, match="0 hospitals"):
        fetch_catalog(server.catalog_url)


def test_total_but_nothing_listed_is_an_error(server):
    body = json.dumps({"page": 1, "per_page": 100, "total": 10, "total_pages": 1, "hospitals": []}).encode()
    server.add_fault(server.catalog_url, Fault.http_status(200, body=body))
    with pytest.raises(CatalogError, match="lists no hospital"):
        fetch_catalog(server.catalog_url)


def test_fewer_hospitals_than_announced_is_an_error(server):
    good = httpx.get(server.catalog_url, params={"per_page": 100}, trust_env=False).json()
    good["total"] = 12
    server.add_fault(server.catalog_url, Fault.http_status(200, body=json.dumps(good).encode()))
    with pytest.raises(CatalogError, match="announced 12"):
        fetch_catalog(server.catalog_url)


def test_transient_errors_are_retried(server):
    server.add_fault(server.catalog_url, Fault.http_status(503, times=2))
    assert len(fetch_catalog(server.catalog_url, sleep=no_sleep)) == 10
    server.add_fault(server.catalog_url, Fault.rate_limited(1, times=1))
    assert len(fetch_catalog(server.catalog_url, sleep=no_sleep)) == 10


def test_persistent_errors_raise(server):
    server.add_fault(server.catalog_url, Fault.http_status(503, times=None))
    with pytest.raises(CatalogError, match="after 2 attempts"):
        fetch_catalog(server.catalog_url, sleep=no_sleep, max_attempts=2)
    server.clear_faults()
    server.add_fault(server.catalog_url, Fault.http_status(404))
    with pytest.raises(CatalogError, match="HTTP 404"):
        fetch_catalog(server.catalog_url, sleep=no_sleep)


def test_connection_refused_raises_catalog_error():
    srv = DemoCatalogServer().start()
    url = srv.catalog_url
    srv.stop()
    with pytest.raises(CatalogError):
        fetch_catalog(url, sleep=no_sleep, max_attempts=2)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"page": 1, "total": 3, "total_pages": 1}',
        b'{"page": 1, "total": "3", "total_pages": 1, "hospitals": [{"id": "x", "name": "y"}]}',
        b'{"page": 1, "total": 1, "total_pages": 1, "hospitals": [{"id": "x"}]}',
        b'{"page": 1, "total": 1, "total_pages": 1, "hospitals": [{"id": "x", "name": "y", "files": [{}]}]}',
        b'{"page": 1, "total": 1, "total_pages": 1, "hospitals": ["x"]}',
    ],
)
def test_malformed_pages_raise(server, body):
    server.add_fault(server.catalog_url, Fault.http_status(200, body=body))
    with pytest.raises(CatalogError):
        fetch_catalog(server.catalog_url, sleep=no_sleep)


def test_hospital_keys_of_the_demo_catalog_are_unique_and_valid(server):
    keys = [hospital_key(h) for h in fetch_catalog(server.catalog_url)]
    assert len(set(keys)) == 10 and all(KEY_RE.match(k) for k in keys)
    assert keys[0] == "ccn-050901"


@pytest.mark.parametrize(
    ("hospital", "key"),
    [
        (CatalogHospital(id="1", name="X", ccn="05-0901"), "ccn-05-0901"),
        (CatalogHospital(id="1", name="X", ccn=" 05A901 "), "ccn-05a901"),
        (
            CatalogHospital(id="1", name="St. Mary's Hospital & Clinics", state="WI"),
            "st-mary-s-hospital-clinics-wi",
        ),
        (CatalogHospital(id="1", name="Hôpital Général", state=None), "h-pital-g-n-ral"),
        (CatalogHospital(id="PRA/42", name="!!!"), "id-pra-42"),
    ],
)
def test_hospital_key_normalisation(hospital, key):
    assert hospital_key(hospital) == key


def test_long_keys_are_cut_but_stay_distinct():
    a = CatalogHospital(id="1", name="The " + "Very " * 20 + "Long Regional Medical Center North", state="TX")
    b = CatalogHospital(id="2", name="The " + "Very " * 20 + "Long Regional Medical Center South", state="TX")
    ka, kb = hospital_key(a), hospital_key(b)
    assert len(ka) <= 64 and len(kb) <= 64 and ka != kb
    assert KEY_RE.match(ka) and KEY_RE.match(kb)
    assert hospital_key(a) == ka  # stable


def test_fingerprint_changes_when_a_file_changes(server):
    before = {h.id: files_fingerprint(h) for h in fetch_catalog(server.catalog_url)}
    assert before == {h.id: files_fingerprint(h) for h in fetch_catalog(server.catalog_url)}
    name = server.hospitals()[2]["files"][0]["name"]
    server.set_file(name, b'{"hospital_name": "changed"}')
    after = {h.id: files_fingerprint(h) for h in fetch_catalog(server.catalog_url)}
    assert [hid for hid in before if before[hid] != after[hid]] == ["demo-003"]
    assert all(len(v) == 16 for v in after.values())


def test_fingerprint_is_order_insensitive_and_sees_added_files():
    f1 = CatalogFile(url="https://a.example.org/1.csv", size=10, retrieved_at="2025-01-01")
    f2 = CatalogFile(url="https://a.example.org/2.json", size=20, retrieved_at="2025-01-01")
    h = CatalogHospital(id="1", name="A", files=(f1, f2))
    assert files_fingerprint(h) == files_fingerprint(CatalogHospital(id="1", name="A", files=(f2, f1)))
    assert files_fingerprint(h) != files_fingerprint(CatalogHospital(id="1", name="A", files=(f1,)))
    moved = CatalogFile(url=f1.url, size=10, retrieved_at="2025-02-01")
    assert files_fingerprint(h) != files_fingerprint(CatalogHospital(id="1", name="A", files=(moved, f2)))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("951234567_west-mercy-hospital_standardcharges.csv", ("951234567", None)),
        (
            "316123456-1234567893_riverbend-memorial-hospital_standardcharges.json",
            ("316123456", "1234567893"),
        ),
        ("95-1234567_west-mercy_standardcharges.zip", ("951234567", None)),
        ("951234567_West_Mercy_Hospital_StandardCharges.CSV", ("951234567", None)),
        ("951234567_west-mercy_standardcharges.csv.gz", ("951234567", None)),
        (
            "https://h.example.org/mrf/951234567-1234567893_west%20mercy_standardcharges.json?sig=1",
            ("951234567", "1234567893"),
        ),
        ("west-mercy_standardcharges.csv", (None, None)),
        ("12345678_short-ein_standardcharges.csv", (None, None)),
        ("951234567_no-suffix.csv", (None, None)),
        ("price-list.xlsx", (None, None)),
    ],
)
def test_parse_ein_npi_from_filename(name, expected):
    assert parse_ein_npi_from_filename(name) == expected


def test_every_demo_file_name_has_an_ein(server):
    for h in fetch_catalog(server.catalog_url):
        ein, _npi = parse_ein_npi_from_filename(h.files[0].url)
        assert ein and len(ein) == 9
