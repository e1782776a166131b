"""The discovery family of the registry (cms-hpt.txt crawls, discovery findings) and the one engine
under every family, on SQLite and PostgreSQL (the ``registry`` fixture, conftest.py)."""

from __future__ import annotations

from price_pipeline.lib.registry import Registry
from price_pipeline.lib.registry.database import Database
from price_pipeline.lib.registry.discovery import DiscoveryRecords
from price_pipeline.lib.registry.files import FileRecords
from price_pipeline.lib.registry.hospitals import HospitalRecords


def test_every_family_shares_one_engine_owner():
    assert Registry.__mro__.count(Database) == 1
    assert all(issubclass(Registry, family) for family in (HospitalRecords, FileRecords, DiscoveryRecords))
    assert "__init__" not in vars(Registry) and all("__init__" not in vars(f)
                                                   for f in (HospitalRecords, FileRecords, DiscoveryRecords))


def test_an_erroring_crawl_keeps_the_last_good_entries_and_a_missing_one_clears_them(registry):
    site = "https://h.example"
    registry.record_site_crawls([{"website": site, "hospital_key": "h1", "status": "found", "entries_json": "[1]"}])
    found_at = registry.site_crawls()[site]["found_at"]
    registry.record_site_crawls([{"website": site, "hospital_key": "h1", "status": "error", "error": "503"}])
    crawl = registry.site_crawls()[site]
    assert (crawl["status"], crawl["entries_json"], crawl["found_at"]) == ("error", "[1]", found_at)
    registry.record_site_crawls([{"website": site, "hospital_key": "h1", "status": "missing"}])
    assert registry.site_crawls()[site]["entries_json"] is None


def test_a_finding_seen_again_is_one_row_with_its_first_seen_time(registry):
    finding = {"source": "catalog_api", "source_id": "7", "hospital_key": "h1", "field": "name",
               "rule": "text_cleaned", "message": "NUL removed"}
    assert registry.record_discovery_findings([finding]) == 1
    first = registry.discovery_findings()[0]
    assert registry.record_discovery_findings([{**finding, "message": "NUL removed again"}]) == 1
    (again,) = registry.discovery_findings(hospital_key="h1")
    assert again["first_seen_at"] == first["first_seen_at"] and again["message"] == "NUL removed again"
