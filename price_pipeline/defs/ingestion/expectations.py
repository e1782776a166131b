"""The Great Expectations suite on each hospital's prices: a small partitioned asset and its check.

``prices_expectations`` (partitioned like ``prices``, depending on it) runs the suite on the
hospital's ``prices`` partition and carries the non-blocking check ``prices_meet_expectations``,
whose result is the suite's outcome. It is an asset rather than a bare asset check because the
daemon only accepts partitioned run requests for a job with a partitions definition, and in
Dagster 1.13 a job that selects nothing but a partitioned asset check has none; a job over this
partitioned asset has one, so ``expectations_after_prices`` can run by default.

Great Expectations is imported inside the asset (through
:func:`price_pipeline.lib.quality.expectations.run_price_expectations`), never at module load:
the ingestion code location loads without it, and only a run of ``check_price_expectations``
pays the import (several seconds). The check warns (it does not block): the blocking checks of
``prices`` (schema, lineage) are cheap and decide whether data moves on; this one reports anomalies.
"""

import contextlib

import dagster as dg

from price_pipeline.defs.ingestion.assets import prices
from price_pipeline.defs.ingestion.batching import combine_check_results, range_run_key
from price_pipeline.defs.ops import settle
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.lake import layout
from price_pipeline.lib.ops import (
    ANALYTICS,
    PRIORITY_TAG,
    QUALITY,
    TRIGGER_TAG,
    layer_tags,
    plan_batches,
    range_tags,
)

EXPECTATIONS_CHECK = "prices_meet_expectations"


def _results_table(results: list[dict]) -> str:
    rows = ["| suite | expectation | column(s) | ok | unexpected |", "| --- | --- | --- | --- | ---: |"]
    for r in results:
        kwargs = r["kwargs"]
        columns = kwargs.get("column") or f"{kwargs.get('column_A', '')} >= {kwargs.get('column_B', '')}"
        ok = "yes" if r["success"] else "**no**"
        rows.append(f"| {r['suite']} | `{r['expectation']}` | {columns} | {ok} | {r['unexpected_count'] or 0} |")
    return "\n".join(rows)


@dg.asset(
    deps=[prices],
    partitions_def=hospital_partitions,
    group_name="ingestion",
    kinds={"python", "pandas"},
    owners=["team:ingestion"],
    check_specs=[
        dg.AssetCheckSpec(
            EXPECTATIONS_CHECK,
            asset="prices_expectations",
            description="Great Expectations suite on the hospital's prices passed (warning).",
        )
    ],
)
def prices_expectations(
    context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource
) -> dg.MaterializeResult:
    """Great Expectations suite run on the hospital's ``prices`` partition: nulls, allowed values,
    amount and percentage ranges, minimum <= maximum and p10 <= median <= p90. The materialization
    records the outcome (expectation counts, failures, a results table); the warning check
    ``prices_meet_expectations`` passes when every expectation held. A run over a range of
    hospitals (a batch from ``expectations_after_prices``: one GX import for many hospitals)
    validates them together (a few GX validations instead of one per hospital) and records each
    hospital's outcome, the same as a run of its own, on its own partition, and one check result
    for the batch, naming the hospitals whose suite failed."""
    if context.has_partition_key:
        metadata, check = _run_suite(price_pipeline, context.partition_key)
        return dg.MaterializeResult(metadata=metadata, check_results=[check])
    keys = list(context.partition_keys)
    outcomes = _range_outcomes(context, price_pipeline, keys)
    checks = {}
    for key in keys:
        metadata, checks[key] = _run_suite(price_pipeline, key, outcomes.get(key))
        context.add_asset_metadata(metadata, partition_key=key)
    return dg.MaterializeResult(
        metadata={"hospitals_in_run": len(checks)},
        check_results=[combine_check_results(checks, check_name=EXPECTATIONS_CHECK)],
    )


def _range_outcomes(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource,
                    keys: list[str]) -> dict[str, dict]:
    """The suite's outcome for each hospital of a range that has prices, from
    :func:`run_price_expectations_many`: each equals the hospital's own validation, in a few GX
    validations (~0.5 s each whatever the rows) instead of two per hospital. Empty when that
    fails: each hospital is then validated on its own, as by a single-partition run."""
    from price_pipeline.lib.quality import run_price_expectations_many

    lake = price_pipeline.lake
    try:
        with contextlib.ExitStack() as stack:
            paths = {key: stack.enter_context(lake.local_copy(layout.prices_key(key)))
                     for key in keys if lake.exists(layout.prices_key(key))}
            return run_price_expectations_many(paths)
    except Exception as exc:  # each hospital's own run below reports (or raises) as it would alone
        context.log.warning(f"the range's hospitals are validated one by one: {type(exc).__name__}: {exc}"[:1000])
        return {}


def _run_suite(price_pipeline: PricePipelineResource, hospital_key: str,
               outcome: dict | None = None) -> tuple[dict, dg.AssetCheckResult]:
    """The suite on one hospital's prices: (materialization metadata, check result). ``outcome``
    is the suite's result when already computed for a range (:func:`_range_outcomes`)."""
    key = layout.prices_key(hospital_key)
    lake = price_pipeline.lake
    if not lake.exists(key):
        # A finding, not a crash: the partition's prices were never written (or were removed).
        reason = f"no prices file at {key}: the suite could not run"
        return {"suite_ran": False, "reason": reason}, dg.AssetCheckResult(
            check_name=EXPECTATIONS_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"reason": reason},
        )

    from price_pipeline.lib.quality import run_price_expectations

    if outcome is None:
        with lake.local_copy(key) as path:
            outcome = run_price_expectations(path)
    failed = [r for r in outcome["results"] if not r["success"]]
    summary = {
        "expectations": len(outcome["results"]),
        "failed_expectations": len(failed),
        "rows": outcome["rows"],
        "rows_validated": outcome["rows_validated"],
        "sampled": outcome["sampled"],
    }
    return {"suite_ran": True, "success": outcome["success"], **summary}, dg.AssetCheckResult(
        check_name=EXPECTATIONS_CHECK,
        passed=outcome["success"],
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            **summary,
            "failed": dg.MetadataValue.json(failed),
            "results": dg.MetadataValue.md(_results_table(outcome["results"])),
        },
    )


