"""The hospitals family of the registry (hospitals, claims, identifiers), on SQLite and PostgreSQL
(the ``registry`` fixture, conftest.py)."""

from __future__ import annotations


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


def test_identifiers_keep_their_first_key_across_batches_of_any_size(registry):
    """The same insert-what-is-new helper for a small batch (its own keys looked up) and a big
    one (the whole table read once)."""
    registry.record_identifiers([("ccn", "050001", "ccn-050001")])
    big = [("npi", f"{i:010d}", f"h-{i}") for i in range(600)] + [("ccn", "050001", "other-key")]
    registry.record_identifiers(big)
    registry.record_identifiers([("npi", "0000000007", "moved")])
    ids = registry.identifiers()
    assert ids[("ccn", "050001")] == "ccn-050001" and ids[("npi", "0000000007")] == "h-7"
    assert len(ids) == 601


def test_claims_of_a_big_batch_are_stored_once_and_touched_again(registry):
    rows = [{"hospital_key": f"h-{i:04d}", "name": f"H {i}"} for i in range(520)]
    assert registry.upsert_hospitals(rows, source="catalog_api")["new"] == 520
    first = registry.claims_for("h-0001")[0]["last_seen_at"]
    assert registry.record_claims("catalog_api", [(r["hospital_key"], r) for r in rows]) == 520
    (claim,) = registry.claims_for("h-0001")
    assert claim["last_seen_at"] >= first
