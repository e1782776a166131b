"""The dead-letter view per asset partition (issue 14, problem 1): each ingestion asset failing in
turn stays listed until that asset succeeds again, whatever else succeeds for the hospital
meanwhile, and ``retry-failed``'s plan re-runs exactly the failed assets and their downstream."""

import dagster as dg
import httpx
import pytest

from price_pipeline.defs.ingestion.jobs import INGESTION_ASSET_DEFS, INGESTION_CHILDREN
from price_pipeline.defs.ops.failed import failed_hospitals, failed_items
from price_pipeline.defs.ops.retries import classified
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.ops.deadletter import Outcome, dead_letters, retry_plan

HOSPITAL = "h-1"
OTHER = "h-2"
# (hospital, asset) pairs whose next attempt fails; the stand-ins read it at run time
FAILING: set[tuple[str, str]] = set()


def _stand_in(real: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """An asset with the real one's key and dependencies whose body fails on demand: an external
    failure (the hospital's server) for the download, an internal one (our bug) for the rest."""
    name = real.key.to_user_string()

    @dg.asset(name=name, deps=list(real.dependency_keys), partitions_def=hospital_partitions)
    @classified
    def body(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        if (context.partition_key, name) in FAILING:
            if name == "mrf_files":
                raise httpx.ConnectError("connection refused by the hospital's server")
            raise ValueError(f"bug in {name}")
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})

    return body


STAND_INS = {a.key.to_user_string(): _stand_in(a) for a in INGESTION_ASSET_DEFS}


@dg.asset(name="prices_expectations", deps=["prices"], partitions_def=hospital_partitions)
def expectations_stand_in() -> None:
    """Another job's asset on the same hospital (the GX suite): its success hides nothing."""


def _run(instance, key: str, assets: list[str]) -> dg.ExecuteInProcessResult:
    return dg.materialize([STAND_INS[a] for a in assets], instance=instance, partition_key=key, raise_on_error=False,
                          selection=assets)


@pytest.mark.slow
@pytest.mark.parametrize("failing", [a.key.to_user_string() for a in INGESTION_ASSET_DEFS])
def test_each_ingestion_asset_failing_stays_listed_until_it_succeeds(failing, tmp_path):
    FAILING.clear()
    everything = list(STAND_INS)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, [HOSPITAL, OTHER])
        assert _run(instance, OTHER, everything).success
        FAILING.add((HOSPITAL, failing))
        assert not _run(instance, HOSPITAL, everything).success
        [item] = failed_items(instance)
        assert (item.hospital_key, item.asset, item.check, item.attempts) == (HOSPITAL, failing, None, 1)
        assert item.failure_kind == ("external" if failing == "mrf_files" else "internal")
        assert item.reason and item.first_failed_at == item.latest_failed_at

        # the view used to look at the hospital's latest run of any job: a later successful run
        # of another asset (the GX suite, or the assets upstream of the failed one) hid the failure
        assert dg.materialize([expectations_stand_in], instance=instance, partition_key=HOSPITAL).success
        upstream = [a for a in everything if failing not in _closure([a])] or []
        if upstream:
            assert _run(instance, HOSPITAL, upstream).success
        assert failed_hospitals(instance) == [HOSPITAL]

        # a second failed attempt: one item, two attempts, the first failure time kept
        assert not _run(instance, HOSPITAL, everything).success
        [again] = failed_items(instance)
        assert again.attempts == 2 and again.first_failed_at == item.first_failed_at
        assert again.latest_failed_at > item.latest_failed_at
        assert failed_items(instance, kind="canceled") == []

        # retry-failed's plan: exactly the failed asset and its downstream, for the failed hospital
        plan = retry_plan(failed_items(instance), INGESTION_CHILDREN)
        assert plan == {tuple(sorted(_closure([failing]))): [HOSPITAL]}
        FAILING.clear()
        [(selection, hospitals)] = plan.items()
        assert _run(instance, HOSPITAL, list(selection)).success
        assert failed_items(instance) == []


def _closure(assets: list[str]) -> set[str]:
    out, todo = set(), list(assets)
    while todo:
        a = todo.pop()
        if a not in out:
            out.add(a)
            todo += INGESTION_CHILDREN[a]
    return out


def test_a_canceled_run_lists_every_asset_it_did_not_build(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, [HOSPITAL])
        job = dg.Definitions(assets=list(STAND_INS.values()), jobs=[dg.define_asset_job(
            "ingest_hospital", selection=list(STAND_INS), partitions_def=hospital_partitions)]
        ).get_job_def("ingest_hospital")
        run = instance.create_run_for_job(job, tags={"dagster/partition": HOSPITAL})
        instance.report_run_canceled(run)
        items = failed_items(instance)
        assert {i.asset for i in items} == set(STAND_INS)
        assert {i.failure_kind for i in items} == {"canceled"} and failed_items(instance, kind="internal") == []


def test_dead_letters_bookkeeping():
    def fail(asset, at, check=None):
        return Outcome("h", asset, at, ok=False, check=check, failure_kind="external", reason=f"r{at}")

    def ok(asset, at, check=None):
        return Outcome("h", asset, at, ok=True, check=check)

    # a success closes only its own item; attempts restart after it; same instant: success wins
    letters = dead_letters([fail("prices", 1), ok("prices", 2), fail("prices", 3), fail("prices", 5),
                            ok("mrf_files", 6), fail("mrf_files", 4), fail("mrf_files", 7, check="c"),
                            fail("price_changes", 8), ok("price_changes", 8)])
    assert [(d.asset, d.check, d.attempts, d.first_failed_at, d.latest_failed_at, d.reason) for d in letters] == [
        ("mrf_files", "c", 1, 7, 7, "r7"), ("prices", None, 2, 3, 5, "r5")]
    plan = retry_plan(letters, INGESTION_CHILDREN)
    assert plan == {tuple(sorted(_closure(["mrf_files"]))): ["h"]}
