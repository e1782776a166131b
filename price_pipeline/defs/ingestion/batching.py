"""Many small hospitals per run, each still its own partition (issue 13).

A run pays a process start and a code-location load (seconds) whatever it does; a national
wave of small hospitals spent ~17x its work on that. So the catalog sensor requests one run
over a *range* of consecutive hospital partitions of one host (Dagster's partition-range runs:
the ``dagster/asset_partition_range_start``/``_end`` tags), and every hospital-partitioned
ingestion asset runs its body once per hospital of the range (:func:`per_hospital`):

* each hospital's materialization gets that hospital's own metadata (rows, bytes, files...);
* each check the body returns (the checks are evaluated in their asset's step,
  ``defs/ingestion/checks.py``) is reported once for the run: passed when every hospital's
  passed, naming the failing hospitals (:func:`combine_check_results`). A failed blocking check
  fails the step, and :func:`split_failed_batches` re-runs the hospitals it names alone, where
  each gets its own result;
* a hospital whose body fails does not stop the others in the step, but the step then fails
  (without retries: retrying would redo every hospital), no partition of the range is recorded
  as materialized, and :func:`split_failed_batches` re-runs every hospital of the range as a
  run of its own. There the usual retry policy and failure classification apply, and only the
  failing hospital ends failed, in the failed-hospitals view like any single-hospital run;
* the run carries the batch's host tag, so the per-host run limits count it as one run of
  that host (the downloader's per-host request limits hold inside the run).

A single-partition run (the CLI, retries, the change sensor, priority hospitals) is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Iterator, Sequence

import dagster as dg

from price_pipeline.defs.ops.retries import FAILURE_KIND, FAILURE_ORIGIN, FAILURE_REASON
from price_pipeline.defs.table_metadata import shared_preview_connections
from price_pipeline.lib.ops import EXTERNAL, INTERNAL, PERMANENT, TRANSIENT
from price_pipeline.settings import Settings


def ingest_batch_size() -> int:
    """``PRICE_PIPELINE_INGEST_BATCH_SIZE`` (default 25), read when runs are planned, so an
    operator's change reaches the next sensor tick without a code-location reload."""
    return max(1, Settings.from_env().ingest_batch_size)


class _OneHospital:
    """The asset context as one hospital's body sees it inside a batched run: the partition
    key is that hospital's; everything else is the run's context."""

    def __init__(self, context: dg.AssetExecutionContext, key: str):
        self._context = context
        self.partition_key = key
        self.partition_keys = [key]
        self.has_partition_key = True

    def __getattr__(self, name: str):
        return getattr(self._context, name)


def _kind(failure: dg.Failure) -> str:
    value = (failure.metadata or {}).get(FAILURE_KIND)
    return str(getattr(value, "value", value) or PERMANENT)


def _origin(failure: dg.Failure) -> str:
    value = (failure.metadata or {}).get(FAILURE_ORIGIN)
    return str(getattr(value, "value", value) or INTERNAL)


def batch_failure(keys: list[str], failed: dict[str, dg.Failure]) -> dg.Failure:
    """The step failure of a batch in which some hospitals failed: transient only when every
    hospital's failure was; the hospitals and their reasons in the metadata."""
    kind = TRANSIENT if all(_kind(f) == TRANSIENT for f in failed.values()) else PERMANENT
    # external only when every hospital's failure was (a server down, not an MRF): anything
    # else counts against the platform, as for a single-hospital run
    origin = EXTERNAL if all(_origin(f) == EXTERNAL for f in failed.values()) else INTERNAL
    names = ", ".join(sorted(failed)[:10]) + (" ..." if len(failed) > 10 else "")
    reason = f"{len(failed)} of {len(keys)} hospitals of the batch failed ({names}); each is re-run on its own"
    return dg.Failure(
        description=f"{kind}: {reason}",
        metadata={
            FAILURE_KIND: kind,
            FAILURE_ORIGIN: origin,
            FAILURE_REASON: reason,
            "failed_hospitals": dg.MetadataValue.json(
                {k: (f.description or "")[:500] for k, f in sorted(failed.items())}
            ),
        },
        allow_retries=False,
    )


def per_hospital(fn):
    """Decorate a hospital-partitioned asset body (under ``@dg.asset``, over ``@classified``):
    in a partition-range run, call it once per hospital (see the module doc)."""

    @functools.wraps(fn)
    def wrapper(context: dg.AssetExecutionContext, *args, **kwargs):
        if context.has_partition_key:
            return fn(context, *args, **kwargs)
        keys = list(context.partition_keys)
        with shared_preview_connections():  # one DuckDB connection for every hospital's preview
            return _each_hospital(fn, context, keys, *args, **kwargs)

    return wrapper


