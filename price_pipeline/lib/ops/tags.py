"""Run tags and the host rule: the one owner of every tag the run queue (``dagster.yaml``), the
sensors, the schedules and the CLI read or write.

* ``dagster/priority`` — the QueuedRunCoordinator dequeues higher values first (default 0).
  Hospitals listed in ``PRICE_PIPELINE_PRIORITY_HOSPITALS`` (comma-separated keys, e.g. the ones a
  customer asked for) get :data:`PRIORITY_HIGH`; new catalog work runs at :data:`PRIORITY_NORMAL`;
  bulk backfills and retries at :data:`PRIORITY_BULK`; the weekly re-scan at
  :data:`PRIORITY_RESCAN`, below everything else.
* ``price_pipeline/hospital`` — one run per hospital at a time (tag limit 1 per value).
* ``price_pipeline/host`` — the host serving the hospital's files (:func:`hospital_host`); at
  most a few concurrent runs per host (tag limit per value), so one slow vendor host is not
  hammered by a wave of its hospitals.
* ``price_pipeline/layer`` — ingestion, catalog, analytics, quality, ops: what the analytics and
  expectations sensors count as work in flight. Jobs carry it; :func:`hospital_run_tags` and
  :func:`bulk_run_tags` set it too, for runs of the implicit asset job.
* ``price_pipeline/trigger`` — who asked: catalog_sensor, mrf_change_sensor, cli, cli-backfill,
  retry-failed, weekly_full_rescan.
* ``price_pipeline/bulk`` — ``true`` on every bulk run (backfill, retry-failed, weekly re-scan);
  the run queue caps them below the run limit so that a slot is always left for new work.
* ``dagster/asset_partition_range_start``/``_end`` and ``price_pipeline/batch_size`` — a run over a
  range of consecutive hospital partitions (:func:`range_tags`, defs/ingestion/batching.py).
* ``price_pipeline/force_download``, ``price_pipeline/full_refresh``,
  ``price_pipeline/accept_row_drop`` — ``true`` asks the run to download everything, to rebuild
  every incremental dbt table, to accept a legitimately smaller new file version.

The tag values that name a layer are the constants :data:`INGESTION`, :data:`CATALOG`,
:data:`ANALYTICS`, :data:`QUALITY` and :data:`OPS`; a job or a run states its layer with
:func:`layer_tags`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

PRIORITY_TAG = "dagster/priority"
PARTITION_TAG = "dagster/partition"
HOSPITAL_TAG = "price_pipeline/hospital"
HOST_TAG = "price_pipeline/host"
LAYER_TAG = "price_pipeline/layer"
TRIGGER_TAG = "price_pipeline/trigger"
BULK_TAG = "price_pipeline/bulk"
BULK_ID_TAG = "price_pipeline/bulk_id"  # shared by the runs of one backfill / retry-failed call
BULK_TITLE_TAG = "price_pipeline/bulk_title"
FORCE_DOWNLOAD_TAG = "price_pipeline/force_download"
# "true" on a build_analytics run: every per-hospital incremental dbt table is rebuilt from
# scratch (dbt --full-refresh) instead of only the hospitals whose versions changed.
FULL_REFRESH_TAG = "price_pipeline/full_refresh"
# "true": an operator accepts a legitimately smaller new version (docs/quality.md)
ACCEPT_ROW_DROP_TAG = "price_pipeline/accept_row_drop"
# Dagster's tags for a run over a partition range, and the number of hospitals in it.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
BATCH_SIZE_TAG = "price_pipeline/batch_size"
BACKFILL_TAG = "dagster/backfill"

# Values of LAYER_TAG.
INGESTION = "ingestion"
CATALOG = "catalog"
ANALYTICS = "analytics"
QUALITY = "quality"
OPS = "ops"

PRIORITY_HIGH = 10
PRIORITY_NORMAL = 0
PRIORITY_BULK = -5
PRIORITY_RESCAN = -10

NO_HOST = "none"
# Dagster tag values used in concurrency limits are kept short; a DNS label is at most 63.
MAX_HOST_LENGTH = 63


def layer_tags(layer: str) -> dict[str, str]:
    """The tag a job or run carries to say which layer's work it is (what the settle rule of the
    rebuild sensors counts, defs/ops/settle.py)."""
    return {LAYER_TAG: layer}


def range_tags(first: str, last: str, size: int) -> dict[str, str]:
    """Tags of a run over the consecutive hospital partitions ``first``..``last`` (``size`` of them)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last, BATCH_SIZE_TAG: str(size)}


