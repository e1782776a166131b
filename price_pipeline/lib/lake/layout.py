"""Where each dataset lives in the lake. One function or constant per key, so no path is spelled
twice: every other module asks this one.

    raw/<aa>/<sha256>.<ext>                                   every downloaded version, immutable
    manifests/hospital_key=<k>/mrf_files.json                 the hospital's current file versions
    parsed/hospital_key=<k>/file_sha256=<sha>/rows.parquet    source-faithful rows of one version
    parsed/hospital_key=<k>/file_sha256=<sha>/summary.json    parse summary and findings
    parsed/hospital_key=<k>/file_sha256=<sha>/quarantine.parquet
    parsed/hospital_key=<k>/current.json                      which parsed versions are current
    prices/hospital_key=<k>/prices.parquet                    canonical prices of the current files
    prices_history/hospital_key=<k>/file_sha256=<sha>.parquet every version's prices, kept
    prices_history/hospital_key=<k>/versions.parquet          the hospital's versions (current flag)
    price_changes/hospital_key=<k>/changes.parquet            newest version vs the previous one
    conformance/hospital_key=<k>/file_sha256=<sha>.json       CMS conformance report of one version
    conformance/hospital_key=<k>/report.parquet               one summary row per current file
    quality/quarantine.parquet, quality/price_anomalies.parquet   table-wide quality outputs
    catalog/hospital_catalog.json, catalog/hospitals.parquet
    exports/<name>.csv, exports/<name>.parquet                the national extracts
    exports/subsets/<filters>/<name>.csv|.parquet             extracts filtered by run config
    marts/<name>/built_at=<UTC stamp>/<name>.parquet          every build's snapshot of a table, kept
    marts/<name>/latest/<name>.parquet                        the newest snapshot, at a stable path
    marts/_latest.json                                        the newest build: its stamp and keys
"""

from __future__ import annotations

__all__ = [
    "CATALOG_SNAPSHOT_KEY",
    "FILES_MANIFESTS_PREFIX",
    "HOSPITALS_KEY",
    "PRICES_PREFIX",
    "conformance_report_key",
    "conformance_table_key",
    "files_manifest_key",
    "parsed_current_key",
    "parsed_prefix",
    "prices_key",
    "raw_key",
]


def raw_key(sha256: str, extension: str) -> str:
    """Content address of a raw file: identical bytes are stored once, under one key."""
    ext = extension.lstrip(".").lower() or "bin"
    return f"raw/{sha256[:2]}/{sha256}.{ext}"


CATALOG_SNAPSHOT_KEY = "catalog/hospital_catalog.json"
HOSPITALS_KEY = "catalog/hospitals.parquet"

FILES_MANIFESTS_PREFIX = "manifests/"
PRICES_PREFIX = "prices/"


def hospital_key_of(key: str) -> str | None:
    """The hospital of a per-hospital key (``<dataset>/hospital_key=<k>/...``), else None."""
    parts = key.split("/")
    if len(parts) > 2 and parts[1].startswith("hospital_key="):
        return parts[1][len("hospital_key=") :]
    return None


def files_manifest_key(hospital_key: str) -> str:
    return f"{FILES_MANIFESTS_PREFIX}hospital_key={hospital_key}/mrf_files.json"


def parsed_prefix(hospital_key: str, file_sha256: str) -> str:
    return f"parsed/hospital_key={hospital_key}/file_sha256={file_sha256}"


def parsed_rows_key(hospital_key: str, file_sha256: str) -> str:
    return f"{parsed_prefix(hospital_key, file_sha256)}/rows.parquet"


def parsed_summary_key(hospital_key: str, file_sha256: str) -> str:
    return f"{parsed_prefix(hospital_key, file_sha256)}/summary.json"


def parsed_quarantine_key(hospital_key: str, file_sha256: str) -> str:
    return f"{parsed_prefix(hospital_key, file_sha256)}/quarantine.parquet"


def parsed_current_key(hospital_key: str) -> str:
    return f"parsed/hospital_key={hospital_key}/current.json"


def prices_key(hospital_key: str) -> str:
    return f"{PRICES_PREFIX}hospital_key={hospital_key}/prices.parquet"


def is_prices_key(key: str) -> bool:
    """True for a hospital's current prices file (a key under :data:`PRICES_PREFIX` may be anything)."""
    hospital_key = hospital_key_of(key)
    return hospital_key is not None and key == prices_key(hospital_key)


def prices_glob(lake_root: str) -> str:
    return f"{lake_root.rstrip('/')}/{PRICES_PREFIX}*/prices.parquet"


def conformance_report_key(hospital_key: str, file_sha256: str) -> str:
    return f"conformance/hospital_key={hospital_key}/file_sha256={file_sha256}.json"


def conformance_table_key(hospital_key: str) -> str:
    return f"conformance/hospital_key={hospital_key}/report.parquet"


QUARANTINE_KEY = "quality/quarantine.parquet"
PRICE_ANOMALIES_KEY = "quality/price_anomalies.parquet"


# Price history (price_pipeline.lib.prices.history): every version's prices, the version list,
# and the newest-vs-previous comparison.
def prices_history_key(hospital_key: str, file_sha256: str) -> str:
    return f"prices_history/hospital_key={hospital_key}/file_sha256={file_sha256}.parquet"


def price_versions_key(hospital_key: str) -> str:
    return f"prices_history/hospital_key={hospital_key}/versions.parquet"


def price_changes_key(hospital_key: str) -> str:
    return f"price_changes/hospital_key={hospital_key}/changes.parquet"


# Published analytics tables (price_pipeline.lib.analytics.publish): one immutable snapshot per dbt build,
# the newest also at a stable path, and a manifest naming one consistent set of snapshots.
MARTS_PREFIX = "marts"
MARTS_MANIFEST_KEY = "marts/_latest.json"


def mart_snapshot_key(name: str, built_at: str) -> str:
    return f"{MARTS_PREFIX}/{name}/built_at={built_at}/{name}.parquet"


def mart_latest_key(name: str) -> str:
    return f"{MARTS_PREFIX}/{name}/latest/{name}.parquet"


def export_key(name: str, extension: str, subset: str | None = None) -> str:
    folder = f"exports/subsets/{subset}" if subset else "exports"
    return f"{folder}/{name}.{extension}"
