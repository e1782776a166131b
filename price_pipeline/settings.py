"""Every runtime setting of price_pipeline, read from the environment in one place.

The embedded default needs nothing installed: a project-local data folder holds the lake,
the SQLite registry and the DuckDB warehouse. Production is selected by configuration only:
point ``PRICE_PIPELINE_LAKE_URL`` at ``s3://bucket/prefix`` (plus ``PRICE_PIPELINE_S3_ENDPOINT_URL``
for MinIO) and ``PRICE_PIPELINE_REGISTRY_URL`` at a ``postgresql://`` URL. The README documents
each variable; this module has no Dagster imports so the CLI and benchmarks share it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEMO_CATALOG_URL = "http://127.0.0.1:8765/api/v1/hospitals"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :meth:`from_env`; tests build it directly."""

    data_dir: Path
    lake_url: str
    registry_url: str
    warehouse_path: Path
    catalog_url: str
    s3_endpoint_url: str | None = None
    # host or host:port entries allowed even when they resolve to loopback/private addresses
    # (the bundled demo and tests); everything else must be a public address.
    allowed_private_hosts: tuple[str, ...] = ()
    max_download_bytes: int = 20 * 1024**3
    # Decompressed/compressed ratio above which an archive is treated as a bomb.
    max_decompression_ratio: int = 200
    http_timeout_seconds: float = 60.0
    # Overall limits on top of the per-read timeout (lib/fetch/http/budget.py): one download attempt
    # (redirects, headers and body), and one small request (catalog page, session, cms-hpt.txt,
    # change probe) with its redirects. A download is also ended when it receives fewer than
    # download_min_bytes_per_second on average over a window of http_timeout_seconds (0 = off).
    download_deadline_seconds: float = 4 * 3600.0
    request_deadline_seconds: float = 120.0
    download_min_bytes_per_second: float = 1024.0
    user_agent: str = "price_pipeline/0.1 (+https://github.com/price-pipeline)"
    dbt_target: str = "embedded"
    # -- discovery and change detection (docs/discovery.md) --------------------------------------
    # comma-separated discovery sources, in precedence order: catalog_api, cms_hpt, overrides
    discovery_sources: tuple[str, ...] = ("catalog_api", "cms_hpt", "overrides")
    # two-letter states queried one by one (empty: one national query)
    catalog_states: tuple[str, ...] = ()
    # POST endpoint that issues a catalog session token (empty: the catalog needs no session)
    catalog_session_url: str | None = None
    catalog_api_key: str | None = field(default=None, repr=False)
    overrides_path: str | None = None
    cms_hpt_recheck_hours: float = 24.0
    cms_hpt_max_sites_per_tick: int = 1000
    discovery_workers: int = 16
    max_catalog_drop_fraction: float = 0.5
    # client-side per-host limits of the downloader and probes (one process)
    host_max_concurrency: int = 4
    host_max_requests_per_second: float = 10.0
    change_sweep_max_files: int = 2000
    # -- CMS conformance (docs/quality.md "Which rules are applied") ------------------------------
    # major (as the official CLI: latest rules of the declared major) | declared | in-force
    cms_rules: str = "major"
    # YYYY-MM-DD for cms_rules=in-force (empty: the day of the run)
    cms_rules_as_of: str | None = None
    # -- table-wide quality (docs/quality.md) ---------------------------------------------------
    # dollar amount above which the extreme_amounts check flags a price
    extreme_amount_ceiling: float = 10_000_000.0
    # -- operations (docs/operations.md) ------------------------------------------------------------
    # the analytics build, the quality outputs and the expectations suite run at the latest this
    # long after the first prices change they have not seen, even while ingestion never settles
    analytics_max_wait_minutes: float = 30.0
    extras: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cms_rules not in ("major", "declared", "in-force"):
            raise ValueError(f"PRICE_PIPELINE_CMS_RULES must be major, declared or in-force, not {self.cms_rules!r}")
        if self.cms_rules_as_of:
            import datetime as dt

            try:
                dt.date.fromisoformat(self.cms_rules_as_of)
            except ValueError as e:
                raise ValueError(f"PRICE_PIPELINE_CMS_RULES_AS_OF is not a YYYY-MM-DD date: {self.cms_rules_as_of!r}"
                                 ) from e

    @property
    def is_s3_lake(self) -> bool:
        return self.lake_url.startswith("s3://")

    def archive_limits(self) -> dict[str, float]:
        """The caps on a zip/gzip payload, as keyword arguments of ``parse_to_parquet`` and
        ``validate_file``: decompressed bytes (``max_download_bytes``, the cap the download also
        applies to a decoded body) and ``max_decompression_ratio``."""
        return {"max_decompressed_bytes": self.max_download_bytes, "max_ratio": float(self.max_decompression_ratio)}

    @staticmethod
    def secrets_from_env() -> dict[str, str | None]:
        """Credentials, read where they are used: never carried in resource config (the UI shows
        config) or in logs."""
        return {"catalog_api_key": _env("PRICE_PIPELINE_CATALOG_API_KEY")}

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(_env("PRICE_PIPELINE_DATA_DIR", str(PROJECT_ROOT / ".data"))).resolve()
        lake_url = _env("PRICE_PIPELINE_LAKE_URL", str(data_dir / "lake"))
        return cls(
            data_dir=data_dir,
            lake_url=lake_url,
            registry_url=_env("PRICE_PIPELINE_REGISTRY_URL", f"sqlite:///{data_dir / 'registry.sqlite'}"),
            warehouse_path=Path(_env("PRICE_PIPELINE_WAREHOUSE_PATH", str(data_dir / "warehouse.duckdb"))),
            catalog_url=_env("PRICE_PIPELINE_CATALOG_URL", DEFAULT_DEMO_CATALOG_URL),
            s3_endpoint_url=_env("PRICE_PIPELINE_S3_ENDPOINT_URL"),
            allowed_private_hosts=_csv(_env("PRICE_PIPELINE_ALLOWED_PRIVATE_HOSTS")),
            max_download_bytes=int(_env("PRICE_PIPELINE_MAX_DOWNLOAD_BYTES", str(20 * 1024**3))),
            max_decompression_ratio=int(_env("PRICE_PIPELINE_MAX_DECOMPRESSION_RATIO", "200")),
            http_timeout_seconds=float(_env("PRICE_PIPELINE_HTTP_TIMEOUT_SECONDS", "60")),
            download_deadline_seconds=float(_env("PRICE_PIPELINE_DOWNLOAD_DEADLINE_SECONDS", "14400")),
            request_deadline_seconds=float(_env("PRICE_PIPELINE_REQUEST_DEADLINE_SECONDS", "120")),
            download_min_bytes_per_second=float(_env("PRICE_PIPELINE_DOWNLOAD_MIN_BYTES_PER_SECOND", "1024")),
            dbt_target="production" if (lake_url or "").startswith("s3://") else "embedded",
            discovery_sources=_csv(_env("PRICE_PIPELINE_DISCOVERY_SOURCES", "catalog_api,cms_hpt,overrides")),
            catalog_states=tuple(s.upper() for s in _csv(_env("PRICE_PIPELINE_CATALOG_STATES"))),
            catalog_session_url=_env("PRICE_PIPELINE_CATALOG_SESSION_URL"),
            overrides_path=_env("PRICE_PIPELINE_DISCOVERY_OVERRIDES"),
            cms_hpt_recheck_hours=float(_env("PRICE_PIPELINE_CMS_HPT_RECHECK_HOURS", "24")),
            cms_hpt_max_sites_per_tick=int(_env("PRICE_PIPELINE_CMS_HPT_MAX_SITES_PER_TICK", "1000")),
            discovery_workers=int(_env("PRICE_PIPELINE_DISCOVERY_WORKERS", "16")),
            max_catalog_drop_fraction=float(_env("PRICE_PIPELINE_MAX_CATALOG_DROP_FRACTION", "0.5")),
            host_max_concurrency=int(_env("PRICE_PIPELINE_HOST_MAX_CONCURRENCY", "4")),
            host_max_requests_per_second=float(_env("PRICE_PIPELINE_HOST_MAX_RPS", "10")),
            change_sweep_max_files=int(_env("PRICE_PIPELINE_CHANGE_SWEEP_MAX_FILES", "2000")),
            extreme_amount_ceiling=float(_env("PRICE_PIPELINE_EXTREME_AMOUNT_CEILING", "10000000")),
            cms_rules=_env("PRICE_PIPELINE_CMS_RULES", "major"),
            cms_rules_as_of=_env("PRICE_PIPELINE_CMS_RULES_AS_OF"),
            analytics_max_wait_minutes=float(_env("PRICE_PIPELINE_ANALYTICS_MAX_WAIT_MINUTES", "30")),
            **cls.secrets_from_env(),
        )
