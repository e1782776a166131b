"""The files family: every version of every file, each listed file's change-detection state, and
which change signals each host has proven trustworthy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from price_pipeline.lib.registry.database import Database, Rejected, describe, now
from price_pipeline.lib.registry.tables import file_states, file_versions, host_profiles

HOST_SIGNALS = ("conditional", "head", "range")


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


class FileRecords(Database):
    """``file_versions``, ``file_states`` and ``host_profiles``."""

    # -- file versions -----------------------------------------------------------------------
    def record_file_version(self, fv: FileVersion) -> None:
        """One (hospital, url, content) version seen now: inserted, or its values and last-seen
        time updated (a failure is keyed by an empty sha256)."""
        at = now()
        row = {
            "hospital_key": fv.hospital_key,
            "url": fv.url,
            "sha256": fv.sha256 or "",
            "host": urlsplit(fv.url).hostname,
            "size": fv.size,
            "etag": fv.etag,
            "last_modified": fv.last_modified,
            "content_type": fv.content_type,
            "raw_key": fv.raw_key,
            "status": fv.status,
            "error": fv.error,
            "error_kind": fv.error_kind,
            "first_seen_at": at,
            "last_seen_at": at,
        }
        with self.engine.begin() as conn:
            self._upsert(conn, file_versions, [row], ("hospital_key", "url", "sha256"), keep=("first_seen_at",))

    def file_versions_for(self, hospital_key: str) -> list[dict[str, Any]]:
        return self._rows(
            sa.select(file_versions)
            .where(file_versions.c.hospital_key == hospital_key)
            .order_by(file_versions.c.last_seen_at.desc(), file_versions.c.id.desc())
        )

    def latest_ok_version(self, hospital_key: str, url: str) -> dict[str, Any] | None:
        for row in self.file_versions_for(hospital_key):
            if row["url"] == url and row["status"] == "ok":
                return row
        return None

    # -- file states (change detection) ------------------------------------------------------
    def file_states(
        self, hospital_keys: Iterable[str] | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        query = sa.select(file_states)
        if hospital_keys is not None:
            query = query.where(file_states.c.hospital_key.in_(list(hospital_keys)))
        return {(r["hospital_key"], r["url"]): r for r in self._rows(query)}

    def file_states_after(self, watermark: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` file states ordered by (hospital_key, url) after ``watermark`` (a sweep)."""
        query = sa.select(file_states).order_by(file_states.c.hospital_key, file_states.c.url).limit(limit)
        if watermark is not None:
            hk, url = watermark
            query = query.where(
                (file_states.c.hospital_key > hk)
                | ((file_states.c.hospital_key == hk) & (file_states.c.url > url))
            )
        return self._rows(query)

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

        def write(conn, batch):
            # one upsert per set of columns: a row leaves out what it does not change
            by_cols: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in batch:
                by_cols.setdefault(tuple(sorted(row)), []).append(row)
            for group in by_cols.values():
                self._upsert(conn, file_states, group, ("hospital_key", "url"))

        self._isolated(
            [row for group in groups.values() for row in group],
            self._in_transaction(write),
            table="file_states",
            describe=lambda row: describe(f"file of {ascii(row.get('hospital_key'))}:", row.get("url")),
            hospital_of=lambda row: row.get("hospital_key"),
            rejected=rejected,
        )

    def ensure_file_states(
        self, listed: Iterable[tuple[str, str]], *, rejected: list[Rejected] | None = None
    ) -> int:
        """Create ``pending`` states for (hospital_key, url) pairs not tracked yet; returns how many.

        A pair the database refuses (e.g. a URL longer than the column) is reported in ``rejected``.
        """

        def write(conn, batch):
            rows = [{"hospital_key": k, "url": u, "host": urlsplit(u).hostname, "status": "pending",
                     "consecutive_failures": 0} for k, u in batch]
            fresh, _ = self._insert_new(conn, file_states, rows, ("hospital_key", "url"), narrow_by="hospital_key")
            return len(fresh)

        return sum(
            self._isolated(
                list(dict.fromkeys(listed)),
                self._in_transaction(write),
                table="file_states",
                describe=lambda pair: describe(f"file of {ascii(pair[0])}:", pair[1]),
                hospital_of=lambda pair: pair[0],
                rejected=rejected,
            )
        )

    # -- host profiles -----------------------------------------------------------------------
    def host_profiles(self) -> dict[str, dict[str, Any]]:
        return {r["host"]: r for r in self._rows(sa.select(host_profiles))}

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
        at = now()
        with self.engine.begin() as conn:
            # a host seen for the first time starts at zero everywhere, then counts like the others
            self._insert_new(
                conn, host_profiles,
                [{"host": host, **{f"{s}_{o}": 0 for s in HOST_SIGNALS for o in ("ok", "bad")}, "updated_at": at}
                 for host in deltas],
                ("host",), narrow_by="host",
            )
            for host, cols in deltas.items():
                conn.execute(
                    host_profiles.update()
                    .where(host_profiles.c.host == host)
                    .values(**{c: host_profiles.c[c] + n for c, n in cols.items()}, updated_at=at)
                )
