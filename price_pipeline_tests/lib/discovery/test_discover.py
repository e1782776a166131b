"""Catalog guard rails."""

from __future__ import annotations

import pytest

from price_pipeline.lib.discovery.discover import (
    CatalogShrinkError,
    catalog_digest,
    diff_catalog,
    guard_against_shrink,
)


def test_empty_or_collapsed_catalog_is_refused():
    with pytest.raises(CatalogShrinkError, match="no hospitals"):
        guard_against_shrink(10, 0)
    with pytest.raises(CatalogShrinkError, match="shrank"):
        guard_against_shrink(100, 40)
    guard_against_shrink(100, 60)
    guard_against_shrink(0, 5)


def test_diff_and_digest():
    diff = diff_catalog({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "9", "d": "4"})
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (["d"], ["c"], ["b"], ["a"])
    assert catalog_digest({"a": "1", "b": "2"}) == catalog_digest({"b": "2", "a": "1"})
    assert catalog_digest({"a": "1"}) != catalog_digest({"a": "2"})
