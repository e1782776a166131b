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
    user_agent: str = "price_pipeline/0.1 (+https://github.com/price-pipeline)"
    dbt_target: str = "embedded"
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def is_s3_lake(self) -> bool:
        return self.lake_url.startswith("s3://")

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
            dbt_target="production" if (lake_url or "").startswith("s3://") else "embedded",
        )
