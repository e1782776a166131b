"""Prices: the canonical long price table of a hospital, its history and its changes.

* :func:`build_hospital_prices_with_history` — the step (the ``prices`` asset): normalise each
  current parsed version (:mod:`.normalize`, codes cleaned by :mod:`.codes`), keep it in the
  history, publish the current table; returns a :class:`HistoryResult`.
* :func:`compute_price_changes` — the ``price_changes`` step; returns a :class:`ChangesResult`.
* :mod:`.payers` — payer canonicalisation and classes (also called by dbt through
  :mod:`price_pipeline.lib.analytics.dbt_plugin`).

The names resolve on first use (PEP 562): the dbt plugin imports only :mod:`.payers` and
:mod:`.codes`, and every dbt process must not pay for the normaliser's pyarrow imports.
"""

from __future__ import annotations

from price_pipeline.lib.lazy import lazy_exports

# public name -> module of this package that defines it
_EXPORTS = {
    "ChangesResult": "history",
    "HistoryResult": "history",
    "build_hospital_prices_with_history": "history",
    "compute_price_changes": "history",
    "read_versions": "history",
    "normalize_to_prices": "normalize",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
