"""The discovery family: the last cms-hpt.txt crawl of each website, and what a discovery pass
had to clean or leave out (``discovery_findings``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from price_pipeline.lib.registry.database import Database, Rejected, describe, narrowed, now
from price_pipeline.lib.registry.tables import discovery_findings, site_crawls


class DiscoveryRecords(Database):
    """``site_crawls`` and ``discovery_findings``."""

    def site_crawls(self) -> dict[str, dict[str, Any]]:
        return {r["website"]: r for r in self._rows(sa.select(site_crawls))}

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

        def write(conn, batch):
            at = now()
            query = narrowed(sa.select(site_crawls), site_crawls.c.website, (r["website"] for r in batch))
            previous = {r.website: r for r in conn.execute(query)}
            out = []
            for row in batch:
                prev = previous.get(row["website"])
                entries = row.get("entries_json")
                found_at = at if row["status"] == "found" else (prev.found_at if prev else None)
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
                        "crawled_at": at,
                        "found_at": found_at,
                    }
                )
            self._upsert(conn, site_crawls, out, ("website",))

        self._isolated(
            rows,
            self._in_transaction(write),
            table="site_crawls",
            describe=lambda row: describe("crawl of", row.get("website")),
            hospital_of=lambda row: row.get("hospital_key"),
            rejected=rejected,
        )

    def record_discovery_findings(
        self, findings: Iterable[dict[str, Any]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Upsert ``{source, source_id, hospital_key, field, rule, severity, message}`` findings.

        One row per (source, source_id, field, rule): seen again, its message, hospital and
        ``last_seen_at`` are updated and ``first_seen_at`` kept. Returns how many were stored.
        """
        at = now()
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
                "first_seen_at": at,
                "last_seen_at": at,
            }

        def write(conn, batch):
            self._upsert(conn, discovery_findings, batch, ("finding_id",), keep=("first_seen_at",))
            return len(batch)

        return sum(
            self._isolated(
                list(rows.values()),
                self._in_transaction(write),
                table="discovery_findings",
                describe=lambda row: describe(f"{row['rule']} finding of", row["source_id"]),
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
        return self._rows(query)
