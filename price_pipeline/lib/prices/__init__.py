"""Prices: the canonical long price table of a hospital, its history and its changes.

* :func:`build_hospital_prices_with_history` — the step (the ``prices`` asset): normalise each
  current parsed version (:mod:`.normalize`, codes cleaned by :mod:`.codes`), keep it in the
  history, publish the current table; returns a :class:`HistoryResult`.
* :func:`compute_price_changes` — the ``price_changes`` step; returns a :class:`ChangesResult`.
* :mod:`.payers` — payer canonicalisation and classes (also called by dbt through
  :mod:`price_pipeline.lib.analytics.dbt_plugin`).
"""

from price_pipeline.lib.prices.history import (
    ChangesResult,
    HistoryResult,
    build_hospital_prices_with_history,
    compute_price_changes,
    read_versions,
)
from price_pipeline.lib.prices.normalize import normalize_to_prices

__all__ = [
    "ChangesResult",
    "HistoryResult",
    "build_hospital_prices_with_history",
    "compute_price_changes",
    "normalize_to_prices",
    "read_versions",
]
