"""The packages that every dbt process imports resolve their names on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from price_pipeline.lib.lazy import lazy_exports

SCRIPT = """
import sys
import price_pipeline.lib.analytics, price_pipeline.lib.prices.payers, price_pipeline.lib.prices.codes
heavy = sorted(m for m in ("pyarrow", "numpy", "pandas") if m in sys.modules)
assert not heavy, f"the dbt plugin's imports load {heavy}"
from price_pipeline.lib.analytics import natural_keys
from price_pipeline.lib.prices import normalize_to_prices
assert callable(natural_keys) and callable(normalize_to_prices)
print("ok")
"""


def test_what_the_dbt_plugin_imports_loads_no_pyarrow_numpy_or_pandas():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_lazy_name_is_imported_once_and_an_unknown_one_is_an_attribute_error():
    getattr_ = lazy_exports("price_pipeline.lib", {"dedent": "nonexistent"})
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        getattr_("other")
    with pytest.raises(ModuleNotFoundError):
        getattr_("dedent")  # the submodule is imported only when the name is asked for
    import price_pipeline.lib.prices as package

    value = package.__getattr__("read_versions")
    assert package.__dict__["read_versions"] is value  # cached: later lookups skip __getattr__
