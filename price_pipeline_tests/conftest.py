"""Shared fixtures: real local services (demo catalog over HTTP, PostgreSQL, moto's S3 server)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from price_pipeline.settings import Settings

REQUIRE_POSTGRES = os.environ.get("PRICE_PIPELINE_REQUIRE_POSTGRES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "PRICE_PIPELINE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def demo_server():
    """The bundled demo catalog, served on an ephemeral localhost port for the whole session."""
    from price_pipeline.demo.server import DemoCatalogServer

    server = DemoCatalogServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def host_port(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture
def settings(tmp_path: Path, demo_server) -> Settings:
    """Embedded-mode settings in a temporary data dir, allowed to download from the demo server."""
    data_dir = tmp_path / "data"
    return Settings(
        data_dir=data_dir,
        lake_url=str(data_dir / "lake"),
        registry_url=f"sqlite:///{data_dir / 'registry.sqlite'}",
        warehouse_path=data_dir / "warehouse.duckdb",
        catalog_url=demo_server.catalog_url,
        allowed_private_hosts=(host_port(demo_server.catalog_url),),
        http_timeout_seconds=10,
    )


def _postgres_reachable() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return None
    except OSError as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc})"


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards.

    Skips with the reason when no server is reachable, except in CI
    (PRICE_PIPELINE_REQUIRE_POSTGRES=1), where a missing server must fail the run.
    """
    reason = _postgres_reachable()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    import sqlalchemy as sa

    name = f"pp_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 in server mode: a real HTTP endpoint on localhost. Yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
