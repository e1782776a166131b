"""Freshness policies: the catalog and the marts must have been refreshed within a time window;
the UI shows them as fresh / warning / failing (the daemon evaluates them).

* ``hospital_catalog`` / ``hospitals``: refreshed every 6 hours by schedule and continuously by the
  catalog sensor — warn after 12 h, fail after 24 h.
* the dbt marts: rebuilt after every ingestion wave and at least weekly by the full re-scan —
  warn after 2 days, fail after 8 days.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

CATALOG_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=24), warn_window=timedelta(hours=12))
MARTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=8), warn_window=timedelta(days=2))

CATALOG_ASSETS = ("hospital_catalog", "hospitals")
MART_PREFIX = "mart_"


def _policy_for(key: dg.AssetKey):
    name = key.path[-1]
    if name in CATALOG_ASSETS:
        return CATALOG_FRESHNESS
    if name.startswith(MART_PREFIX):
        return MARTS_FRESHNESS
    return None


def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
    policy = _policy_for(spec.key)
    return dg.apply_freshness_policy(spec, policy) if policy is not None else spec


def with_freshness(defs: dg.Definitions) -> dg.Definitions:
    """The definitions with the freshness policies above applied to the assets they name."""
    return defs.map_asset_specs(func=_apply)
