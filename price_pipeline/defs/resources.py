"""Resources: the one place where the environment (embedded or production) reaches Dagster.

``PricePipelineResource`` carries the resolved :class:`price_pipeline.settings.Settings`
values as plain config (visible in the UI's resource tab) and hands out the lake, the
registry and settings objects of the library layer.
"""


from functools import cached_property

import dagster as dg

from price_pipeline.lib.registry import Registry
from price_pipeline.lib.storage import Lake, open_lake
from price_pipeline.settings import Settings


class PricePipelineResource(dg.ConfigurableResource):
    """Where price_pipeline keeps its data, and how it reaches the outside world."""

    data_dir: str
    lake_url: str
    registry_url: str
    warehouse_path: str
    catalog_url: str
    s3_endpoint_url: str | None = None
    allowed_private_hosts: list[str] = []
    max_download_bytes: int = 20 * 1024**3
    max_decompression_ratio: int = 200
    http_timeout_seconds: float = 60.0
    dbt_target: str = "embedded"

    @classmethod
    def from_settings(cls, settings: Settings) -> "PricePipelineResource":
        return cls(
            data_dir=str(settings.data_dir),
            lake_url=settings.lake_url,
            registry_url=settings.registry_url,
            warehouse_path=str(settings.warehouse_path),
            catalog_url=settings.catalog_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            allowed_private_hosts=list(settings.allowed_private_hosts),
            max_download_bytes=settings.max_download_bytes,
            max_decompression_ratio=settings.max_decompression_ratio,
            http_timeout_seconds=settings.http_timeout_seconds,
            dbt_target=settings.dbt_target,
        )

    @cached_property
    def settings(self) -> Settings:
        from pathlib import Path

        return Settings(
            data_dir=Path(self.data_dir),
            lake_url=self.lake_url,
            registry_url=self.registry_url,
            warehouse_path=Path(self.warehouse_path),
            catalog_url=self.catalog_url,
            s3_endpoint_url=self.s3_endpoint_url,
            allowed_private_hosts=tuple(self.allowed_private_hosts),
            max_download_bytes=self.max_download_bytes,
            max_decompression_ratio=self.max_decompression_ratio,
            http_timeout_seconds=self.http_timeout_seconds,
            dbt_target=self.dbt_target,
        )

    @cached_property
    def lake(self) -> Lake:
        return open_lake(self.lake_url, endpoint_url=self.s3_endpoint_url)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.registry_url)

    def scratch_dir(self, name: str):
        """A per-use local working folder under the data dir (same filesystem as a local lake)."""
        import tempfile
        from pathlib import Path

        base = Path(self.data_dir) / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=f"{name}-", dir=base)
