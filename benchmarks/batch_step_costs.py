#!/usr/bin/env python3
"""CPU per hospital of each step of a batched ``ingest_hospital`` run (issue 13), in one process.

Generates ``--hospitals`` small hospitals with the national rehearsal's generator (one file each,
none broken, the ~1 GB file left out), serves them on loopback, materializes the catalog, then
runs the five ingestion assets over the whole range twice in-process (``dg.materialize`` with the
partition-range tags, as a batched run): a first wave, then a second after every file changed
(so ``price_changes`` compares two versions). Prints, per wave, the step thread's CPU per hospital
of each step and the process CPU per hospital (which includes the file servers' threads).

The baseline, measured in the same run on the same files: the library steps alone (fetch, parse,
prices: :func:`library_cpu_per_hospital`), hospital after hospital in this process, as the issue's
"same work in one plain Python process" is defined. The last line is ``RESULT batch_step_costs
...`` with the first wave's process CPU per hospital over the baseline's; exit status 1 when it is
above ``--max-ratio`` (2.0: issue 13's "platform within 2x the library steps"). The run also
validates, checks and records what the library steps do not, so the ratio is an upper bound of
the per-run overhead.

``--profile out.prof`` also writes a cProfile of both waves; ``--dump prefix`` writes every
materialization's and check's metadata (``prefix-first.json``, ``prefix-second.json``) to compare
two versions of the code value by value.

    nice -n 19 .venv/bin/python benchmarks/batch_step_costs.py --hospitals 25
"""

from __future__ import annotations

import argparse
import cProfile
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import dagster as dg  # noqa: E402
import national_rehearsal as rehearsal  # noqa: E402

from price_pipeline.defs.ingestion.jobs import INGESTION_ASSET_DEFS  # noqa: E402
from price_pipeline.defs.partitions import hospital_partitions  # noqa: E402
from price_pipeline.lib.ops.tags import RANGE_END_TAG, RANGE_START_TAG  # noqa: E402
from price_pipeline.settings import Settings  # noqa: E402
from price_pipeline_tests.defs.helpers import materialize_catalog, resources_for  # noqa: E402

STEP_EVENTS = (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
# Metadata that differs between two identical runs (rates, times, temporary paths, ports)
UNSTABLE_NAME = re.compile(r"duration|per_second|seconds|elapsed")


def _plain(value) -> str:
    value = getattr(value, "value", value)
    if hasattr(value, "columns") and hasattr(value, "constraints"):  # a TableSchema
        value = [(c.name, c.type, c.description) for c in value.columns]
    text = re.sub(r"/tmp/[^/'\"\s]*bcost[^/'\"\s]*", "TMP", str(value))
    text = re.sub(r"127\.0\.0\.\d+:\d+", "HOST", text)
    return re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:?\d\d|Z)?", "TS", text)


def _metadata(instance, keys: list[str], result) -> dict:
    out = {}
    for asset in INGESTION_ASSET_DEFS:
        for key in keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset.key, asset_partitions=[key]), limit=1).records
            if records:
                out[f"{asset.key.to_user_string()}/{key}"] = {
                    name: _plain(v) for name, v in sorted(records[0].asset_materialization.metadata.items())
                    if not UNSTABLE_NAME.search(name)}
    for evaluation in result.get_asset_check_evaluations():
        out[f"check/{evaluation.check_name}"] = {
            "passed": evaluation.passed, **{n: _plain(v) for n, v in sorted(evaluation.metadata.items())}}
    return out


def forget_cleaned_codes() -> None:
    """Each measurement starts without the codes the normaliser cleaned for the one before it: the
    process cache (``normalize._MACRO_RESULTS``) would otherwise make the second one cheaper."""
    from price_pipeline.lib.prices import normalize

    with normalize._MACRO_RESULTS_LOCK:
        normalize._MACRO_RESULTS.clear()


def library_cpu_per_hospital(hospitals, hosts, work: Path) -> float:
    """Process CPU seconds per hospital of fetch, parse and prices through the library, one hospital
    after another in this process, into a lake of its own (the baseline)."""
    from price_pipeline.lib.fetch import fetch_hospital_files
    from price_pipeline.lib.lake.storage import open_lake
    from price_pipeline.lib.parse import parse_hospital_files
    from price_pipeline.lib.prices import history as price_history
    from price_pipeline.lib.registry import Registry

    data = work / "baseline"
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        data_dir=data, lake_url=str(data / "lake"), registry_url=f"sqlite:///{data / 'registry.sqlite'}",
        warehouse_path=data / "warehouse.duckdb", catalog_url=hosts.catalog.catalog_url,
        allowed_private_hosts=tuple(hosts.allowed()), http_timeout_seconds=10,
    )
    lake, registry = open_lake(settings.lake_url), Registry(settings.registry_url)
    forget_cleaned_codes()
    cpu = time.process_time()
    for hospital in hospitals:
        with tempfile.TemporaryDirectory(dir=work) as scratch:
            urls = [hosts.files[hospital.host].file_url(f.name) for f in hospital.files]
            fetch_hospital_files(hospital.key, urls, lake=lake, registry=registry, settings=settings,
                                 scratch_dir=scratch)
            parse_hospital_files(hospital.key, lake=lake, scratch_dir=scratch)
            price_history.build_hospital_prices_with_history(hospital.key, lake=lake, scratch_dir=scratch)
    return (time.process_time() - cpu) / len(hospitals)


