"""Catalog assets: which hospitals exist and where their machine-readable files are."""


import dataclasses
import io
import json
import time

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.defs.ops.retries import timed
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.defs.table_metadata import declared_schema, lake_table_metadata
from price_pipeline.lib.discovery import (
    CATALOG_API,
    CatalogHospital,
    apply_discovery,
    discover,
    files_fingerprint,
    guard_against_shrink,
    hospital_key,
)
from price_pipeline.lib.lake import layout

CATALOG_SOURCE = CATALOG_API  # the claims the ingestion falls back on


class HospitalCatalogConfig(dg.Config):
    """Set allow_shrink after checking that a sharp drop in hospitals is real."""

    allow_shrink: bool = False


def hospital_record(h: CatalogHospital) -> dict:
    """The registry/claim payload of one catalog entry, keyed by its partition key."""
    record = dataclasses.asdict(h)
    record["hospital_key"] = hospital_key(h)
    record["files_fingerprint"] = files_fingerprint(h)
    return record


def snapshot_records(records: list[dict]) -> list[dict]:
    """Reconciled records as written to the lake snapshot (no internal bookkeeping fields)."""
    return [{k: v for k, v in r.items() if k not in ("files_json",)} for r in records]


@dg.asset(
    group_name="catalog",
    kinds={"python", "json"},
    owners=["team:ingestion"],
)
@timed
def hospital_catalog(
    context: dg.AssetExecutionContext, config: HospitalCatalogConfig, price_pipeline: PricePipelineResource
) -> dg.MaterializeResult:
    """Every hospital the discovery sources know, reconciled, with its MRF links, as found now.

    Sources (``PRICE_PIPELINE_DISCOVERY_SOURCES``): the PRA-style catalog API, each hospital's
    ``cms-hpt.txt`` and the manual overrides file. Every claim is kept in the registry with its
    source and timestamps; claims are merged on CCN, NPI and EIN+name into one record per
    hospital with a standardised address and ZIP-centroid coordinates. The listing is
    snapshotted to the lake. An empty or sharply shrunken result fails the materialization
    instead of removing hospitals (set ``allow_shrink`` to confirm a real drop).
    """
    registry = price_pipeline.registry
    settings = price_pipeline.settings
    result = discover(settings, registry)
    previously_active = len(registry.list_hospitals(status="active"))
    if not config.allow_shrink:
        guard_against_shrink(
            previously_active, len(result.records), max_drop_fraction=settings.max_catalog_drop_fraction
        )
    counts = apply_discovery(registry, result)
    records = snapshot_records(result.records)
    payload = json.dumps(
        {"fetched_from": price_pipeline.settings.catalog_url, "fetched_at": time.time(), "hospitals": records},
        default=str,
    ).encode()
    price_pipeline.lake.put_bytes(payload, layout.CATALOG_SNAPSHOT_KEY)
    n_files = sum(len(r["files"]) for r in records)
    for conflict in result.conflicts[:20]:
        context.log.warning(f"identity conflict: {conflict}")
    for finding in result.findings[:20]:
        context.log.warning(
            f"{finding['rule']}: {finding['source']} {finding['source_id']!r} "
            f"(hospital {finding['hospital_key']}) {finding['field']}: {finding['message']}"
        )
    context.log.info(f"discovery found {len(records)} hospitals and {n_files} files ({counts['new']} new)")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(records),
            "hospitals": len(records),
            "files": n_files,
            "new_hospitals": counts["new"],
            "new_files": counts["new_files"],
            "identity_conflicts": len(result.conflicts),
            # discovery_findings in the registry: text cleaned of NULs / lone surrogates,
            # records the database refused (the others were stored)
            "text_cleaned": counts["text_cleaned"],
            "records_rejected": counts["records_rejected"],
            "excluded_by_overrides": len(result.excluded),
            "sources": dg.MetadataValue.json(result.stats),
            "bytes": len(payload),
            "lake_key": dg.MetadataValue.path(price_pipeline.lake.uri(layout.CATALOG_SNAPSHOT_KEY)),
        }
    )


HOSPITALS_SCHEMA = pa.schema(
    [
        ("hospital_key", pa.string()),
        ("ccn", pa.string()),
        ("name", pa.string()),
        ("address", pa.string()),
        ("city", pa.string()),
        ("state", pa.string()),
        ("zip", pa.string()),
        ("website", pa.string()),
        ("ein", pa.string()),
        ("npi", pa.string()),
        ("address_standardized", pa.string()),
        ("zip5", pa.string()),
        ("county", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("sources", pa.string()),
        ("status", pa.string()),
        ("n_files", pa.int64()),
        ("first_seen_at", pa.timestamp("us", tz="UTC")),
        ("last_seen_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dg.asset(
    deps=[hospital_catalog],
    group_name="catalog",
    kinds={"python", "parquet"},
    owners=["team:ingestion"],
    metadata=declared_schema(HOSPITALS_SCHEMA),
)
@timed
def hospitals(context: dg.AssetExecutionContext, price_pipeline: PricePipelineResource) -> dg.MaterializeResult:
    """One row per hospital ever listed: identity (CCN, EIN, NPI), address (as published and
    standardised, with ZIP-centroid coordinates), status (active or removed) and file count.

    Hospitals missing from the latest catalog snapshot are marked removed; their history stays.
    Written to the lake as ``catalog/hospitals.parquet`` for dbt.
    """
    lake = price_pipeline.lake
    registry = price_pipeline.registry
    snapshot = json.loads(lake.get_bytes(layout.CATALOG_SNAPSHOT_KEY))
    listed = {r["hospital_key"]: r for r in snapshot["hospitals"]}
    active_before = {r["hospital_key"] for r in registry.list_hospitals(status="active")}
    removed = registry.mark_removed(sorted(active_before - set(listed)))
    rows = registry.list_hospitals()
    for row in rows:
        row["n_files"] = len(listed.get(row["hospital_key"], {}).get("files", []))
    table = pa.Table.from_pylist(
        [{f.name: row.get(f.name) for f in HOSPITALS_SCHEMA} for row in rows], schema=HOSPITALS_SCHEMA
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    lake.put_bytes(buffer.getvalue(), layout.HOSPITALS_KEY)
    context.log.info(f"{table.num_rows} hospitals, {removed} newly marked removed")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "active": sum(1 for r in rows if r["status"] == "active"),
            "removed": sum(1 for r in rows if r["status"] == "removed"),
            "bytes": buffer.tell(),
            **lake_table_metadata(lake, layout.HOSPITALS_KEY),
        }
    )
