"""The registry: what we know about hospitals and every file version we have seen.

SQLAlchemy Core over SQLite by default (WAL mode, so concurrent run workers can write) and
PostgreSQL in production (``PRICE_PIPELINE_REGISTRY_URL=postgresql://…``). Tables are created
on first use; every write is an upsert so reruns are idempotent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

metadata = sa.MetaData()

hospitals = sa.Table(
    "hospitals",
    metadata,
    sa.Column("hospital_key", sa.String(64), primary_key=True),
    sa.Column("ccn", sa.String(16)),
    sa.Column("name", sa.Text),
    sa.Column("address", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("state", sa.String(8)),
    sa.Column("zip", sa.String(16)),
    sa.Column("website", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("removed_at", sa.DateTime(timezone=True)),
)

# Every claim a discovery source made about a hospital, kept with its source and timestamps, so a
# wrong merge can be audited and undone.
catalog_claims = sa.Table(
    "catalog_claims",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hospital_key", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("payload_sha256", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("hospital_key", "source", "payload_sha256", name="uq_claim"),
)

file_versions = sa.Table(
    "file_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hospital_key", sa.String(64), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("host", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size", sa.BigInteger),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("content_type", sa.Text),
    sa.Column("raw_key", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # ok | failed
    sa.Column("error", sa.Text),
    sa.Column("error_kind", sa.String(16)),  # transient | permanent
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    # One row per (hospital, url, content); a failure is keyed by an empty sha256.
    sa.UniqueConstraint("hospital_key", "url", "sha256", name="uq_file_version"),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class FileVersion:
    hospital_key: str
    url: str
    sha256: str | None
    size: int | None
    status: str
    raw_key: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    error: str | None = None
    error_kind: str | None = None


class Registry:
    """Thin, explicit data access over the registry tables."""

    def __init__(self, url: str):
        self.url = url
        connect_args: dict[str, Any] = {}
        if url.startswith("sqlite"):
            connect_args = {"timeout": 30}
            database = sa.engine.make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if url.startswith("sqlite"):
            # WAL lets one writer and many readers work at once across run worker processes.
            @sa.event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

        metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- hospitals ---------------------------------------------------------------------------
    def upsert_hospitals(self, rows: Iterable[dict[str, Any]], *, source: str) -> dict[str, int]:
        """Record the hospitals a source lists now; returns counts of new/updated rows."""
        now = _now()
        counts = {"new": 0, "seen": 0}
        with self.engine.begin() as conn:
            existing = {r.hospital_key: r for r in conn.execute(sa.select(hospitals))}
            for row in rows:
                key = row["hospital_key"]
                values = {k: row.get(k) for k in ("ccn", "name", "address", "city", "state", "zip", "website")}
                if key in existing:
                    conn.execute(
                        hospitals.update()
                        .where(hospitals.c.hospital_key == key)
                        .values(**values, status="active", last_seen_at=now, removed_at=None)
                    )
                    counts["seen"] += 1
                else:
                    conn.execute(
                        hospitals.insert().values(
                            hospital_key=key, **values, status="active", first_seen_at=now, last_seen_at=now
                        )
                    )
                    counts["new"] += 1
                self._record_claim(conn, key, source, row, now)
        return counts

    def _record_claim(self, conn, key: str, source: str, payload: dict[str, Any], now) -> None:
        text = json.dumps(payload, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()
        updated = conn.execute(
            catalog_claims.update()
            .where(
                (catalog_claims.c.hospital_key == key)
                & (catalog_claims.c.source == source)
                & (catalog_claims.c.payload_sha256 == digest)
            )
            .values(last_seen_at=now)
        )
        if updated.rowcount == 0:
            conn.execute(
                catalog_claims.insert().values(
                    hospital_key=key,
                    source=source,
                    payload_sha256=digest,
                    payload=text,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )

    def mark_removed(self, keys: Sequence[str]) -> int:
        """Mark hospitals no longer listed; their history and files stay."""
        if not keys:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                hospitals.update()
                .where(hospitals.c.hospital_key.in_(list(keys)) & (hospitals.c.status != "removed"))
                .values(status="removed", removed_at=_now())
            )
        return result.rowcount

    def list_hospitals(self, *, status: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(hospitals).order_by(hospitals.c.hospital_key)
        if status:
            query = query.where(hospitals.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def claims_for(self, hospital_key: str) -> list[dict[str, Any]]:
        query = (
            sa.select(catalog_claims)
            .where(catalog_claims.c.hospital_key == hospital_key)
            .order_by(catalog_claims.c.last_seen_at.desc())
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def latest_claim_payload(self, hospital_key: str, source: str) -> dict[str, Any] | None:
        for claim in self.claims_for(hospital_key):
            if claim["source"] == source:
                return json.loads(claim["payload"])
        return None

    def latest_claim_payloads(self, source: str) -> dict[str, dict[str, Any]]:
        """The most recent payload of every hospital from one source, in one query."""
        query = (
            sa.select(catalog_claims.c.hospital_key, catalog_claims.c.payload)
            .where(catalog_claims.c.source == source)
            .order_by(catalog_claims.c.hospital_key, catalog_claims.c.last_seen_at, catalog_claims.c.id)
        )
        latest: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for key, payload in conn.execute(query):
                latest[key] = payload  # later rows win: ordered by last_seen_at
        return {key: json.loads(payload) for key, payload in latest.items()}

    # -- file versions -----------------------------------------------------------------------
    def record_file_version(self, fv: FileVersion) -> None:
        now = _now()
        sha = fv.sha256 or ""
        values = {
            "host": urlsplit(fv.url).hostname,
            "size": fv.size,
            "etag": fv.etag,
            "last_modified": fv.last_modified,
            "content_type": fv.content_type,
            "raw_key": fv.raw_key,
            "status": fv.status,
            "error": fv.error,
            "error_kind": fv.error_kind,
            "last_seen_at": now,
        }
        with self.engine.begin() as conn:
            where = (
                (file_versions.c.hospital_key == fv.hospital_key)
                & (file_versions.c.url == fv.url)
                & (file_versions.c.sha256 == sha)
            )
            if conn.execute(file_versions.update().where(where).values(**values)).rowcount == 0:
                conn.execute(
                    file_versions.insert().values(
                        hospital_key=fv.hospital_key, url=fv.url, sha256=sha, first_seen_at=now, **values
                    )
                )

    def file_versions_for(self, hospital_key: str) -> list[dict[str, Any]]:
        query = (
            sa.select(file_versions)
            .where(file_versions.c.hospital_key == hospital_key)
            .order_by(file_versions.c.last_seen_at.desc(), file_versions.c.id.desc())
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def latest_ok_version(self, hospital_key: str, url: str) -> dict[str, Any] | None:
        for row in self.file_versions_for(hospital_key):
            if row["url"] == url and row["status"] == "ok":
                return row
        return None
