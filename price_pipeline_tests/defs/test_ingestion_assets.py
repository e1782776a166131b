"""The catalog and ingestion assets materialised in-process for demo hospitals."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.schemas import PRICES_SCHEMA
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.registry import Registry
from price_pipeline_tests.defs.helpers import materialize_catalog, materialize_hospital


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def catalog_ready(instance, settings, demo_server):
    result = materialize_catalog(instance, settings)
    assert result.success
    hospitals = json.loads(LocalLake(settings.lake_url).get_bytes("catalog/hospital_catalog.json"))["hospitals"]
    return {h["name"]: h for h in hospitals}


def key_of(catalog_ready, layout_and_version: tuple[str, str]) -> str:
    """The hospital key of the demo hospital with a given file layout and CMS version."""
    from price_pipeline.demo.server import DATA_DIR

    demo = json.loads((DATA_DIR / "catalog.json").read_text())["hospitals"]
    for h in demo:
        info = h.get("demo", {})
        if (info.get("layout"), info.get("cms_version")) == layout_and_version:
            return catalog_ready[h["name"]]["hospital_key"]
    raise KeyError(layout_and_version)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (mat,) = [m for m in result.asset_materializations_for_node(asset)]
    return {k: v.value for k, v in mat.metadata.items()}


def test_catalog_assets_write_hospitals_and_claims(instance, settings, catalog_ready):
    lake = LocalLake(settings.lake_url)
    table = pq.read_table(lake.uri("catalog/hospitals.parquet"))
    assert table.num_rows == len(catalog_ready) >= 8
    assert set(table.column("status").to_pylist()) == {"active"}
    registry = Registry(settings.registry_url)
    assert len(registry.list_hospitals()) == len(catalog_ready)
    some_key = table.column("hospital_key")[0].as_py()
    assert registry.latest_claim_payload(some_key, "catalog_api")["files"]


def test_v3_tall_hospital_flows_to_prices_with_metadata(instance, settings, catalog_ready):
    key = key_of(catalog_ready, ("csv_tall", "3.0.0"))
    result = materialize_hospital(instance, settings, key)
    assert result.success
    for check in result.get_asset_check_evaluations():
        assert check.passed or check.severity == dg.AssetCheckSeverity.WARN, check
    files_md = metadata(result, "mrf_files")
    assert files_md["files_ok"] == 1 and files_md["bytes"] > 0 and "duration_seconds" in files_md
    parsed_md = metadata(result, "mrf_parsed")
    assert parsed_md["dagster/row_count"] > 0
    prices_md = metadata(result, "prices")
    assert prices_md["dagster/row_count"] > parsed_md["dagster/row_count"] / 2 and prices_md["bytes"] > 0

    lake = LocalLake(settings.lake_url)
    table = pq.read_table(lake.uri(layout.prices_key(key)))
    assert table.schema.names == PRICES_SCHEMA.names
    assert set(table.column("hospital_key").to_pylist()) == {key}
    raw = [k for k in lake.list_keys("raw")]
    assert len(raw) == 1 and raw[0].startswith("raw/")


def test_rerun_replaces_the_partition_and_stores_bytes_once(instance, settings, catalog_ready):
    key = key_of(catalog_ready, ("json", "3.0.0"))
    lake = LocalLake(settings.lake_url)
    first = materialize_hospital(instance, settings, key)
    assert first.success
    before = pq.read_table(lake.uri(layout.prices_key(key)))
    second = materialize_hospital(instance, settings, key)
    assert second.success
    after = pq.read_table(lake.uri(layout.prices_key(key)))
    assert after.num_rows == before.num_rows
    assert metadata(second, "mrf_files")["new_versions"] == 0
    assert len(lake.list_keys("raw")) == 1
    # no temporary files are left behind in the lake
    assert not [k for k in lake.list_keys("") if "/.tmp-" in k or k.startswith(".tmp-")]
    versions = Registry(settings.registry_url).file_versions_for(key)
    assert len([v for v in versions if v["status"] == "ok"]) == 1


def test_zipped_file_is_ingested(instance, settings, catalog_ready):
    from price_pipeline.demo.server import DATA_DIR

    demo = json.loads((DATA_DIR / "catalog.json").read_text())["hospitals"]
    zipped = next(h for h in demo if any(f["name"].endswith(".zip") for f in h["files"]))
    result = materialize_hospital(instance, settings, catalog_ready[zipped["name"]]["hospital_key"])
    assert result.success
    assert metadata(result, "prices")["dagster/row_count"] > 0


def test_broken_file_is_recorded_kept_and_stops_the_hospital(instance, settings, catalog_ready):
    from price_pipeline.demo.server import DATA_DIR

    demo = json.loads((DATA_DIR / "catalog.json").read_text())["hospitals"]
    broken = next(h for h in demo if h.get("demo", {}).get("expect") not in (None, "ok"))
    key = catalog_ready[broken["name"]]["hospital_key"]
    result = materialize_hospital(instance, settings, key)
    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert failed and failed[0].check_name in ("mrf_files_has_a_price_file", "mrf_parsed_has_rows")
    assert not result.asset_materializations_for_node("prices")
    lake = LocalLake(settings.lake_url)
    # the bytes the hospital served are kept as evidence, and the failure is in the registry
    assert lake.list_keys("raw")
    versions = Registry(settings.registry_url).file_versions_for(key)
    assert versions and versions[0]["status"] in ("rejected", "failed") and versions[0]["error"]


def test_prices_are_queryable_across_hospitals(instance, settings, catalog_ready):
    keys = [key_of(catalog_ready, ("csv_tall", "3.0.0")), key_of(catalog_ready, ("csv_wide", "3.0.0"))]
    for key in keys:
        assert materialize_hospital(instance, settings, key).success
    con = duckdb.connect()
    rows = con.execute(
        "SELECT hospital_key, count(*) FROM read_parquet(?) GROUP BY 1 ORDER BY 1",
        [layout.prices_glob(settings.lake_url)],
    ).fetchall()
    assert [r[0] for r in rows] == sorted(keys) and all(r[1] > 0 for r in rows)


def test_mrf_header_identity_is_recorded_as_a_claim(instance, settings, catalog_ready):
    """The v3 header's type-2 NPIs become identifiers discovery reconciles on."""
    key = key_of(catalog_ready, ("csv_tall", "3.0.0"))
    assert materialize_hospital(instance, settings, key).success
    registry = Registry(settings.registry_url)
    header_claim = registry.latest_claim_payload(key, "mrf_header")
    assert header_claim["hospital_name"] == "West Mercy Hospital"
    assert header_claim["type_2_npi"] == ["0000000001", "0000000002", "0000000003"]
    assert registry.identifiers()[("npi", "0000000001")] == key


def test_no_rows_reason_names_a_header_only_file():
    """Issue 18 item 7: a header-only file failed with just "rows=0, unreadable_files=[]"."""
    from price_pipeline.lib.quality import no_rows_reason

    assert no_rows_reason(0, []) == "header present, no data rows"
    assert no_rows_reason(0, [{"file_sha256": "a"}]) == "no current file could be parsed (1 unreadable)"
    assert no_rows_reason(5, []) is None