# The check's key, for selections that must exclude or name it.
prices_meet_expectations = dg.AssetCheckKey(prices_expectations.key, EXPECTATIONS_CHECK)

# Off the hospital's ingestion run: the GX import would add seconds to each of thousands of
# ingest_hospital runs. A low-priority run per new prices materialization validates the partition
# instead (dagster/partition limits keep it from overlapping that hospital's ingestion).
check_price_expectations_job = dg.define_asset_job(
    name="check_price_expectations",
    selection=dg.AssetSelection.assets(prices_expectations),
    partitions_def=hospital_partitions,
    executor_def=dg.in_process_executor,
    description="Great Expectations suite on one hospital's prices (prices_expectations and its warning check).",
    tags={**layer_tags(QUALITY), PRIORITY_TAG: "-1"},
)

# Prices materializations planned per sensor tick: a whole settled wave, so that its hospitals are
# cut into ranges of consecutive partitions, not into whatever 200 materializations came first
# (batches of different hosts finish interleaved: at N = 1,000 that gave 46 runs of ~25 hospitals,
# each paying the GX import and first validation, ~10 CPU-s).
EXPECTATIONS_BATCH = 5000
EXPECTATIONS_RUN_SIZE = 100  # hospitals per check_price_expectations run (consecutive partitions)
# A run's fixed cost (a process, the code location, the GX import: ~10 s) buys the suite on many
# more small hospitals: a gap of at most this many consecutive hospitals that already have prices
# does not split a run (they are checked again with their neighbours), so a day's scattered
# changes take a few runs instead of one each.
EXPECTATIONS_MAX_GAP = 10

# Runs the suite must not compete with for the queue's few run slots: a GX run started while the
# wave's analytics build is still to be requested would hold a slot that build then waits for.
BUSY_LAYERS = settle.INGESTION_LAYERS
# After the last ingestion/catalog run changed state, wait this long: three ticks of
# analytics_after_ingestion (45 s by default), so the build it requests for the wave is queued first.
QUIET_SECONDS = 3 * settle.FOLLOWUP_INTERVAL_SECONDS
# ... and until that build has a run slot (it is dequeued first: the suite's runs have priority -1);
# once it runs, the suite runs beside it in the other slots instead of waiting for the whole build.
UNTIL_STARTED_LAYERS = (ANALYTICS,)


@dg.sensor(
    job=check_price_expectations_job,
    minimum_interval_seconds=2 * settle.FOLLOWUP_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a check_price_expectations run for each hospital whose prices were materialized, "
    "once the pipeline settles or at the latest PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES (30) after the "
    "first prices materialization not yet checked.",
)
def expectations_after_prices(context: dg.SensorEvaluationContext):
    """The cursor is the storage id of the newest prices materialization already requested.
    Nothing is requested (and the cursor stays) while the pipeline is busy: the suite is
    low-priority work for when a wave of ingestion has settled and its analytics build has a run
    slot — unless the oldest unchecked materialization is past the staleness bound
    (lib/ops/staleness.py). Scattered hospitals share runs: short gaps of hospitals with prices
    between them are checked again rather than cutting the range (``EXPECTATIONS_MAX_GAP``)."""
    after = int(context.cursor or 0)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=prices.key, after_storage_id=after or None),
        limit=EXPECTATIONS_BATCH,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new prices materializations")
    decision = settle.decide(
        records[0].timestamp,
        settle.pipeline_busy(context.instance, BUSY_LAYERS, quiet_seconds=QUIET_SECONDS,
                             until_started=UNTIL_STARTED_LAYERS),
    )
    if not decision.run:
        return dg.SkipReason(decision.why)
    newest: dict[str, int] = {}
    for record in records:
        if record.partition_key:
            newest[record.partition_key] = record.storage_id
    # One run per range of consecutive hospitals (the GX import is paid once per run); short gaps
    # of hospitals with prices are bridged (a hospital without prices never is: its suite cannot run).
    order = context.instance.get_dynamic_partitions(hospital_partitions.name)
    with_prices = context.instance.get_materialized_partitions(prices.key)
    run_requests = []
    for batch in plan_batches(order, list(newest), {}, max_size=EXPECTATIONS_RUN_SIZE,
                              fill=with_prices, max_gap=EXPECTATIONS_MAX_GAP):
        if len(batch.keys) == 1:
            key = batch.first
            run_requests.append(dg.RunRequest(run_key=f"expectations:{key}:{newest[key]}", partition_key=key,
                                              tags={TRIGGER_TAG: decision.why}))
        else:
            run_requests.append(dg.RunRequest(
                run_key=range_run_key(f"expectations:{batch.first}:{batch.last}",
                                      [f"{k}:{newest.get(k, 'again')}" for k in batch.keys]),
                tags={**range_tags(batch.first, batch.last, len(batch.keys)), TRIGGER_TAG: decision.why},
            ))
    return dg.SensorResult(run_requests=run_requests, cursor=str(records[-1].storage_id))
