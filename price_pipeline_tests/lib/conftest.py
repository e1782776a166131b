"""Shared helpers for the parser tests (fixtures live under price_pipeline_tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CMS = FIXTURES / "cms"
BROKEN = FIXTURES / "broken"


@pytest.fixture
def parse(tmp_path):
    """parse(path, **kw) -> (summary, rows as list of dicts)."""
    from price_pipeline.lib.parse.mrf import parse_to_parquet

    counter = {"n": 0}

    def _parse(path, **kw):
        counter["n"] += 1
        out = tmp_path / f"out{counter['n']}.parquet"
        s = parse_to_parquet(path, out, **kw)
        return s, pq.read_table(out).to_pylist()

    return _parse
