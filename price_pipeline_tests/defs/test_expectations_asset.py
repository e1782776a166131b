"""prices_expectations over a range of hospitals reports for each what a run of its own reports."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.defs.ingestion import batching, expectations
from price_pipeline.defs.partitions import hospital_partitions
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.schemas import PRICES_SCHEMA
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.ops.tags import RANGE_END_TAG, RANGE_START_TAG
from price_pipeline_tests.defs.helpers import resources_for
from price_pipeline_tests.lib.quality.test_expectations import _hospitals_for_batching


def _materialize(instance, settings, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([expectations.prices_expectations], instance=instance,
                          resources=resources_for(settings), **kwargs)


def _plain(metadata) -> dict:
    # a range run's materializations also carry the run's own "hospitals_in_run"
    return {k: getattr(v, "value", v) for k, v in metadata.items() if k != "hospitals_in_run"}


def _hospital(path, keys: list[str]) -> str:
    (key,) = [k for k in keys if str(path).endswith(layout.prices_key(k))]  # a local lake: the file itself
    return key


def test_a_range_validates_its_hospitals_together_each_as_alone(settings, tmp_path, monkeypatch):
    """Passing, all-null column, no wide items, failing, empty hospitals and one without prices:
    a range run's per-hospital materialization metadata equals each single-partition run's, its
    check names the same failing hospitals with the same metadata, and the passing hospitals
    were validated together (never one by one)."""
    from price_pipeline.lib import quality
    from price_pipeline.lib.quality import expectations as lib

    hospitals = {k: v for k, v in _hospitals_for_batching().items() if k != "large"}
    lake = LocalLake(settings.lake_url)
    for key, rows in hospitals.items():
        pq.write_table(pa.Table.from_pylist(rows, schema=PRICES_SCHEMA), tmp_path / f"{key}.parquet")
        lake.put_file(tmp_path / f"{key}.parquet", layout.prices_key(key))
    keys = sorted([*hospitals, "no_prices"])
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, keys)
        alone = {}
        for key in keys:
            result = _materialize(instance, settings, partition_key=key)
            (mat,) = result.asset_materializations_for_node("prices_expectations")
            (check,) = result.get_asset_check_evaluations()
            # as a range's check result carries a failing hospital's check metadata
            alone[key] = (_plain(mat.metadata), check.passed,
                          {name: batching._plain(value) for name, value in check.metadata.items()})

        validated_alone = []
        lone = lib.run_price_expectations
        for module in (lib, quality):  # the module's own name and the package's (the asset's import)
            monkeypatch.setattr(module, "run_price_expectations",
                                lambda path, **kw: validated_alone.append(_hospital(path, keys)) or lone(path, **kw))
        result = _materialize(instance, settings, tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]})
    assert result.success
    by_key = {m.partition: _plain(m.metadata) for m in result.asset_materializations_for_node("prices_expectations")}
    assert by_key == {key: metadata for key, (metadata, _, _) in alone.items()}
    (check,) = result.get_asset_check_evaluations()
    failing = {key for key, (_, passed, _) in alone.items() if not passed}
    assert failing == {"empty", "failing", "no_prices"} and not check.passed
    assert check.metadata["failing_hospitals"].value == {
        key: check_md for key, (_, passed, check_md) in sorted(alone.items()) if not passed}
    assert set(validated_alone) >= {"empty", "failing"}
    # the passing hospitals share a chunk with the failing one: validated alone; a range of only
    # passing hospitals is validated together
    validated_alone.clear()
    passing = sorted(k for k in hospitals if k not in failing)
    keys = passing
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(hospital_partitions.name, passing)
        result = _materialize(instance, settings, tags={RANGE_START_TAG: passing[0], RANGE_END_TAG: passing[-1]})
    assert result.success and validated_alone == []
    assert {m.partition: _plain(m.metadata) for m in result.asset_materializations_for_node("prices_expectations")} \
        == {key: alone[key][0] for key in passing}
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
