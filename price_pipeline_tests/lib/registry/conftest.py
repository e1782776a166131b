"""The ``registry`` fixture: every registry test runs on SQLite and on a real PostgreSQL database."""

from __future__ import annotations

import pytest

from price_pipeline.lib.registry import Registry


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request, tmp_path):
    if request.param == "sqlite":
        reg = Registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    else:
        reg = Registry(request.getfixturevalue("postgres_database"))
    yield reg
    reg.dispose()