def _each_hospital(fn, context: dg.AssetExecutionContext, keys: list[str], *args, **kwargs) -> dg.MaterializeResult:
    """Run ``fn`` once per hospital of the range: its metadata to its partition, the checks combined."""
    failed: dict[str, dg.Failure] = {}
    checks: dict[str, dict[str, dg.AssetCheckResult]] = {}  # check name -> hospital -> result
    metadata: dict[str, dict] = {}  # hospital -> its materialization's metadata
    for key in keys:
        try:
            result = fn(_OneHospital(context, key), *args, **kwargs)
        except dg.Failure as failure:
            failed[key] = failure
        except (dg.RetryRequested, dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a body without @classified: still only this hospital's failure
            failed[key] = dg.Failure(description=f"{type(exc).__name__}: {exc}"[:1000])
        else:
            if isinstance(result, dg.MaterializeResult):
                if result.metadata:
                    metadata[key] = dict(result.metadata)
                for check in result.check_results or []:
                    checks.setdefault(check.check_name, {})[key] = check
            continue
        context.log.error(f"{key}: {failed[key].description}")
    if failed:
        raise batch_failure(keys, failed)
    with _dynamic_partitions_read_once(context.instance):
        for key, hospital_metadata in metadata.items():
            context.add_asset_metadata(hospital_metadata, partition_key=key)
    return dg.MaterializeResult(
        metadata={"hospitals_in_run": len(keys)},
        check_results=[combine_check_results(results, check_name=name) for name, results in checks.items()],
    )


@contextlib.contextmanager
def _dynamic_partitions_read_once(instance: dg.DagsterInstance) -> Iterator[None]:
    """Inside, the instance answers dynamic-partition lookups from one read of each definition.

    ``add_asset_metadata(partition_key=...)`` checks that the key is in the run's range by reading
    every partition key of the definition (the whole national catalog) plus two existence
    queries: three event-log queries per hospital and step. The range's partitions existed when
    the run was planned and are only added, never removed, mid-run, so one read gives the same
    answers. Only the ``add_asset_metadata`` calls run inside (not the asset bodies).
    """
    read: dict[str, Sequence[str]] = {}
    members: dict[str, frozenset[str]] = {}
    get_dynamic_partitions = instance.get_dynamic_partitions

    def keys_of(partitions_def_name: str) -> Sequence[str]:
        if partitions_def_name not in read:
            read[partitions_def_name] = list(get_dynamic_partitions(partitions_def_name))
            members[partitions_def_name] = frozenset(read[partitions_def_name])
        return read[partitions_def_name]

    def has_key(partitions_def_name: str, partition_key: str) -> bool:
        keys_of(partitions_def_name)
        return partition_key in members[partitions_def_name]

    shadowed = {name: vars(instance).get(name) for name in ("get_dynamic_partitions", "has_dynamic_partition")}
    instance.get_dynamic_partitions = keys_of  # type: ignore[method-assign]
    instance.has_dynamic_partition = has_key  # type: ignore[method-assign]
    try:
        yield
    finally:  # the instance's own methods again
        for name, own in shadowed.items():
            if own is None:
                delattr(instance, name)
            else:
                setattr(instance, name, own)


def range_run_key(prefix: str, parts: list[str]) -> str:
    """A run key for a batch: the prefix, its first and last key and a digest of what it covers."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"{prefix}:{digest}"


def _plain(value) -> object:
    """A check metadata value as JSON: scalars and JSON values (lists, dicts) as they are, so a
    failing hospital's entry reads like its own run's check (the failed-hospitals view builds the
    same reason from it); anything else as text. The checks bound their lists themselves."""
    value = getattr(value, "value", value)
    if isinstance(value, int | float | bool | str | list | dict) or value is None:
        return value
    return str(value)[:300]


def combine_check_results(
    results: dict[str, dg.AssetCheckResult], *, check_name: str | None = None
) -> dg.AssetCheckResult:
    """One check result for a batch: passed when every hospital's passed; the failing hospitals
    and their metadata (the first 50) in its metadata; the most severe severity of a failure."""
    failing = {k: r for k, r in results.items() if not r.passed}
    severities = {r.severity for r in failing.values()}
    severity = dg.AssetCheckSeverity.ERROR if dg.AssetCheckSeverity.ERROR in severities else (
        next(iter(severities)) if severities else next(iter(results.values())).severity
    )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not failing,
        severity=severity,
        metadata={
            "hospitals_checked": len(results),
            "hospitals_failing": len(failing),
            "failing_hospitals": dg.MetadataValue.json({
                k: {name: _plain(v) for name, v in (r.metadata or {}).items()}
                for k, r in sorted(failing.items())[:50]
            }),
        },
    )
