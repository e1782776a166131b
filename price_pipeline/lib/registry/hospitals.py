"""The hospitals family: the reconciled hospital view, every discovery claim, and the
identifiers (CCN/EIN/NPI) that keep partition keys stable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from price_pipeline.lib.registry.database import Database, Rejected, describe, narrowed, now
from price_pipeline.lib.registry.tables import catalog_claims, hospital_identifiers, hospitals

# Every value column of ``hospitals`` a row may carry (the rest are keys, status and times).
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
# Written on every upsert even when the row leaves them out (the catalog's own fields).
_ALWAYS_WRITTEN = ("ccn", "name", "address", "city", "state", "zip", "website")


class HospitalRecords(Database):
    """``hospitals``, ``catalog_claims`` and ``hospital_identifiers``."""

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
            self._in_transaction(lambda conn, batch: self._upsert_hospitals_once(conn, batch, source, now())),
            table="hospitals",
            describe=lambda row: describe("hospital", row.get("hospital_key")),
            hospital_of=lambda row: row.get("hospital_key"),
            rejected=rejected,
        )
        for result in results:
            counts["new"] += result["new"]
            counts["seen"] += result["seen"]
        counts["rejected"] = len(rows) - counts["new"] - counts["seen"]
        return counts

    def _upsert_hospitals_once(self, conn, rows: list[dict[str, Any]], source: str | None, at) -> dict[str, int]:
        counts = {"new": 0, "seen": 0}
        query = narrowed(sa.select(hospitals.c.hospital_key), hospitals.c.hospital_key,
                         (row["hospital_key"] for row in rows))
        existing = {k for (k,) in conn.execute(query)}
        inserts, updates_by_cols = [], {}
        for row in rows:
            key = row["hospital_key"]
            values = {k: row.get(k) for k in _HOSPITAL_VALUE_COLUMNS if k in row}
            for k in _ALWAYS_WRITTEN:
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
                        "first_seen_at": at,
                        "last_seen_at": at,
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
                    last_seen_at=at,
                    removed_at=None,
                )
            )
            conn.execute(stmt, params)
        if source is not None:
            self._record_claims(conn, source, [(row["hospital_key"], row) for row in rows], at)
        return counts

    def record_claims(
        self, source: str, claims: Iterable[tuple[str, dict[str, Any]]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Keep ``(hospital_key, payload)`` claims of one source (new payloads inserted, seen ones touched).

        Returns how many were stored; a claim the database refuses is reported in ``rejected``.
        """

        def write(conn, batch):
            self._record_claims(conn, source, batch, now())
            return len(batch)

        return sum(
            self._isolated(
                list(claims),
                self._in_transaction(write),
                table="catalog_claims",
                describe=lambda claim: describe(f"{source} claim of", claim[0]),
                hospital_of=lambda claim: claim[0],
                rejected=rejected,
            )
        )

    def _record_claims(self, conn, source: str, claims: list[tuple[str, dict[str, Any]]], at) -> None:
        rows = []
        for key, payload in claims:
            text = json.dumps(payload, sort_keys=True, default=str)
            rows.append({"hospital_key": key, "source": source, "payload_sha256": hashlib.sha256(text.encode()).hexdigest(),
                         "payload": text, "first_seen_at": at, "last_seen_at": at})
        if not rows:
            return
        _, known = self._insert_new(conn, catalog_claims, rows, ("hospital_key", "payload_sha256"),
                                    narrow_by="hospital_key", where=catalog_claims.c.source == source)
        seen = [{"_key": r["hospital_key"], "_digest": r["payload_sha256"]} for r in rows
                if (r["hospital_key"], r["payload_sha256"]) in known]
        if seen:
            conn.execute(
                catalog_claims.update()
                .where(
                    (catalog_claims.c.hospital_key == sa.bindparam("_key"))
                    & (catalog_claims.c.source == source)
                    & (catalog_claims.c.payload_sha256 == sa.bindparam("_digest"))
                )
                .values(last_seen_at=at),
                seen,
            )

    def mark_removed(self, keys: Sequence[str]) -> int:
        """Mark hospitals no longer listed; their history and files stay."""
        if not keys:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                hospitals.update()
                .where(hospitals.c.hospital_key.in_(list(keys)) & (hospitals.c.status != "removed"))
                .values(status="removed", removed_at=now())
            )
        return result.rowcount

    def list_hospitals(self, *, status: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(hospitals).order_by(hospitals.c.hospital_key)
        if status:
            query = query.where(hospitals.c.status == status)
        return self._rows(query)

    def hospital(self, hospital_key: str) -> dict[str, Any] | None:
        rows = self._rows(sa.select(hospitals).where(hospitals.c.hospital_key == hospital_key))
        return rows[0] if rows else None

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

    def claims_for(self, hospital_key: str) -> list[dict[str, Any]]:
        return self._rows(
            sa.select(catalog_claims)
            .where(catalog_claims.c.hospital_key == hospital_key)
            .order_by(catalog_claims.c.last_seen_at.desc())
        )

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

        def write(conn, batch):
            at = now()
            rows = [dict(kind=kind, value=value, hospital_key=key, first_seen_at=at, last_seen_at=at)
                    for kind, value, key in batch]
            self._insert_new(conn, hospital_identifiers, rows, ("kind", "value"), narrow_by="value")

        self._isolated(
            items,
            self._in_transaction(write),
            table="hospital_identifiers",
            describe=lambda item: describe(f"{item[0]} of {ascii(item[2])}:", item[1]),
            hospital_of=lambda item: item[2],
            rejected=rejected,
        )