def host_tag_value(host: str | None) -> str:
    """A host as the ``price_pipeline/host`` tag holds it: :data:`NO_HOST` when unknown, at most
    :data:`MAX_HOST_LENGTH` characters."""
    return (host or NO_HOST)[:MAX_HOST_LENGTH]


def priority_hospitals(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """``PRICE_PIPELINE_PRIORITY_HOSPITALS`` of ``env`` (default: the process environment), read
    per call so that an operator's change reaches the next tick."""
    from price_pipeline.settings import Settings

    return frozenset(Settings.from_env(env).priority_hospitals)


def hospital_host(urls: Iterable[str]) -> str:
    """The host most of the hospital's files come from (ties: the first listed), lower-case and
    at most 63 characters; :data:`NO_HOST` when no URL has a host. The one rule every launcher
    uses, so a hospital always counts against the same per-host limit."""
    counts: dict[str, int] = {}
    for url in urls:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:  # a malformed URL names no host
            host = ""
        if host:
            counts[host] = counts.get(host, 0) + 1
    return host_tag_value(max(counts, key=lambda h: counts[h])) if counts else NO_HOST


def file_urls(files: Iterable[dict] | None) -> list[str]:
    """The URLs of a reconciled file list (``[{url, source, ...}]``: a discovery record's
    ``files`` or the registry's ``files_json``), the input of :func:`hospital_host`."""
    return [f["url"] for f in files or () if f.get("url")]


def registry_hospital_urls(registry) -> dict[str, list[str]]:
    """{hospital key: file URLs} of the reconciled catalog in the registry (what the catalog
    sensor's records hold), for launchers that have no discovery record at hand."""
    import json

    out = {}
    for row in registry.list_hospitals():
        out[row["hospital_key"]] = file_urls(json.loads(row["files_json"]) if row.get("files_json") else [])
    return out


def hospital_run_tags(
    hospital_key: str,
    urls: Iterable[str] = (),
    *,
    trigger: str,
    priority: int | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Tags for an ingestion run of one hospital. An explicit ``priority`` wins; otherwise
    listed priority hospitals get :data:`PRIORITY_HIGH` and the rest no tag (0)."""
    tags = {
        HOSPITAL_TAG: hospital_key,
        HOST_TAG: hospital_host(urls),
        **layer_tags(INGESTION),
        TRIGGER_TAG: trigger,
    }
    if priority is None and hospital_key in priority_hospitals(env):
        priority = PRIORITY_HIGH
    if priority is not None:
        tags[PRIORITY_TAG] = str(priority)
    return tags


def batch_run_tags(first: str, last: str, size: int, host: str | None, *, trigger: str) -> dict[str, str]:
    """Tags for an ingestion run over a range of consecutive hospitals of one host (the catalog
    sensor's batches, the re-runs of a failed batch)."""
    return {**range_tags(first, last, size), HOST_TAG: host_tag_value(host), **layer_tags(INGESTION),
            TRIGGER_TAG: trigger}


def bulk_run_tags(host: str, *, trigger: str, priority: int = PRIORITY_BULK, layer: str = INGESTION) -> dict[str, str]:
    """Tags for the runs of a bulk launch (a backfill, retry-failed, the weekly re-scan) of
    hospitals served by one host: capped by the bulk limit, below new work's priority."""
    return {
        HOST_TAG: host,
        **layer_tags(layer),
        TRIGGER_TAG: trigger,
        BULK_TAG: "true",
        PRIORITY_TAG: str(priority),
    }
