"""Package names that import their module on first use (PEP 562 module ``__getattr__``).

For packages whose ``__init__`` re-exports names from heavy modules that some importers never
use: every dbt process imports :mod:`price_pipeline.lib.analytics.dbt_plugin` (and through it
:mod:`price_pipeline.lib.prices.payers`), which runs the package ``__init__`` first, and must not
pay for pyarrow and numpy there (~0.3-0.6 CPU-s per dbt invocation).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """The ``__getattr__`` of ``package``: ``exports`` maps a public name to the submodule that
    defines it; the value is imported on first access and then cached in the package."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