def run_wave(instance, settings, keys: list[str], label: str, profile, dump: str | None) -> float:
    """Runs the five assets over the range once; returns the process CPU seconds per hospital."""
    step_cpu: dict[str, list[float]] = {}
    handle_new_event = instance.handle_new_event

    def timed_handle(event, *args, **kwargs):
        # steps run in this thread (in-process executor): its CPU clock at each step boundary
        dagster_event = getattr(event, "dagster_event", None)
        if dagster_event is not None and dagster_event.event_type in STEP_EVENTS:
            step_cpu.setdefault(dagster_event.step_key, []).append(time.thread_time())
        return handle_new_event(event, *args, **kwargs)

    instance.handle_new_event = timed_handle
    forget_cleaned_codes()
    wall, cpu = time.perf_counter(), time.process_time()
    if profile:
        profile.enable()
    try:
        result = dg.materialize(list(INGESTION_ASSET_DEFS), instance=instance, resources=resources_for(settings),
                                tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}, raise_on_error=False)
    finally:
        if profile:
            profile.disable()
        del instance.handle_new_event
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(keys)
    steps = ", ".join(f"{k} {(v[-1] - v[0]) / n * 1000:.0f}" for k, v in step_cpu.items())
    print(f"{label}: success={result.success} wall {wall:.2f} s, process CPU {cpu / n * 1000:.0f} ms/hospital")
    print(f"  step thread CPU ms/hospital: {steps}")
    if dump:
        Path(f"{dump}-{label}.json").write_text(json.dumps(_metadata(instance, keys, result), indent=1))
    return cpu / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=25)
    parser.add_argument("--scale", type=float, default=0.3, help="file size multiplier (0.3: ~10-550 kB)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", help="write a cProfile of both waves here")
    parser.add_argument("--dump", help="write each wave's metadata to <dump>-first.json / -second.json")
    parser.add_argument("--max-ratio", type=float, default=2.0,
                        help="target: first wave's CPU per hospital over the library steps' (exit 1 above)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bcost-"))
    hosts = rehearsal.Hosts(1, faults=False).start()
    try:
        # start=1: the plan puts the one ~1 GB file at the middle of a plan that starts at 0
        hospitals = rehearsal.plan_catalog(args.hospitals, hosts=1, scale=args.scale, seed=args.seed, start=1)
        for hospital in hospitals:
            for spec in hospital.files:
                spec.broken = None
                rehearsal.generate_file(spec, work, args.seed)
                hosts.publish(spec, hospital.host)
        hosts.set_catalog(hospitals)
        data = work / "data"
        settings = Settings(
            data_dir=data, lake_url=str(data / "lake"), registry_url=f"sqlite:///{data / 'registry.sqlite'}",
            warehouse_path=data / "warehouse.duckdb", catalog_url=hosts.catalog.catalog_url,
            allowed_private_hosts=tuple(hosts.allowed()), http_timeout_seconds=10,
        )
        keys = sorted(h.key for h in hospitals)
        profile = cProfile.Profile() if args.profile else None
        with dg.DagsterInstance.ephemeral() as instance:
            if not materialize_catalog(instance, settings).success:
                raise SystemExit("the catalog did not materialize")
            instance.add_dynamic_partitions(hospital_partitions.name, keys)
            first = run_wave(instance, settings, keys, "first", profile, args.dump)
            for hospital in hospitals:  # every file changes: price_changes compares two versions
                for spec in hospital.files:
                    spec.generation += 1
                    rehearsal.generate_file(spec, work, args.seed)
                    hosts.publish(spec, hospital.host)
            hosts.set_catalog(hospitals)
            second = run_wave(instance, settings, keys, "second", profile, args.dump)
        if profile:
            profile.dump_stats(args.profile)
        # The baseline last, on the second wave's files: the same bytes the second wave fetched.
        library = library_cpu_per_hospital(hospitals, hosts, work)
    finally:
        hosts.stop()
    ratio = first / library
    print(f"library steps (fetch, parse, prices): process CPU {library * 1000:.0f} ms/hospital")
    ok = ratio <= args.max_ratio
    print(f"RESULT batch_step_costs hospitals={len(keys)} first_ms={first * 1000:.0f} second_ms={second * 1000:.0f} "
          f"library_ms={library * 1000:.0f} first_over_library={ratio:.2f} target<={args.max_ratio} "
          f"{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
