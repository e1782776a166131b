"""Two small code locations named like the real ones, for the job-control daemon test: stand-ins
with the real ingestion assets' keys and dependencies and the real job names, so the CLI's
GraphQL calls, the queue and the daemon run for real without downloads or dbt.

A hospital key says how its run behaves: ``slow-*`` takes 60 s in ``mrf_files`` (to be canceled);
``bad-*`` fails in ``prices`` while the file named by ``JOBCONTROL_FAIL_FLAG`` exists (so that a
re-execution after removing it succeeds).
"""

import os
import time
from pathlib import Path

import dagster as dg

from price_pipeline.defs.analytics.jobs import build_analytics_job
from price_pipeline.defs.ingestion.jobs import INGESTION_ASSET_DEFS
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops.tags import LAYER_TAG


def _stand_in(real: dg.AssetsDefinition) -> dg.AssetsDefinition:
    name = real.key.to_user_string()

    @dg.asset(name=name, deps=list(real.dependency_keys), partitions_def=hospital_partitions,
              backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1), group_name="ingestion")
    def body(context: dg.AssetExecutionContext) -> None:
        key = context.partition_key
        if name == "mrf_files" and key.startswith("slow-"):
            time.sleep(60)
        flag = os.environ.get("JOBCONTROL_FAIL_FLAG")
        if name == "prices" and key.startswith("bad-") and flag and Path(flag).exists():
            raise ValueError(f"prices of {key} failed (flag {flag})")

    return body


STAND_INS = [_stand_in(a) for a in INGESTION_ASSET_DEFS]

ingest_hospital = dg.define_asset_job("ingest_hospital", selection=[a.key for a in STAND_INS],
                                      partitions_def=hospital_partitions, tags={LAYER_TAG: "ingestion"})

ingestion_defs = dg.Definitions(assets=STAND_INS, jobs=[ingest_hospital], executor=dg.in_process_executor)


@dg.asset(name="mart_prices", group_name="analytics")
def mart_stand_in() -> dg.MaterializeResult:
    """Stands in for the dbt marts."""
    return dg.MaterializeResult(metadata={"dagster/row_count": 1})


analytics_defs = dg.Definitions(assets=[mart_stand_in], jobs=[build_analytics_job], executor=dg.in_process_executor)
