"""The registry's one engine and connection owner, and the write helpers every table family uses.

SQLAlchemy Core over SQLite by default (WAL mode, so concurrent run workers can write) and
PostgreSQL in production (``PRICE_PIPELINE_REGISTRY_URL=postgresql://…``). Tables are created
on first use (columns added since are added in place); every write is an upsert so reruns are
idempotent.

One bad record never rolls back the good ones: every batch write runs as one transaction and,
when the database (or its driver) refuses a record's data — a NUL in PostgreSQL text, a lone
surrogate no driver can encode, a value too long for its column, a constraint — the batch is
split in halves, each retried in its own transaction, down to the single records at fault
(:meth:`Database.isolated`). Those are left out and reported (:class:`Rejected`, a warning in the
log, and the caller's ``rejected`` list); errors that are not about the data (a lost connection,
a locked database) still raise.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from price_pipeline.lib.lake.text import clean_text
from price_pipeline.lib.registry.tables import metadata

log = logging.getLogger("price_pipeline.lib.registry")

# A batch (or a retried part of one) this small looks up only its own keys; a bigger one reads
# the table's keys once.
SMALL_BATCH = 500


def now() -> dt.datetime:
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


def describe(kind: str, value: Any) -> str:
    """How a refused record is named in :class:`Rejected` (ASCII-escaped, bounded)."""
    return f"{kind} {ascii(value)[:200]}"


def _key_or_none(value: Any) -> str | None:
    """``value`` when it is a well-formed hospital key (so it can be stored beside a finding)."""
    # the one key rule; imported here because discovery's package imports the registry (fetch)
    from price_pipeline.lib.discovery.keys import VALID_KEY

    return value if isinstance(value, str) and VALID_KEY.match(value) else None


def narrowed(query, column: sa.Column, values: Iterable[Any]):
    """``query`` restricted to ``column IN values`` when they are few (a small batch, or a retried
    part of one); a big batch reads the whole table once instead of a huge IN list."""
    values = set(values)
    return query.where(column.in_(values)) if len(values) <= SMALL_BATCH else query


class Database:
    """Owns the engine of the registry: connections, schema, and the shared write helpers."""

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

    def dispose(self) -> None:
        self.engine.dispose()

    # -- reads -------------------------------------------------------------------------------
    def _rows(self, query) -> list[dict[str, Any]]:
        """Every row of ``query`` as a dict."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- writes ------------------------------------------------------------------------------
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
        for start in range(0, len(rows), SMALL_BATCH):
            stmt = insert(table).values(rows[start : start + SMALL_BATCH])
            updates = {c: stmt.excluded[c] for c in columns if c not in keys and c not in keep}
            conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates))

    @staticmethod
    def _insert_new(
        conn, table: sa.Table, rows: list[dict[str, Any]], key: Sequence[str], *, narrow_by: str, where=None
    ) -> tuple[list[dict[str, Any]], set[tuple]]:
        """Insert the rows whose ``key`` columns are not stored yet (rows repeating a key: the
        last wins); returns (the inserted rows, the keys that were already stored). ``where``
        restricts which stored rows count (e.g. one source's claims)."""
        query = sa.select(*(table.c[k] for k in key))
        if where is not None:
            query = query.where(where)
        known = {tuple(r) for r in conn.execute(narrowed(query, table.c[narrow_by], (r[narrow_by] for r in rows)))}
        fresh: dict[tuple, dict[str, Any]] = {}
        for row in rows:
            identity = tuple(row[k] for k in key)
            if identity not in known:
                fresh[identity] = row
        if fresh:
            conn.execute(table.insert(), list(fresh.values()))
        return list(fresh.values()), known

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

    def _in_transaction(self, write: Callable[[Any, list[Any]], Any]) -> Callable[[list[Any]], Any]:
        """``write(conn, batch)`` as a one-transaction batch writer for :meth:`_isolated`."""

        def run(batch: list[Any]) -> Any:
            with self.engine.begin() as conn:
                return write(conn, batch)

        return run
