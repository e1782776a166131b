"""Discovery sources (catalog API sessions, cms-hpt.txt, overrides), identity reconciliation and geo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from price_pipeline.demo.server import DemoCatalogServer, generate_catalog
from price_pipeline.lib.discovery.catalog import CatalogError
from price_pipeline.lib.discovery.discover import apply_discovery, discover
from price_pipeline.lib.discovery.geo import enrich, standardize_address, zip5, zip_centroid
from price_pipeline.lib.discovery.keys import VALID_KEY, normalize_key
from price_pipeline.lib.discovery.reconcile import reconcile
from price_pipeline.lib.discovery.sources.base import Claim, ClaimFile
from price_pipeline.lib.discovery.sources.catalog_api import CatalogApiSource
from price_pipeline.lib.discovery.sources.cms_hpt import fetch_cms_hpt, hpt_urls, normalize_url, parse_cms_hpt
from price_pipeline.lib.discovery.sources.overrides import OverridesError, load_overrides, parse_overrides
from price_pipeline.lib.fetch.http.fetch import make_client
from price_pipeline.lib.registry import Registry
from price_pipeline.settings import Settings

HPT = (
    "Our price transparency files are listed below.\n"
    "location-name: Example Hospital\n"
    "source-page-url: www.example.org/prices\n"
    "mrf-url: www.example.org/files/12-3456789-1234567893_example-hospital_standardcharges.csv\n"
    "contact-name: Jane Doe\n"
    "contact-email: jane@example.org\n"
    "\n"
    "Location Name: Example Clinic\n"
    "MRF_URL: <https://example.org/files/123456789_example-clinic_standardcharges.json>\n"
    "thank you for visiting\n"
)


def make_settings(tmp_path: Path, server: DemoCatalogServer, **kw) -> Settings:
    values = dict(
        data_dir=tmp_path,
        lake_url=str(tmp_path / "lake"),
        registry_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
        warehouse_path=tmp_path / "w.duckdb",
        catalog_url=server.catalog_url,
        allowed_private_hosts=(f"127.0.0.1:{server.port}",),
        http_timeout_seconds=5,
        host_max_requests_per_second=0,
        host_max_concurrency=16,
    )
    values.update(kw)
    return Settings(**values)


@pytest.fixture
def gen_server():
    hospitals, files = generate_catalog(30)
    with DemoCatalogServer(hospitals=hospitals, files=files) as srv:
        yield srv


# -- cms-hpt.txt --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode(),
        lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode(),
        lambda t: t.encode("utf-16"),  # with BOM
        lambda t: t.encode("utf-16-le"),  # without BOM
        lambda t: t.encode("utf-16-be"),
        lambda t: t.replace("\n", "\r").encode("cp1252"),
    ],
    ids=["utf8", "bom-crlf", "utf16-bom", "utf16le", "utf16be", "cr-cp1252"],
)
def test_cms_hpt_parser_tolerates_encodings_line_ends_and_prose(encode):
    entries = parse_cms_hpt(encode(HPT))
    assert [e.location_name for e in entries] == ["Example Hospital", "Example Clinic"]
    first, second = entries
    assert first.mrf_url == "https://www.example.org/files/12-3456789-1234567893_example-hospital_standardcharges.csv"
    assert first.source_page_url == "https://www.example.org/prices"
    assert (first.contact_name, first.contact_email) == ("Jane Doe", "jane@example.org")
    assert second.mrf_url == "https://example.org/files/123456789_example-clinic_standardcharges.json"


def test_cms_hpt_parser_skips_html_and_blocks_without_mrf_url():
    text = "<html><body><p>location-name: A</p><p>contact-name: x</p>\n<p>mrf-url: a.org/f.csv</p>\n"
    text += "location-name: B (no file)\n"
    entries = parse_cms_hpt(text)
    assert [(e.location_name, e.mrf_url) for e in entries] == [("A", "https://a.org/f.csv")]
    assert parse_cms_hpt(b"") == [] and parse_cms_hpt("just prose, no blocks") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.org/a.csv", "https://example.org/a.csv"),
        ("//example.org/a.csv", "https://example.org/a.csv"),
        ("<http://example.org/a.csv>.", "http://example.org/a.csv"),
        ("[file](https://x.org/a.csv)", "https://x.org/a.csv"),
        ("ftp://example.org/a.csv", None),
        ("not a url", None),
        ("", None),
    ],
)
def test_normalize_url(value, expected):
    assert normalize_url(value) == expected


def test_hpt_urls_tries_the_website_folder_then_the_root():
    assert hpt_urls("https://h.org") == ["https://h.org/cms-hpt.txt"]
    assert hpt_urls("h.org/locations/a/") == ["https://h.org/locations/a/cms-hpt.txt", "https://h.org/cms-hpt.txt"]


def test_fetch_cms_hpt_403_404_are_missing_and_the_root_is_tried(tmp_path, gen_server):
    settings = make_settings(tmp_path, gen_server)
    gen_server.set_static("/sites/x/cms-hpt.txt", "forbidden", status=403)
    gen_server.set_static("/cms-hpt.txt", HPT.encode("utf-16"))
    with make_client(settings) as client:
        found = fetch_cms_hpt(gen_server.site_url("x"), settings=settings, client=client)
        assert found.status == "found" and found.url.endswith("/cms-hpt.txt") and len(found.entries) == 2
        gen_server.set_static("/cms-hpt.txt", "nope", status=404)
        missing = fetch_cms_hpt(gen_server.site_url("y"), settings=settings, client=client)
        assert missing.status == "missing" and missing.entries == []


def test_fetch_cms_hpt_blocks_private_websites(tmp_path, gen_server):
    settings = make_settings(tmp_path, gen_server, allowed_private_hosts=())
    with make_client(settings) as client:
        result = fetch_cms_hpt(gen_server.site_url("gen-00001"), settings=settings, client=client)
    assert result.status == "unsafe"


# -- catalog API sessions -------------------------------------------------------------------------


def test_expired_session_answering_200_empty_is_renewed(gen_server):
    gen_server.require_sessions(True)
    source = CatalogApiSource(gen_server.catalog_url, session_url=gen_server.session_url, per_page=7)
    assert len(source.fetch().claims) == 30 and source.sessions_opened == 1

    class ExpiringSource(CatalogApiSource):
        def _walk(self, client, state):
            if self.sessions_opened == 1:
                gen_server.expire_sessions()  # the token dies right after it was issued
            return super()._walk(client, state)

    renewing = ExpiringSource(gen_server.catalog_url, session_url=gen_server.session_url, per_page=7)
    result = renewing.fetch()
    assert len(result.claims) == 30 and result.stats["sessions_renewed"] == 1


def test_session_that_stays_expired_is_a_failure_not_an_empty_catalog(gen_server):
    gen_server.require_sessions(True)

    class AlwaysExpired(CatalogApiSource):
        def _walk(self, client, state):
            gen_server.expire_sessions()
            return super()._walk(client, state)

    with pytest.raises(CatalogError, match="0 hospitals"):
        AlwaysExpired(gen_server.catalog_url, session_url=gen_server.session_url, sleep=lambda s: None).fetch()


def test_per_state_queries_must_all_succeed(gen_server):
    source = CatalogApiSource(gen_server.catalog_url, states=("CA", "WI"))
    result = source.fetch()
    assert result.stats["per_state"] == {"CA": 6, "WI": 3} and {c.state for c in result.claims} == {"CA", "WI"}
    with pytest.raises(CatalogError):
        CatalogApiSource(gen_server.catalog_url, states=("CA", "ZZ"), sleep=lambda s: None).fetch()


# -- overrides --------------------------------------------------------------------------------


def test_overrides_file_toml_and_json(tmp_path):
    toml = tmp_path / "o.toml"
    toml.write_text(
        '[[hospital]]\nccn = "050901"\nname = "Renamed"\nfiles = ["https://h.org/a.csv"]\n'
        '[[hospital]]\nhospital_key = "ccn-990099"\nexclude = true\n'
    )
    claims = load_overrides(toml)
    assert claims[0].name == "Renamed" and claims[0].files[0].url == "https://h.org/a.csv"
    assert claims[1].exclude and claims[1].key_hint == "ccn-990099"
    js = tmp_path / "o.json"
    js.write_text(json.dumps({"hospital": [{"npi": "1234567893", "drop_files": ["https://h.org/x"]}]}))
    assert load_overrides(js)[0].drop_files == ("https://h.org/x",)
    with pytest.raises(OverridesError):
        parse_overrides({"hospital": [{"name": "no identifier"}]})
    with pytest.raises(OverridesError):
        parse_overrides({"hospital": [{"ccn": "1", "typo": 1}]})


# -- reconciliation ---------------------------------------------------------------------------


def _cat(i, **kw):
    return Claim(source="catalog_api", source_id=f"c{i}", **kw)


def test_claims_merge_on_ccn_npi_and_ein_with_name():
    claims = [
        _cat(1, name="Mercy", ccn="050901", state="CA", key_hint="ccn-050901",
             files=(ClaimFile("https://m.org/951234567-1234567893_mercy_standardcharges.csv"),)),
        # cms-hpt block with the same NPI in its file name: same hospital
        Claim(source="cms_hpt", source_id="t#0", name="Mercy Hospital",
              files=(ClaimFile("https://m.org/951234567-1234567893_mercy_standardcharges.json"),)),
        # same EIN and same name: same hospital
        Claim(source="cms_hpt", source_id="t#1", name="Mercy",
              files=(ClaimFile("https://m.org/951234567_mercy_standardcharges.zip"),)),
        # same EIN, other name: a sister hospital of the system, kept apart
        Claim(source="cms_hpt", source_id="t#2", name="Mercy North",
              files=(ClaimFile("https://m.org/951234567_mercy-north_standardcharges.csv"),)),
    ]  # fmt: skip
    result = reconcile(claims)
    by_key = {r["hospital_key"]: r for r in result.records}
    assert set(by_key) == {"ccn-050901", "mercy-north"}
    mercy = by_key["ccn-050901"]
    assert len(mercy["files"]) == 3 and mercy["npi"] == "1234567893" and mercy["ein"] == "951234567"
    assert mercy["sources"] == "catalog_api,cms_hpt" and mercy["name"] == "Mercy"  # catalog wins
    assert ("npi", "1234567893", "ccn-050901") in result.identifiers
    assert all(VALID_KEY.match(k) for k in by_key)


def test_different_ccns_are_never_merged_even_with_a_shared_npi():
    claims = [
        _cat(1, name="A", ccn="111111", npi="1234567893"),
        _cat(2, name="B", ccn="222222", npi="1234567893"),
    ]
    result = reconcile(claims)
    assert len(result.records) == 2 and result.conflicts and "CCN" in result.conflicts[0]


def test_keys_stay_stable_through_known_identifiers():
    # first seen without CCN (key from name), later the catalog adds the CCN
    known = {("npi", "1234567893"): "mercy-ca"}
    claims = [_cat(1, name="Mercy", ccn="050901", npi="1234567893", state="CA", key_hint="ccn-050901")]
    (record,) = reconcile(claims, known).records
    assert record["hospital_key"] == "mercy-ca"


def test_overrides_win_and_can_exclude_or_drop_files():
    claims = [
        _cat(1, name="Mercy", ccn="050901", key_hint="ccn-050901",
             files=(ClaimFile("https://m.org/a.csv"), ClaimFile("https://m.org/old.csv"))),
        Claim(source="overrides", source_id="o#0", ccn="050901", name="Mercy General",
              files=(ClaimFile("https://m.org/b.csv"),), drop_files=("https://m.org/old.csv",)),
        _cat(2, name="Dup", ccn="060606", key_hint="ccn-060606"),
        Claim(source="overrides", source_id="o#1", ccn="060606", exclude=True),
    ]  # fmt: skip
    result = reconcile(claims)
    (record,) = result.records
    assert record["name"] == "Mercy General"
    assert sorted(f["url"] for f in record["files"]) == ["https://m.org/a.csv", "https://m.org/b.csv"]
    assert result.excluded == ["ccn-060606"]


@pytest.mark.parametrize("raw", ["Saint Mary's / Main Campus", "x" * 200, "ÄÖÜ", "---"])
def test_normalized_keys_are_valid_partition_keys(raw):
    assert VALID_KEY.match(normalize_key(raw))


# -- geo -------------------------------------------------------------------------------------


def test_address_standardisation_and_zip_centroid_offline():
    std = standardize_address("1200 Alhambra Boulevard, Suite 3", "Sacramento", "ca", "95816-1234")
    assert std == {
        "address_standardized": "1200 ALHAMBRA BLVD STE 3",
        "city": "SACRAMENTO",
        "state": "CA",
        "zip5": "95816",
    }
    assert standardize_address("77 North Lincoln Memorial Drive")["address_standardized"] == "77 N LINCOLN MEMORIAL DR"
    assert zip5("2114") == "02114" and zip5("958161234") == "95816" and zip5("n/a") is None
    lat, lon, county = zip_centroid("02114")
    assert 42 < lat < 43 and -72 < lon < -70 and county == "Suffolk County"
    assert zip_centroid("00000") is None
    record = enrich({"address": "1 Main St", "zip": "10016"})
    assert record["geo_source"] == "zip_centroid" and record["county"] == "New York County"


# -- the whole pass -----------------------------------------------------------------------------


def test_discover_merges_catalog_and_cms_hpt_and_keeps_stale_entries_on_errors(tmp_path, gen_server):
    settings = make_settings(tmp_path, gen_server)
    registry = Registry(settings.registry_url)
    hospitals = gen_server.hospitals()
    # hospital 0's cms-hpt.txt lists a second file the catalog does not know
    extra = gen_server.file_url("extra_standardcharges.csv")
    hospitals[0]["cms_hpt"] = f"location-name: {hospitals[0]['name']}\nmrf-url: {extra}\n"
    gen_server.set_hospitals(hospitals)
    result = discover(settings, registry)
    apply_discovery(registry, result)
    assert result.stats["cms_hpt"]["found"] == 30 and len(result.records) == 30
    first = next(r for r in result.records if r["name"] == hospitals[0]["name"])
    assert {f["url"] for f in first["files"]} >= {extra}
    assert first["latitude"] is not None and first["address_standardized"]
    claims = registry.claims_for(first["hospital_key"])
    assert {c["source"] for c in claims} == {"catalog_api", "cms_hpt"}
    assert len(registry.file_states()) == 31
    # a later crawl that errors keeps the last good entries; a 404 drops them
    gen_server.add_fault(f"/sites/{hospitals[0]['id']}/cms-hpt.txt", __import__(
        "price_pipeline.demo.faults", fromlist=["Fault"]).Fault.http_status(500, times=None))
    again = discover(settings.__class__(**{**settings.__dict__, "cms_hpt_recheck_hours": 0}), registry)
    first_again = next(r for r in again.records if r["hospital_key"] == first["hospital_key"])
    assert extra in {f["url"] for f in first_again["files"]}
