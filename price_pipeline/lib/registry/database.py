"""The registry: what we know about hospitals and every file version we have seen.

SQLAlchemy Core over SQLite by default (WAL mode, so concurrent run workers can write) and
PostgreSQL in production (``PRICE_PIPELINE_REGISTRY_URL=postgresql://…``). Tables are created
on first use (columns added since are added in place); every write is an upsert so reruns are
idempotent.

Tables: ``hospitals`` (current reconciled view, removed ones kept), ``catalog_claims`` (every
claim of every discovery source), ``hospital_identifiers`` (CCN/EIN/NPI -> stable key),
``file_versions`` (every version of every file), ``file_states`` (per-file change-detection
state: validators, size, range fingerprint, last check) and ``host_profiles`` (which change
signals a host's server has proven trustworthy), ``site_crawls`` (the last cms-hpt.txt crawl of
each website) and ``discovery_findings`` (text a discovery source had to clean, records the
database refused).

One bad record never rolls back the good ones: every batch write runs as one transaction and,
when the database (or its driver) refuses a record's data — a NUL in PostgreSQL text, a lone
surrogate no driver can encode, a value too long for its column, a constraint — the batch is
split in halves, each retried in its own transaction, down to the single records at fault.
Those are left out and reported (:class:`Rejected`, a warning in the log, and the caller's
``rejected`` list); errors that are not about the data (a lost connection, a locked database)
still raise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from price_pipeline.lib.text import clean_text

log = logging.getLogger(__name__)
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
    # Added by the discovery work (issue 5); migrated in place on older registries.
    sa.Column("ein", sa.String(16)),
    sa.Column("npi", sa.String(16)),
    sa.Column("address_standardized", sa.Text),
    sa.Column("zip5", sa.String(5)),
    sa.Column("county", sa.Text),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("geo_source", sa.String(32)),
    sa.Column("sources", sa.Text),  # comma-separated discovery sources that claim this hospital
    sa.Column("files_fingerprint", sa.String(32)),
    sa.Column("files_json", sa.Text),  # the reconciled file list [{url, source, ...}]
)

# Identifier -> hospital key. Keeps partition keys stable when a later source brings a
# better identifier (a CCN for a hospital first seen by name only keeps its first key).
hospital_identifiers = sa.Table(
    "hospital_identifiers",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # ccn | npi | ein | name
    sa.Column("value", sa.String(128), primary_key=True),
    sa.Column("hospital_key", sa.String(64), nullable=False, index=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
)

# Current change-detection state of each listed file (one row per hospital x url).
file_states = sa.Table(
    "file_states",
    metadata,
    sa.Column("hospital_key", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(2048), primary_key=True),
    sa.Column("host", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("range_fingerprint", sa.String(64)),
    sa.Column("status", sa.String(16)),  # ok | failed | changed | pending
    sa.Column("last_signal", sa.String(24)),
    sa.Column("error", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_checked_at", sa.DateTime(timezone=True)),
    sa.Column("last_changed_at", sa.DateTime(timezone=True)),
    sa.Column("last_downloaded_at", sa.DateTime(timezone=True)),
)

# Per host: how often each signal was confirmed or contradicted by a full download.
host_profiles = sa.Table(
    "host_profiles",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("conditional_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("conditional_bad", sa.Integer, nullable=False, server_default="0"),
    sa.Column("head_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("head_bad", sa.Integer, nullable=False, server_default="0"),
    sa.Column("range_ok", sa.Integer, nullable=False, server_default="0"),
    sa.Column("range_bad", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

# The last cms-hpt.txt crawl of each website (errors keep the previous entries).
site_crawls = sa.Table(
    "site_crawls",
    metadata,
    sa.Column("website", sa.String(2048), primary_key=True),
    sa.Column("hospital_key", sa.String(64), index=True),
    sa.Column("url", sa.Text),
    sa.Column("status", sa.String(16)),  # found | missing | error | unsafe | none
    sa.Column("entries_json", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("crawled_at", sa.DateTime(timezone=True)),
    sa.Column("found_at", sa.DateTime(timezone=True)),
)

HOST_SIGNALS = ("conditional", "head", "range")
_HOSPITAL_VALUE_COLUMNS = (
    "ccn",
    "name",
    "address",
    "city",
    "state",
    "zip",
    "website",
    "ein",
    "npi",
    "address_standardized",
    "zip5",
    "county",
    "latitude",
    "longitude",
    "geo_source",
    "sources",
    "files_fingerprint",
    "files_json",
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

# What a discovery pass had to repair or leave out: text cleaned of NUL characters / lone
# surrogates (rule ``text_cleaned``) and records the database refused (``registry_rejected``).
# One row per (source, source_id, field, rule), with first/last seen.
discovery_findings = sa.Table(
    "discovery_findings",
    metadata,
    sa.Column("finding_id", sa.String(64), primary_key=True),  # sha256 of source|source_id|field|rule
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("hospital_key", sa.String(64), index=True),
    sa.Column("field", sa.Text),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Rejected:
    """A record the database refused; the other records of its batch were written."""

    table: str
    record: str  # which record, ASCII-escaped (e.g. "hospital 'ccn-050001'")
    error: str  # the driver's or database's reason, first line
    hospital_key: str | None = None  # the hospital the record belongs to, when it is a valid key


def _is_record_error(exc: BaseException) -> bool:
    """True when ``exc`` is about the data of the statement (retrying smaller batches can isolate it).

    Client-side refusals (psycopg2's "cannot contain NUL", any driver's UnicodeEncodeError, a
    type it cannot adapt) arrive as ValueError/TypeError, raw or wrapped in StatementError; the
    server's are DataError (too long, bad encoding) and IntegrityError (constraints).
    OperationalError (connection lost, database locked) and programming errors still raise.
    """
    if isinstance(exc, (sa.exc.DataError, sa.exc.IntegrityError)):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        return False
    if isinstance(exc, sa.exc.StatementError):
        return isinstance(exc.orig, (ValueError, TypeError))
    return isinstance(exc, (ValueError, TypeError))


def _error_text(exc: BaseException) -> str:
    """One storable line naming the refusal (the driver's message, not the whole SQL)."""
    orig = getattr(exc, "orig", None) or exc
    text = f"{type(orig).__name__}: {orig}".strip().splitlines()[0][:300]
    return clean_text(text)[0]


def _describe(kind: str, value: Any) -> str:
    return f"{kind} {ascii(value)[:200]}"


_VALID_KEY = re.compile(r"^[a-z0-9_-]{1,64}$")


def _key_or_none(value: Any) -> str | None:
    """``value`` when it is a well-formed hospital key (so it can be stored beside a finding)."""
    return value if isinstance(value, str) and _VALID_KEY.match(value) else None


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
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Registries created before a column existed get it added (nullable columns only)."""
        inspector = sa.inspect(self.engine)
        with self.engine.begin() as conn:
            for table in metadata.sorted_tables:
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in present and column.nullable:
                        ddl_type = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(
                            sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl_type}')
                        )

    def _upsert(
        self, conn, table: sa.Table, rows: list[dict[str, Any]], keys: Sequence[str], keep: Sequence[str] = ()
    ) -> None:
        """INSERT … ON CONFLICT (keys) DO UPDATE for SQLite and PostgreSQL, many rows at once.

        Columns in ``keep`` are written on insert only (e.g. ``first_seen_at``).
        """
        if not rows:
            return
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        columns = list(rows[0])
        for start in range(0, len(rows), 500):
            stmt = insert(table).values(rows[start : start + 500])
            updates = {c: stmt.excluded[c] for c in columns if c not in keys and c not in keep}
            conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))

    def _isolated(
        self,
        rows: list[Any],
        write: Callable[[list[Any]], Any],
        *,
        table: str,
        describe: Callable[[Any], str],
        rejected: list[Rejected] | None,
        hospital_of: Callable[[Any], Any] = lambda record: None,
    ) -> list[Any]:
        """Run ``write(rows)`` (one transaction); if the data of a record is refused, split and retry.

        Halving keeps the cost near ``k * log2(n)`` transactions for ``k`` bad records among ``n``
        (one transaction when all are good, as before). Each refused single record becomes a
        :class:`Rejected`, logged and appended to ``rejected``. Returns the results of the
        successful ``write`` calls.
        """
        results: list[Any] = []

        def attempt(batch: list[Any]) -> None:
            if not batch:
                return
            try:
                results.append(write(batch))
            except Exception as exc:
                if not _is_record_error(exc):
                    raise
                if len(batch) == 1:
                    refused = Rejected(
                        table, describe(batch[0]), _error_text(exc), _key_or_none(hospital_of(batch[0]))
                    )
                    log.warning("registry refused %s in %s: %s", refused.record, table, refused.error)
                    if rejected is not None:
                        rejected.append(refused)
                    return
                middle = len(batch) // 2
                attempt(batch[:middle])
                attempt(batch[middle:])

        attempt(list(rows))
        return results

    def dispose(self) -> None:
        self.engine.dispose()

    # -- hospitals ---------------------------------------------------------------------------
    def upsert_hospitals(
        self, rows: Iterable[dict[str, Any]], *, source: str | None, rejected: list[Rejected] | None = None
    ) -> dict[str, int]:
        """Record the hospitals a source lists now; returns counts of new, seen and rejected rows.

        Columns absent from a row keep their stored value (a catalog-only caller does not wipe
        the coordinates the reconciler added). Bulk statements: 6,000 hospitals take well
        under a second on SQLite. A hospital whose values the database refuses is left out
        (with its claim) and reported in ``rejected``; the others are stored.
        """
        rows = list(rows)
        counts = {"new": 0, "seen": 0, "rejected": 0}
        results = self._isolated(
            rows,
            lambda batch: self._upsert_hospitals_once(batch, source, _now()),
            table="hospitals",
            describe=lambda row: _describe("hospital", row.get("hospital_key")),
            hospital_of=lambda row: row.get("hospital_key"),
            rejected=rejected,
        )
        for result in results:
            counts["new"] += result["new"]
            counts["seen"] += result["seen"]
        counts["rejected"] = len(rows) - counts["new"] - counts["seen"]
        return counts

    def _upsert_hospitals_once(self, rows: list[dict[str, Any]], source: str | None, now) -> dict[str, int]:
        counts = {"new": 0, "seen": 0}
        with self.engine.begin() as conn:
            query = sa.select(hospitals.c.hospital_key)
            if len(rows) <= 500:  # a retried part of a batch: look up only its own keys
                query = query.where(hospitals.c.hospital_key.in_([row["hospital_key"] for row in rows]))
            existing = {k for (k,) in conn.execute(query)}
            inserts, updates_by_cols = [], {}
            for row in rows:
                key = row["hospital_key"]
                values = {k: row.get(k) for k in _HOSPITAL_VALUE_COLUMNS if k in row}
                for k in ("ccn", "name", "address", "city", "state", "zip", "website"):
                    values.setdefault(k, row.get(k))
                if key in existing:
                    cols = tuple(sorted(values))
                    updates_by_cols.setdefault(cols, []).append({"_key": key, **values})
                    counts["seen"] += 1
                else:
                    existing.add(key)
                    inserts.append(
                        {
                            **{c: None for c in _HOSPITAL_VALUE_COLUMNS},
                            **values,
                            "hospital_key": key,
                            "status": "active",
                            "first_seen_at": now,
                            "last_seen_at": now,
                            "removed_at": None,
                        }
                    )
                    counts["new"] += 1
            if inserts:
                conn.execute(hospitals.insert(), inserts)
            for cols, params in updates_by_cols.items():
                stmt = (
                    hospitals.update()
                    .where(hospitals.c.hospital_key == sa.bindparam("_key"))
                    .values(
                        **{c: sa.bindparam(c) for c in cols},
                        status="active",
                        last_seen_at=now,
                        removed_at=None,
                    )
                )
                conn.execute(stmt, params)
            if source is not None:
                self._record_claims(conn, source, [(row["hospital_key"], row) for row in rows], now)
        return counts

    def record_claims(
        self, source: str, claims: Iterable[tuple[str, dict[str, Any]]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Keep ``(hospital_key, payload)`` claims of one source (new payloads inserted, seen ones touched).

        Returns how many were stored; a claim the database refuses is reported in ``rejected``.
        """
        claims = list(claims)

        def write(batch):
            with self.engine.begin() as conn:
                self._record_claims(conn, source, batch, _now())
            return len(batch)

        return sum(
            self._isolated(
                claims,
                write,
                table="catalog_claims",
                describe=lambda claim: _describe(f"{source} claim of", claim[0]),
                hospital_of=lambda claim: claim[0],
                rejected=rejected,
            )
        )

    def _record_claims(self, conn, source: str, claims: list[tuple[str, dict[str, Any]]], now) -> None:
        prepared = []
        for key, payload in claims:
            text = json.dumps(payload, sort_keys=True, default=str)
            prepared.append((key, hashlib.sha256(text.encode()).hexdigest(), text))
        if not prepared:
            return
        query = sa.select(catalog_claims.c.hospital_key, catalog_claims.c.payload_sha256).where(
            catalog_claims.c.source == source
        )
        if len(prepared) <= 500:  # a small batch (or a retried part): only its own hospitals
            query = query.where(catalog_claims.c.hospital_key.in_({k for k, _, _ in prepared}))
        known = {(k, d) for k, d in conn.execute(query)}
        seen = [{"_key": k, "_digest": d} for k, d, _ in prepared if (k, d) in known]
        fresh: dict[tuple[str, str], dict[str, Any]] = {}
        for k, d, text in prepared:
            if (k, d) not in known:
                fresh[(k, d)] = dict(
                    hospital_key=k,
                    source=source,
                    payload_sha256=d,
                    payload=text,
                    first_seen_at=now,
                    last_seen_at=now,
                )
        if seen:
            conn.execute(
                catalog_claims.update()
                .where(
                    (catalog_claims.c.hospital_key == sa.bindparam("_key"))
                    & (catalog_claims.c.source == source)
                    & (catalog_claims.c.payload_sha256 == sa.bindparam("_digest"))
                )
                .values(last_seen_at=now),
                seen,
            )
        if fresh:
            conn.execute(catalog_claims.insert(), list(fresh.values()))

    def _record_claim(self, conn, key: str, source: str, payload: dict[str, Any], now) -> None:
        self._record_claims(conn, source, [(key, payload)], now)

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

    def hospital(self, hospital_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(hospitals).where(hospitals.c.hospital_key == hospital_key)).first()
        return dict(row._mapping) if row else None

    def hospital_files(self, hospital_key: str) -> list[dict[str, Any]] | None:
        """The reconciled file list of a hospital (``None`` when discovery never stored one)."""
        row = self.hospital(hospital_key)
        if not row or not row.get("files_json"):
            return None
        return json.loads(row["files_json"])

    def active_fingerprints(self) -> dict[str, str | None]:
        """``{hospital_key: files_fingerprint}`` of every active hospital, in one query."""
        query = sa.select(hospitals.c.hospital_key, hospitals.c.files_fingerprint).where(
            hospitals.c.status == "active"
        )
        with self.engine.connect() as conn:
            return dict(conn.execute(query).all())

    # -- identifiers -------------------------------------------------------------------------
    def identifiers(self) -> dict[tuple[str, str], str]:
        """``{(kind, value): hospital_key}`` of every identifier ever reconciled."""
        query = sa.select(
            hospital_identifiers.c.kind, hospital_identifiers.c.value, hospital_identifiers.c.hospital_key
        )
        with self.engine.connect() as conn:
            return {(kind, value): key for kind, value, key in conn.execute(query)}

    def record_identifiers(
        self, items: Iterable[tuple[str, str, str]], *, rejected: list[Rejected] | None = None
    ) -> None:
        """Record ``(kind, value, hospital_key)``; an identifier keeps the key it was first given.

        An identifier the database refuses (e.g. longer than its column) is reported in ``rejected``.
        """
        items = list(dict.fromkeys(items))
        if not items:
            return

        def write(batch):
            now = _now()
            with self.engine.begin() as conn:
                query = sa.select(hospital_identifiers.c.kind, hospital_identifiers.c.value)
                if len(batch) <= 500:
                    query = query.where(hospital_identifiers.c.value.in_({v for _, v, _ in batch}))
                known = {(k, v) for k, v in conn.execute(query)}
                fresh = {}
                for kind, value, key in batch:
                    if (kind, value) not in known:
                        fresh[(kind, value)] = dict(
                            kind=kind, value=value, hospital_key=key, first_seen_at=now, last_seen_at=now
                        )
                if fresh:
                    conn.execute(hospital_identifiers.insert(), list(fresh.values()))

        self._isolated(
            items,
            write,
            table="hospital_identifiers",
            describe=lambda item: _describe(f"{item[0]} of {ascii(item[2])}:", item[1]),
            hospital_of=lambda item: item[2],
            rejected=rejected,
        )

    # -- file states (change detection) ------------------------------------------------------
    def file_states(
        self, hospital_keys: Iterable[str] | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        query = sa.select(file_states)
        if hospital_keys is not None:
            query = query.where(file_states.c.hospital_key.in_(list(hospital_keys)))
        with self.engine.connect() as conn:
            return {(r.hospital_key, r.url): dict(r._mapping) for r in conn.execute(query)}

    def file_states_after(self, watermark: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` file states ordered by (hospital_key, url) after ``watermark`` (a sweep)."""
        query = sa.select(file_states).order_by(file_states.c.hospital_key, file_states.c.url).limit(limit)
        if watermark is not None:
            hk, url = watermark
            query = query.where(
                (file_states.c.hospital_key > hk)
                | ((file_states.c.hospital_key == hk) & (file_states.c.url > url))
            )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def upsert_file_states(
        self, rows: Iterable[dict[str, Any]], *, rejected: list[Rejected] | None = None
    ) -> None:
        """Insert or update file states; a row the database refuses is reported in ``rejected``."""
        rows = list(rows)
        if not rows:
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            row = dict(row)
            row.setdefault("host", urlsplit(row["url"]).hostname)
            groups.setdefault(tuple(sorted(row)), []).append(row)

        def write(batch):
            with self.engine.begin() as conn:
                for group in batch:
                    self._upsert(conn, file_states, group, ("hospital_key", "url"))

        def write_rows(batch):
            by_cols: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in batch:
                by_cols.setdefault(tuple(sorted(row)), []).append(row)
            write(list(by_cols.values()))

        self._isolated(
            [row for group in groups.values() for row in group],
            write_rows,
            table="file_states",
            describe=lambda row: _describe(f"file of {ascii(row.get('hospital_key'))}:", row.get("url")),
            hospital_of=lambda row: row.get("hospital_key"),
            rejected=rejected,
        )

    def ensure_file_states(
        self, listed: Iterable[tuple[str, str]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Create ``pending`` states for (hospital_key, url) pairs not tracked yet; returns how many.

        A pair the database refuses (e.g. a URL longer than the column) is reported in ``rejected``.
        """
        listed = list(dict.fromkeys(listed))

        def write(batch):
            with self.engine.begin() as conn:
                query = sa.select(file_states.c.hospital_key, file_states.c.url)
                if len(batch) <= 500:
                    query = query.where(file_states.c.hospital_key.in_({k for k, _ in batch}))
                known = {(k, u) for k, u in conn.execute(query)}
                fresh = [
                    {
                        "hospital_key": k,
                        "url": u,
                        "host": urlsplit(u).hostname,
                        "status": "pending",
                        "consecutive_failures": 0,
                    }
                    for k, u in batch
                    if (k, u) not in known
                ]
                if fresh:
                    conn.execute(file_states.insert(), fresh)
            return len(fresh)

        return sum(
            self._isolated(
                listed,
                write,
                table="file_states",
                describe=lambda pair: _describe(f"file of {ascii(pair[0])}:", pair[1]),
                hospital_of=lambda pair: pair[0],
                rejected=rejected,
            )
        )

    # -- host profiles -----------------------------------------------------------------------
    def host_profiles(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.host: dict(r._mapping) for r in conn.execute(sa.select(host_profiles))}

    def record_host_signals(self, observations: Iterable[tuple[str, str, bool]]) -> None:
        """Count ``(host, signal, confirmed)`` observations; ``signal`` in :data:`HOST_SIGNALS`."""
        deltas: dict[str, dict[str, int]] = {}
        for host, signal, confirmed in observations:
            if signal not in HOST_SIGNALS or not host:
                continue
            column = f"{signal}_{'ok' if confirmed else 'bad'}"
            deltas.setdefault(host, {}).setdefault(column, 0)
            deltas[host][column] += 1
        if not deltas:
            return
        now = _now()
        with self.engine.begin() as conn:
            known = {
                h
                for (h,) in conn.execute(
                    sa.select(host_profiles.c.host).where(host_profiles.c.host.in_(list(deltas)))
                )
            }
            for host, cols in deltas.items():
                if host not in known:
                    conn.execute(
                        host_profiles.insert().values(
                            host=host,
                            **{f"{s}_{o}": 0 for s in HOST_SIGNALS for o in ("ok", "bad")},
                            updated_at=now,
                        )
                    )
                conn.execute(
                    host_profiles.update()
                    .where(host_profiles.c.host == host)
                    .values(**{c: host_profiles.c[c] + n for c, n in cols.items()}, updated_at=now)
                )

    # -- cms-hpt.txt crawls ------------------------------------------------------------------
    def site_crawls(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {r.website: dict(r._mapping) for r in conn.execute(sa.select(site_crawls))}

    def record_site_crawls(
        self, rows: Iterable[dict[str, Any]], *, rejected: list[Rejected] | None = None
    ) -> None:
        """Upsert crawl outcomes ``{website, hospital_key, url, status, entries_json, error}``.

        An ``error`` outcome keeps the entries of the last good crawl (a flaky website does not
        lose its files); ``missing`` clears them (the hospital took the file down). A row the
        database refuses is reported in ``rejected``.
        """
        rows = list(rows)
        if not rows:
            return

        def write(batch):
            now = _now()
            with self.engine.begin() as conn:
                previous = (
                    {
                        r.website: r
                        for r in conn.execute(
                            sa.select(site_crawls).where(site_crawls.c.website.in_([r["website"] for r in batch]))
                        )
                    }
                    if len(batch) <= 500
                    else {r.website: r for r in conn.execute(sa.select(site_crawls))}
                )
                out = []
                for row in batch:
                    prev = previous.get(row["website"])
                    entries = row.get("entries_json")
                    found_at = now if row["status"] == "found" else (prev.found_at if prev else None)
                    if row["status"] in ("error",) and prev is not None:
                        entries = prev.entries_json
                    out.append(
                        {
                            "website": row["website"],
                            "hospital_key": row.get("hospital_key"),
                            "url": row.get("url"),
                            "status": row["status"],
                            "entries_json": entries,
                            "error": row.get("error"),
                            "crawled_at": now,
                            "found_at": found_at,
                        }
                    )
                self._upsert(conn, site_crawls, out, ("website",))

        self._isolated(
            rows,
            write,
            table="site_crawls",
            describe=lambda row: _describe("crawl of", row.get("website")),
            hospital_of=lambda row: row.get("hospital_key"),
            rejected=rejected,
        )

    # -- discovery findings ------------------------------------------------------------------
    def record_discovery_findings(
        self, findings: Iterable[dict[str, Any]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Upsert ``{source, source_id, hospital_key, field, rule, severity, message}`` findings.

        One row per (source, source_id, field, rule): seen again, its message, hospital and
        ``last_seen_at`` are updated and ``first_seen_at`` kept. Returns how many were stored.
        """
        now = _now()
        rows: dict[str, dict[str, Any]] = {}
        for f in findings:
            identity = "\x1f".join(str(f.get(k) or "") for k in ("source", "source_id", "field", "rule"))
            finding_id = hashlib.sha256(identity.encode("utf-8", "backslashreplace")).hexdigest()
            rows[finding_id] = {
                "finding_id": finding_id,
                "source": f["source"],
                "source_id": str(f.get("source_id") or ""),
                "hospital_key": f.get("hospital_key"),
                "field": f.get("field"),
                "rule": f["rule"],
                "severity": f.get("severity") or "warning",
                "message": f["message"],
                "first_seen_at": now,
                "last_seen_at": now,
            }

        def write(batch):
            with self.engine.begin() as conn:
                self._upsert(conn, discovery_findings, batch, ("finding_id",), keep=("first_seen_at",))
            return len(batch)

        return sum(
            self._isolated(
                list(rows.values()),
                write,
                table="discovery_findings",
                describe=lambda row: _describe(f"{row['rule']} finding of", row["source_id"]),
                hospital_of=lambda row: row.get("hospital_key"),
                rejected=rejected,
            )
        )

    def discovery_findings(self, *, hospital_key: str | None = None) -> list[dict[str, Any]]:
        """Stored discovery findings (of one hospital when given), most recently seen first."""
        query = sa.select(discovery_findings).order_by(
            discovery_findings.c.last_seen_at.desc(), discovery_findings.c.finding_id
        )
        if hospital_key is not None:
            query = query.where(discovery_findings.c.hospital_key == hospital_key)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
