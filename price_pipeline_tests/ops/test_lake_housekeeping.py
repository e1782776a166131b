"""The ``lake_housekeeping`` asset sweeps writes a killed worker abandoned, and nothing else."""

import os
import time

import dagster as dg

from price_pipeline.definitions import ingestion
from price_pipeline.defs.ops.assets import lake_housekeeping, ops_report_job
from price_pipeline.lib.lake.storage import TEMP_PREFIX, open_lake
from price_pipeline_tests.defs.helpers import resources_for


def test_housekeeping_removes_old_temp_files_and_reports_them(settings):
    lake = open_lake(settings.lake_url)
    lake.put_bytes(b"published", "prices/hospital_key=h1/prices.parquet")
    folder = settings.data_dir / "lake" / "prices" / "hospital_key=h1"
    abandoned = folder / f"{TEMP_PREFIX}0123-prices.parquet"
    abandoned.write_bytes(b"partial" * 100)
    day_ago = time.time() - 86400
    os.utime(abandoned, (day_ago, day_ago))
    being_written = folder / f"{TEMP_PREFIX}4567-prices.parquet"
    being_written.write_bytes(b"fresh")

    result = dg.materialize([lake_housekeeping], resources=resources_for(settings))

    assert result.success
    metadata = result.asset_materializations_for_node("lake_housekeeping")[0].metadata
    assert metadata["abandoned_writes_removed"].value == 1
    assert metadata["bytes_freed"].value == 700
    assert metadata["examples"].value == [f"prices/hospital_key=h1/{abandoned.name}"]
    assert not abandoned.exists() and being_written.exists()
    assert lake.get_bytes("prices/hospital_key=h1/prices.parquet") == b"published"


def test_housekeeping_runs_with_the_hourly_ops_job():
    job = ingestion().resolve_job_def(ops_report_job.name)
    assert {"ops_report", "lake_housekeeping"} <= {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
