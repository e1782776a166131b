"""When the pipeline is busy, and the bound on staleness: when a downstream rebuild (the analytics
build, the quality outputs, the expectations suite) runs although ingestion has not settled.

The sensors prefer to wait until no ingestion or catalog run is queued or running, so that a wave
of hospitals causes one rebuild. With a change sensor adding runs every few minutes across
thousands of hospitals that moment may never come; so once the first change they have not yet
seen is ``max_wait_seconds`` old they run anyway (``PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES``,
default 30).
"""

from __future__ import annotations

from dataclasses import dataclass

from price_pipeline.settings import followup_sensor_interval

SETTLED = "settled"
BOUND = "staleness_bound"

# How often the follow-up sensors (the analytics build, the quality outputs, the expectations
# suite, the re-runs of a failed batch) look for new work, in seconds: PRICE_PIPELINE_FOLLOWUP_SENSOR_INTERVAL, default 15. The
# expectations sensor ticks every two intervals and waits for three intervals of quiet (45 s by
# default), so its waits keep their proportions. Operators keep the default; the small national
# rehearsal in `make test` shortens it, because for 100 tiny hospitals these fixed waits, repeated
# every day of the rehearsal, cost more than the work.
FOLLOWUP_INTERVAL_SECONDS = followup_sensor_interval()


@dataclass(frozen=True)
class Decision:
    run: bool
    why: str  # SETTLED or BOUND when run; the reason to wait otherwise
    reason: str = ""


def decide(*, first_unseen_at: float | None, busy: str | None, now: float, max_wait_seconds: float) -> Decision:
    """Run now? ``first_unseen_at`` is the time of the oldest change not yet built (None: nothing
    new); ``busy`` why the pipeline is not settled (None: settled)."""
    if first_unseen_at is None:
        return Decision(False, "nothing new")
    if busy is None:
        return Decision(True, SETTLED)
    waited = max(0.0, now - first_unseen_at)
    if waited >= max_wait_seconds:
        return Decision(True, BOUND, f"{busy}, but the oldest unbuilt change is {waited:.0f} s old "
                                     f"(bound {max_wait_seconds:.0f} s)")
    return Decision(False, f"waiting: {busy} ({max_wait_seconds - waited:.0f} s left before the staleness bound)")


def busy_reason(active: dict[str, int], last_changed: dict[str, float | None], *, now: float,
                quiet_seconds: float = 0.0, queued: dict[str, int] | None = None) -> str | None:
    """Why the pipeline is busy for a sensor watching the layers of ``active`` (None: settled).

    ``active`` holds the queued-or-running run count of each watched layer (in the order they are
    named), ``last_changed`` when a run of each layer last changed state. Busy while any watched
    run is queued or running, and — with ``quiet_seconds`` — for that long after one ended.
    ``queued`` holds, for layers watched only until their runs have a run slot, the count of
    their runs still waiting in the queue."""
    running = [(layer, n) for layer, n in active.items() if n]
    waiting = [(layer, n) for layer, n in (queued or {}).items() if n]
    if running or waiting:
        parts = []
        if running:
            parts.append(" and ".join(f"{n} {layer} run{'s' if n != 1 else ''}" for layer, n in running)
                         + " queued or running")
        if waiting:
            parts.append(" and ".join(f"{n} {layer} run{'s' if n != 1 else ''}" for layer, n in waiting)
                         + " waiting for a run slot")
        return "; ".join(parts)
    for layer, changed in last_changed.items():
        if quiet_seconds and changed is not None and now - changed < quiet_seconds:
            return f"a {layer} run ended less than {quiet_seconds:.0f} s ago"
    return None
