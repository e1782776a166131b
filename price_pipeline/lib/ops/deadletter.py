"""The dead-letter view, per asset partition: which of a hospital's assets (or blocking checks)
last failed and has not succeeded since.

Pure computations over plain outcome records; ``price_pipeline.defs.ops.failed`` reads them from
the Dagster instance. An *item* is one hospital's asset, or one blocking check on that asset. Its
outcomes (failures and successes) are taken in time order: a failure opens the item (or counts
one more attempt on it), a success closes it. An item is listed while it is open, so a later
successful run of *another* asset of the same hospital never hides it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

# The ingest_hospital job's assets, by name: the view's scope. The same as
# ``price_pipeline.defs.ingestion.jobs.INGESTION_ASSETS`` (a test keeps the two equal), named here
# so that reading the view (``price-pipeline failed-hospitals``, a fresh process) does not import
# every asset definition: ~2 s of a 3 s answer on a loaded 2-core machine.
INGESTION_ASSET_NAMES = ("mrf_files", "mrf_parsed", "prices", "price_changes", "conformance_reports")


@dataclass(frozen=True)
class Outcome:
    """One attempt at an item: a step (or check) that failed, or a materialization (or passed
    check) that succeeded."""

    hospital_key: str
    asset: str
    at: float  # epoch seconds
    ok: bool
    check: str | None = None  # set for a blocking check on ``asset``
    failure_kind: str | None = None  # internal / external / canceled (failures only)
    transient: bool = False
    reason: str = ""
    run_id: str | None = None
    job_name: str | None = None


def check_failure_reason(check: str, asset: str, metadata: Mapping[str, object]) -> str:
    """Why a blocking check failed on one hospital, from that hospital's check metadata: its
    scalar values in order (lists and dicts of findings are left to the run's page), at most
    500 characters. A lone run's evaluation and a batch's entry for the hospital give the same."""
    details = ", ".join(f"{k}={v}" for k, v in metadata.items() if not isinstance(v, dict | list))
    return f"check {check} on {asset} failed: {details}"[:500]


@dataclass(frozen=True)
class DeadLetter:
    """One open item of the view."""

    hospital_key: str
    asset: str
    check: str | None
    failure_kind: str
    first_failed_at: float
    latest_failed_at: float
    attempts: int  # failures since the last success (or ever)
    reason: str  # of the latest failure
    run_id: str | None  # of the latest failure
    job_name: str | None = None
    transient: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def dead_letters(outcomes: Iterable[Outcome]) -> list[DeadLetter]:
    """The open items, newest failure first. Outcomes may come in any order; two at the same
    instant are taken successes last (a run that failed and a rerun finishing in the same
    second leave the item closed, as the rerun is the one that ran last)."""
    by_item: dict[tuple[str, str, str | None], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_item[(outcome.hospital_key, outcome.asset, outcome.check)].append(outcome)
    out = []
    for (hospital, asset, check), items in by_item.items():
        first: Outcome | None = None
        latest: Outcome | None = None
        attempts = 0
        for outcome in sorted(items, key=lambda o: (o.at, o.ok)):
            if outcome.ok:
                first, latest, attempts = None, None, 0
                continue
            first = first or outcome
            latest = outcome
            attempts += 1
        if latest is None or first is None:
            continue
        out.append(
            DeadLetter(
                hospital_key=hospital, asset=asset, check=check,
                failure_kind=latest.failure_kind or "internal",
                first_failed_at=first.at, latest_failed_at=latest.at, attempts=attempts,
                reason=latest.reason, run_id=latest.run_id, job_name=latest.job_name,
                transient=latest.transient,
            )
        )
    return sorted(out, key=lambda d: (-d.latest_failed_at, d.hospital_key, d.asset, d.check or ""))


def downstream_closure(assets: Iterable[str], children: Mapping[str, Iterable[str]]) -> set[str]:
    """The assets and everything downstream of them in ``children`` (asset -> direct children)."""
    out: set[str] = set()
    todo = list(assets)
    while todo:
        asset = todo.pop()
        if asset in out:
            continue
        out.add(asset)
        todo.extend(children.get(asset, ()))
    return out


def retry_plan(
    letters: Iterable[DeadLetter], children: Mapping[str, Iterable[str]]
) -> dict[tuple[str, ...], list[str]]:
    """{sorted asset selection: hospitals}: each hospital's failed assets (a failed blocking check
    re-runs the asset it checks) and their downstream, hospitals with the same selection grouped
    so that each group is one backfill."""
    failed: dict[str, set[str]] = defaultdict(set)
    for letter in letters:
        failed[letter.hospital_key].add(letter.asset)
    plan: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for hospital in sorted(failed):
        plan[tuple(sorted(downstream_closure(failed[hospital], children)))].append(hospital)
    return dict(plan)


def hospitals(letters: Iterable[DeadLetter]) -> list[str]:
    """The hospitals with at least one open item, each once, in the order first seen."""
    return list(dict.fromkeys(letter.hospital_key for letter in letters))
