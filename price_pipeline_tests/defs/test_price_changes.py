"""Price history: every version's prices kept, and price_changes between the last two versions.

A demo hospital is ingested, its file is then changed on the demo server (new bytes, sha256 and
ETag: one rate changed, one payer row removed, one item added) and the hospital is run again.
"""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from price_pipeline.defs.ingestion.history import price_changes
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.schemas import PRICE_CHANGES_SCHEMA, PRICES_SCHEMA
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.prices.history import read_versions
from price_pipeline_tests.defs.helpers import materialize_catalog, materialize_hospital, resources_for

FILE = "951234567_west-mercy-hospital_standardcharges.csv"  # West Mercy, CSV tall, v3.0.0
MRI_PLATFORM = "MRI of brain (no contrast),611,RC,70551,CPT,outpatient,,,1200,1080,Platform Health Insurance,PPO,,400,"
HERNIA_REGION = "Inguinal hernia repair,360,RC,49505,CPT,outpatient,,,,,Region Health Insurance,HMO,,360,"
NEW_ITEM = (
    "Office visit established patient,510,RC,99213,CPT,outpatient,,,150,135,Platform Health Insurance,PPO,,90,"
    ",,,,,,,,fee schedule,\n"
)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (mat,) = list(result.asset_materializations_for_node(asset))
    return {k: v.value for k, v in mat.metadata.items()}


def _run_changes(instance, settings, key: str) -> dict:
    result = dg.materialize([price_changes], partition_key=key, instance=instance, resources=resources_for(settings))
    assert result.success
    return _metadata(result, "price_changes")


def _modified(original: bytes) -> bytes:
    lines = original.decode("utf-8").splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith(HERNIA_REGION):
            continue  # a payer rate removed
        if line.startswith(MRI_PLATFORM):
            line = line.replace(MRI_PLATFORM, MRI_PLATFORM[: -len("400,")] + "420,")  # a rate changed
        out.append(line)
    out.append(NEW_ITEM)  # an item added
    return "".join(out).encode("utf-8")


def test_price_changes_between_two_versions(instance, settings, demo_server):
    original = demo_server.file_bytes(FILE)
    assert MRI_PLATFORM.encode() in original and HERNIA_REGION.encode() in original
    try:
        assert materialize_catalog(instance, settings).success
        from price_pipeline_tests.defs.helpers import demo_keys

        key = demo_keys(settings)["West Mercy Hospital"]
        assert materialize_hospital(instance, settings, key).success
        lake = LocalLake(settings.lake_url)

        first = _run_changes(instance, settings, key)
        assert first["has_previous_version"] is False and first["dagster/row_count"] == 0
        assert pq.read_table(lake.uri(layout.price_changes_key(key))).schema.equals(PRICE_CHANGES_SCHEMA)
        (v1,) = read_versions(lake, key)
        assert v1["is_current"] and v1["version_seq"] == 1 and v1["rows"] > 0

        # Codes are cleaned by type: revenue codes padded to four digits.
        current = pq.read_table(lake.uri(layout.prices_key(key))).to_pylist()
        bed = next(r for r in current if r["description"] == "Medical surgical bed")
        assert (bed["primary_code"], bed["primary_code_type"]) == ("0120", "RC")

        demo_server.set_file(FILE, _modified(original))
        result = materialize_hospital(instance, settings, key)
        assert result.success
        assert _metadata(result, "prices")["versions_in_history"] == 2
        md = _run_changes(instance, settings, key)

        versions = read_versions(lake, key)
        assert [(v["version_seq"], v["is_current"]) for v in versions] == [(1, False), (2, True)]
        assert versions[0]["superseded_at"] is not None
        old_sha, new_sha = v1["file_sha256"], versions[1]["file_sha256"]
        assert new_sha != old_sha
        # Both versions' prices are kept; the current table holds only the new one.
        for sha in (old_sha, new_sha):
            assert pq.read_table(lake.uri(layout.prices_history_key(key, sha))).schema.equals(PRICES_SCHEMA)
        current = pq.read_table(lake.uri(layout.prices_key(key)))
        assert set(current.column("file_sha256").to_pylist()) == {new_sha}

        assert md["has_previous_version"] is True
        assert (md["old_file_sha256"], md["new_file_sha256"]) == (old_sha, new_sha)
        assert (md["rows_added"], md["rows_removed"], md["rows_changed"]) == (3, 1, 1)
        assert md["rows_unchanged"] > 50

        changes = pq.read_table(lake.uri(layout.price_changes_key(key))).to_pylist()
        assert len(changes) == 5
        # the materialization shows the changes file's columns and its (first five) rows
        assert [c.name for c in md["dagster/column_schema"].columns] == PRICE_CHANGES_SCHEMA.names
        preview = md["preview"].splitlines()
        assert len(preview) == 2 + 5 and preview[2].startswith(f"| {key.replace('_', chr(92) + '_')} |")
        assert [line.split(" | ")[5] for line in preview[2:]] == [c["change_kind"] for c in changes]
        (changed,) = [c for c in changes if c["change_kind"] == "changed"]
        assert (changed["primary_code"], changed["payer_name"], changed["plan_name"]) == ("70551", "Platform Health Insurance", "PPO")
        assert (changed["charge_kind"], changed["old_amount"], changed["new_amount"]) == ("negotiated_dollar", 400, 420)
        assert changed["amount_change"] == 20 and changed["amount_change_ratio"] == pytest.approx(0.05)
        (removed,) = [c for c in changes if c["change_kind"] == "removed"]
        assert (removed["primary_code"], removed["plan_name"], removed["old_amount"], removed["new_amount"]) == (
            "49505", "HMO", 360, None)
        added = sorted((c["charge_kind"], c["new_amount"]) for c in changes if c["change_kind"] == "added")
        assert added == [("discounted_cash", 135), ("gross", 150), ("negotiated_dollar", 90)]
        assert {c["old_file_sha256"] for c in changes} == {old_sha}
    finally:
        demo_server.set_file(FILE, original)
