"""Batches of hospitals for one run: consecutive partitions of one host (no Dagster imports).

A run over a partition *range* pays the process start and code-location load once for many
small hospitals. Dagster ranges are contiguous in the partitions' order (dynamic partitions: the
order they were added), so new hospitals are added grouped by host (:func:`order_for_adding`)
and a batch is a run of consecutive wanted partitions served by the same host
(:func:`plan_batches`): the per-host run limit then counts a batch as one run of its host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Batch:
    """Consecutive partitions (in the partitions' order) of one host."""

    keys: tuple[str, ...]
    host: str

    @property
    def first(self) -> str:
        return self.keys[0]

    @property
    def last(self) -> str:
        return self.keys[-1]


def order_for_adding(keys: Iterable[str], host_of: Mapping[str, str]) -> list[str]:
    """New partition keys ordered by (host, key), so that one host's hospitals are consecutive."""
    return sorted(keys, key=lambda k: (host_of.get(k, ""), k))


def plan_batches(
    order: Sequence[str], wanted: Iterable[str], host_of: Mapping[str, str], *, max_size: int,
    fill: Iterable[str] = (), max_gap: int = 0,
) -> list[Batch]:
    """Cut the wanted keys into batches of at most ``max_size`` consecutive (in ``order``) keys of
    one host. A wanted key missing from ``order`` gets a batch of its own; every wanted key is in
    exactly one batch, and batches come in ``order``.

    With ``fill`` and ``max_gap``, a gap of at most ``max_gap`` consecutive unwanted keys that are
    all in ``fill`` (and of the batch's host) does not cut a batch: they are taken along, so that
    scattered wanted keys share one run when redoing a few more keys costs less than another run.
    A batch starts and ends with a wanted key; ``max_size`` counts the keys taken along too."""
    wanted_set, fill_set = set(wanted), set(fill)
    batches: list[Batch] = []
    current: list[str] = []
    current_host: str | None = None
    gap: list[str] = []  # fill keys after the batch's last wanted key, taken along if another follows

    def flush() -> None:
        nonlocal current, current_host, gap
        if current:
            batches.append(Batch(tuple(current), current_host or ""))
        current, current_host, gap = [], None, []

    for key in order:
        host = host_of.get(key, "")
        if key not in wanted_set:
            if current and key in fill_set and host == current_host and len(gap) < max_gap:
                gap.append(key)
            else:
                flush()
            continue
        if current and (host != current_host or len(current) + len(gap) >= max(1, max_size)):
            flush()
        current.extend(gap)
        gap = []
        current.append(key)
        current_host = host
    flush()
    placed = {k for b in batches for k in b.keys}
    batches.extend(Batch((k,), host_of.get(k, "")) for k in sorted(wanted_set - placed))
    return batches
