"""The registry on SQLite and on a real PostgreSQL database."""

from __future__ import annotations

import pytest

from price_pipeline.lib.registry import FileVersion, Registry


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        reg = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    else:
        reg = Registry(request.getfixturevalue("postgres_database"))
    yield reg
    reg.dispose()


def test_hospitals_claims_and_removal(registry):
    rows = [
        {"hospital_key": "ccn-050001", "ccn": "050001", "name": "A", "state": "CA", "files": [1]},
        {"hospital_key": "ccn-050002", "ccn": "050002", "name": "B", "state": "CA", "files": []},
    ]
    assert registry.upsert_hospitals(rows, source="catalog_api") == {"new": 2, "seen": 0, "rejected": 0}
    assert registry.upsert_hospitals(rows, source="catalog_api") == {"new": 0, "seen": 2, "rejected": 0}
    # the same payload twice is one claim; a changed payload is a second claim
    assert len(registry.claims_for("ccn-050001")) == 1
    registry.upsert_hospitals([{**rows[0], "name": "A renamed"}], source="catalog_api")
    assert len(registry.claims_for("ccn-050001")) == 2
    assert registry.latest_claim_payload("ccn-050001", "catalog_api")["name"] == "A renamed"
    assert registry.latest_claim_payloads("catalog_api")["ccn-050001"]["name"] == "A renamed"
    assert registry.mark_removed(["ccn-050002"]) == 1
    assert registry.mark_removed(["ccn-050002"]) == 0
    assert [h["hospital_key"] for h in registry.list_hospitals(status="active")] == ["ccn-050001"]
    removed = registry.list_hospitals(status="removed")[0]
    assert removed["removed_at"] is not None and removed["name"] == "B"


def test_file_versions_are_recorded_once_per_content(registry):
    fv = FileVersion("h1", "https://x.example/a.csv", "f" * 64, 10, "ok", raw_key="raw/ff/x.csv", etag='"1"')
    registry.record_file_version(fv)
    registry.record_file_version(fv)
    registry.record_file_version(FileVersion("h1", "https://x.example/a.csv", None, None, "failed", error="503"))
    versions = registry.file_versions_for("h1")
    assert len(versions) == 2
    assert {v["status"] for v in versions} == {"ok", "failed"}
    assert registry.latest_ok_version("h1", "https://x.example/a.csv")["etag"] == '"1"'
    assert versions[0]["host"] == "x.example"
