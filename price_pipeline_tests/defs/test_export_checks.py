"""The ``csv_exports_are_formula_safe`` check reads every CSV extract with the export's own rule."""

from __future__ import annotations

from price_pipeline.defs.analytics.checks import csv_exports_are_formula_safe
from price_pipeline.defs.resources import PricePipelineResource
from price_pipeline.lib.storage import LocalLake


def test_formula_check_covers_every_extract(tmp_path):
    resource = PricePipelineResource(
        data_dir=str(tmp_path),
        lake_url=str(tmp_path / "lake"),
        registry_url=f"sqlite:///{tmp_path / 'r.sqlite'}",
        warehouse_path=str(tmp_path / "w.duckdb"),
        catalog_url="http://127.0.0.1:1/",
    )
    lake = LocalLake(tmp_path / "lake")
    lake.put_bytes(b"description,amount\n\xef\xbb\xbf=HYPERLINK(\"x\"),-5.0\n", "exports/prices_current.csv")
    lake.put_bytes(b"payer\nplain\n", "exports/mart_payer_comparison.csv")
    result = csv_exports_are_formula_safe(price_pipeline=resource)
    assert not result.passed and result.metadata["unsafe_rows"].data == {"prices_current": 1}
    lake.put_bytes(b"description,amount\n'\xef\xbb\xbf=HYPERLINK(\"x\"),-5.0\n", "exports/prices_current.csv")
    assert csv_exports_are_formula_safe(price_pipeline=resource).passed
