"""Run tags that drive the run queue (``dagster.yaml``): priority and per-host limits.

* ``dagster/priority`` — the QueuedRunCoordinator dequeues higher values first (default 0).
  Hospitals listed in ``PRICE_PIPELINE_PRIORITY_HOSPITALS`` (comma-separated keys, e.g. the ones a
  customer asked for) get :data:`PRIORITY_HIGH`; bulk backfills and retries get
  :data:`PRIORITY_BULK` so they never hold up fresh catalog work.
* ``price_pipeline/hospital`` — one run per hospital at a time (tag limit 1 per value).
* ``price_pipeline/host`` — the host serving the hospital's files; at most
  ``limit`` concurrent runs per host (tag limit per value), so one slow vendor host is not
  hammered by a wave of its hospitals.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

PRIORITY_TAG = "dagster/priority"
HOSPITAL_TAG = "price_pipeline/hospital"
# the same tag the catalog sensor sets (price_pipeline.defs.catalog.sensors.HOST_TAG)
DOWNLOAD_HOST_TAG = "price_pipeline/host"
PARTITION_TAG = "dagster/partition"

PRIORITY_HIGH = 10
PRIORITY_NORMAL = 0
PRIORITY_BULK = -5


def priority_hospitals(env: Mapping[str, str] | None = None) -> frozenset[str]:
    env = os.environ if env is None else env
    return frozenset(k.strip() for k in (env.get("PRICE_PIPELINE_PRIORITY_HOSPITALS") or "").split(",") if k.strip())


def download_host(urls: Iterable[str]) -> str | None:
    """The host most of the hospital's files come from (ties: the first listed)."""
    counts: dict[str, int] = {}
    for url in urls:
        host = (urlsplit(url).hostname or "").lower()
        if host:
            counts[host] = counts.get(host, 0) + 1
    return max(counts, key=lambda h: counts[h]) if counts else None


def hospital_run_tags(
    hospital_key: str,
    urls: Iterable[str] = (),
    *,
    priority: int | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Tags for an ingestion run of one hospital. An explicit ``priority`` wins; otherwise
    listed priority hospitals get :data:`PRIORITY_HIGH` and the rest no tag (0)."""
    tags = {HOSPITAL_TAG: hospital_key}
    if priority is None and hospital_key in priority_hospitals(env):
        priority = PRIORITY_HIGH
    if priority is not None:
        tags[PRIORITY_TAG] = str(priority)
    host = download_host(urls)
    if host:
        tags[DOWNLOAD_HOST_TAG] = host
    return tags
