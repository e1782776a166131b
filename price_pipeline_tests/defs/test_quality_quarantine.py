"""Quarantine: failed files and rows are listed with their reason, and a fixed rerun releases them."""

from __future__ import annotations

import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from price_pipeline import cli
from price_pipeline.defs.quality import assets as quality_assets
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.quality import quarantine
from price_pipeline_tests.defs.helpers import materialize_catalog, resources_for
from price_pipeline_tests.defs.quality_helpers import demo_hospital, metadata, run_hospital


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def test_quarantine_lists_failures_and_a_fixed_rerun_releases_them(
    instance, settings, demo_server, monkeypatch, capsys
):
    assert materialize_catalog(instance, settings).success
    lake = LocalLake(settings.lake_url)
    catalog = {h["name"]: h for h in json.loads(lake.get_bytes("catalog/hospital_catalog.json"))["hospitals"]}
    key, name = demo_hospital(catalog, layout="csv_tall", version="3.0.0")
    broken, _ = demo_hospital(catalog, expect="html_instead_of_data")

    original = demo_server.file_bytes(name)
    last = original.decode("utf-8").rstrip("\r\n").splitlines()[-1]
    try:
        # one data row with two extra non-empty fields: the parser quarantines it
        demo_server.set_file(name, original.rstrip(b"\r\n") + b"\n" + (last + ",extra,fields\n").encode())
        result = run_hospital(instance, settings, key)
        assert result.success and metadata(result, "mrf_parsed")["rows_quarantined"] == 1
        assert not run_hospital(instance, settings, broken).success

        table = quarantine.build_quarantine(lake)
        rows = table.to_pylist()
        (bad_row,) = [r for r in rows if r["hospital_key"] == key]
        assert bad_row["level"] == "row" and bad_row["stage"] == "parse"
        assert "fields" in bad_row["reason"] and "extra" in bad_row["raw"] and bad_row["source_row"] > 3
        assert lake.exists(bad_row["lake_key"])
        (bad_file,) = [r for r in rows if r["hospital_key"] == broken]
        assert (bad_file["level"], bad_file["stage"]) == ("file", "download")
        assert bad_file["reason"].startswith("rejected") and lake.exists(bad_file["lake_key"])

        # the asset publishes the same table, queryable in the lake
        done = dg.materialize([quality_assets.quarantine], instance=instance, resources=resources_for(settings))
        assert metadata(done, "quarantine")["dagster/row_count"] == 2
        assert pq.read_table(lake.uri(layout.QUARANTINE_KEY)).num_rows == 2

        # the CLI lists the same entries, filtered by hospital
        monkeypatch.setenv("PRICE_PIPELINE_DATA_DIR", str(settings.data_dir))
        monkeypatch.setenv("PRICE_PIPELINE_LAKE_URL", settings.lake_url)
        capsys.readouterr()
        assert cli.main(["quarantine", "--hospital", key]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["hospital_key"], r["level"], r["source_row"]) for r in listed] == [
            (key, "row", bad_row["source_row"])
        ]
        assert cli.main(["quarantine", "--summary"]) == 0
        assert json.loads(capsys.readouterr().out)["entries"] == 2
    finally:
        demo_server.set_file(name, original)

    # the hospital publishes a fixed file: the rerun releases its row, the broken one stays
    assert run_hospital(instance, settings, key).success
    after = quarantine.build_quarantine(lake).to_pylist()
    assert [r["hospital_key"] for r in after] == [broken]
    assert lake.exists(bad_row["lake_key"])  # the old evidence is kept, just no longer current
    done = dg.materialize([quality_assets.quarantine], instance=instance, resources=resources_for(settings))
    assert metadata(done, "quarantine")["dagster/row_count"] == 1
