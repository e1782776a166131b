"""Resources: the one place where the environment (embedded or production) reaches Dagster.

``PricePipelineResource`` carries the resolved :class:`price_pipeline.settings.Settings`
values as plain config (visible in the UI's resource tab) and hands out the lake, the
registry and settings objects of the library layer.
"""


import dataclasses
import tempfile
from functools import cached_property
from pathlib import Path

import dagster as dg

from price_pipeline.lib.lake import Lake, open_lake
from price_pipeline.lib.registry import Registry
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
    # discovery and change detection (docs/discovery.md)
    discovery_sources: list[str] = ["catalog_api", "cms_hpt", "overrides"]
    catalog_states: list[str] = []
    catalog_session_url: str | None = None
    overrides_path: str | None = None
    cms_hpt_recheck_hours: float = 24.0
    cms_hpt_max_sites_per_tick: int = 1000
    discovery_workers: int = 16
    max_catalog_drop_fraction: float = 0.5
    host_max_concurrency: int = 4
    host_max_requests_per_second: float = 10.0
    change_sweep_max_files: int = 2000
    # CMS rule selection of conformance_reports (docs/quality.md)
    cms_rules: str = "major"
    cms_rules_as_of: str | None = None
    # table-wide quality: ceiling of the extreme_amounts check (dollars)
    extreme_amount_ceiling: float = 10_000_000.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "PricePipelineResource":
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings) if f.name in cls.model_fields}
        values.update(
            data_dir=str(settings.data_dir),
            warehouse_path=str(settings.warehouse_path),
            allowed_private_hosts=list(settings.allowed_private_hosts),
            discovery_sources=list(settings.discovery_sources),
            catalog_states=list(settings.catalog_states),
        )
        return cls(**values)

    @cached_property
    def settings(self) -> Settings:
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update(
            data_dir=Path(self.data_dir),
            warehouse_path=Path(self.warehouse_path),
            allowed_private_hosts=tuple(self.allowed_private_hosts),
            discovery_sources=tuple(self.discovery_sources),
            catalog_states=tuple(self.catalog_states),
            **Settings.secrets_from_env(),
        )
        return Settings(**values)

    @cached_property
    def lake(self) -> Lake:
        return open_lake(self.lake_url, endpoint_url=self.s3_endpoint_url)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.registry_url)

    def scratch_dir(self, name: str):
        """A per-use local working folder under the data dir (same filesystem as a local lake)."""
        base = Path(self.data_dir) / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=f"{name}-", dir=base)
