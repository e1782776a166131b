"""Resources: the one place where the environment (embedded or production) reaches Dagster.

``PricePipelineResource`` exposes :class:`price_pipeline.settings.Settings`: its config fields
are generated from the ``Settings`` dataclass (so they cannot drift from it) and shown in the
UI's resource tab, ``.settings`` is the ``Settings`` object they describe, and the lake and the
registry of the library layer are built from it. Secrets (``repr=False`` fields) are not config:
``Settings.secrets_from_env`` reads them where they are used.
"""

from __future__ import annotations

import dataclasses
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg

from price_pipeline.lib.lake import Lake, open_lake
from price_pipeline.lib.registry import Registry
from price_pipeline.settings import Settings

# Settings field type (as written in settings.py) -> (config type, value to config, value from config)
_CONFIG_TYPES: dict[str, tuple[Any, Any, Any]] = {
    "str": (str, None, None),
    "str | None": (str | None, None, None),
    "int": (int, None, None),
    "float": (float, None, None),
    "bool": (bool, None, None),
    "Path": (str, str, Path),
    "tuple[str, ...]": (list[str], list, tuple),
}


def _config_fields() -> dict[str, dataclasses.Field]:
    """The Settings fields that are resource config: every one but secrets and ``extras``."""
    return {f.name: f for f in dataclasses.fields(Settings) if f.repr and f.type in _CONFIG_TYPES}


def _settings_config_namespace() -> dict[str, Any]:
    annotations, namespace = {}, {}
    for name, f in _config_fields().items():
        config_type, to_config, _ = _CONFIG_TYPES[f.type]
        annotations[name] = config_type
        if f.default is not dataclasses.MISSING:
            namespace[name] = to_config(f.default) if to_config else f.default
    return {"__annotations__": annotations, **namespace}


# The config half of the resource, generated from Settings.
_SettingsConfig = type("_SettingsConfig", (dg.ConfigurableResource,), _settings_config_namespace())


class PricePipelineResource(_SettingsConfig):
    """Where price_pipeline keeps its data, and how it reaches the outside world."""

    @classmethod
    def from_settings(cls, settings: Settings) -> PricePipelineResource:
        values = {}
        for name, f in _config_fields().items():
            to_config = _CONFIG_TYPES[f.type][1]
            value = getattr(settings, name)
            values[name] = to_config(value) if to_config and value is not None else value
        return cls(**values)

    @cached_property
    def settings(self) -> Settings:
        values = {}
        for name, f in _config_fields().items():
            from_config = _CONFIG_TYPES[f.type][2]
            value = getattr(self, name)
            values[name] = from_config(value) if from_config and value is not None else value
        return Settings(**values, **Settings.secrets_from_env())

    @cached_property
    def lake(self) -> Lake:
        return open_lake(self.settings.lake_url, endpoint_url=self.settings.s3_endpoint_url)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.settings.registry_url)

    def scratch_dir(self, name: str):
        """A per-use local working folder under the data dir (same filesystem as a local lake)."""
        base = self.settings.data_dir / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=f"{name}-", dir=base)
