"""Every file version's prices, kept; and what changed between a hospital's last two versions.

Lake layout (``price_pipeline.lib.lake.layout``)::

    prices_history/hospital_key=<k>/file_sha256=<sha>.parquet   PRICES_SCHEMA rows of one version
    prices_history/hospital_key=<k>/versions.parquet            one row per version ever normalised
    prices/hospital_key=<k>/prices.parquet                      the current versions' rows (unchanged)
    price_changes/hospital_key=<k>/changes.parquet              newest version vs the previous one

:func:`build_hospital_prices_with_history` normalises each current parsed version on its own
(the normaliser deduplicates item-level charges per file, so per-version files hold exactly the
rows the combined table holds), publishes it to ``prices_history``, then the current table
(the concatenation of the current versions), then ``versions.parquet``. Every publish is atomic
(temp file + rename, or one PUT); ``versions.parquet`` is written last, so a killed run leaves
the previous version list in force. Versions that are no longer current are never deleted.

:func:`compute_price_changes` compares the hospital's newest version with the version it
replaced (the previous version of the same URL; when the URL changed, the newest version that
is no longer current) on the natural key ``item identity + payer + plan + charge kind``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.schemas import PRICE_CHANGES_SCHEMA, PRICE_VERSIONS_SCHEMA, PRICES_SCHEMA
from price_pipeline.lib.lake.storage import Lake
from price_pipeline.lib.parse.mrf.values import date_array, empty_table, from_numpy, str_array
from price_pipeline.lib.parse.versions import current_parsed_versions
from price_pipeline.lib.prices.normalize import WRITER_OPTIONS, normalize_to_prices

# Columns identifying one price fact across versions (the item, the payer/plan, the kind).
NATURAL_KEY = (
    "description",
    "setting",
    "billing_class",
    "modifiers",
    "drug_unit_of_measurement",
    "drug_type_of_measurement",
    "primary_code",
    "primary_code_type",
    "payer_name",
    "plan_name",
    "charge_kind",
)


@dataclass
class HistoryResult:
    rows: int
    bytes: int
    current_versions: list[str]
    versions_written: list[str]
    versions_known: int
    versions: list[dict] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def read_versions(lake: Lake, hospital_key: str) -> list[dict]:
    """The hospital's version list (``versions.parquet``), oldest first; empty when none."""
    key = layout.price_versions_key(hospital_key)
    if not lake.exists(key):
        return []
    with lake.local_copy(key) as path:
        table = pq.ParquetFile(path).read()  # not pq.read_table: pyarrow.dataset imports pandas
    # Timestamps (UTC) as naive values, tagged UTC here: to_pylist's time-zone conversion imports pandas.
    aware = [f.name for f in table.schema if pa.types.is_timestamp(f.type) and f.type.tz]
    for name in aware:
        column = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name, column.cast(pa.timestamp(column.type.unit)))
    rows = table.to_pylist()
    for row in rows:
        for name in aware:
            if row[name] is not None:
                row[name] = row[name].replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: r["version_seq"])


# Bump when the normaliser's output changes: history files written by an older revision are then
# normalised again instead of reused. Stored in each history file's Parquet metadata; files
# without it were written by revision 1 (the SQL normaliser, whose rows revision 1 reproduces).
NORMALIZER_REVISION = "1"
_REVISION_KEY = b"price_pipeline.normalizer_revision"


def _stored_revision(path: str | os.PathLike) -> str:
    metadata = pq.read_schema(path).metadata or {}
    return metadata.get(_REVISION_KEY, b"1").decode()


def _reusable_history(lake: Lake, hospital_key: str, sha: str, known: dict[str, dict]) -> int | None:
    """Rows of the stored history file of version ``sha`` when it can be reused, else None.

    A history file is published whole (temp file + rename, or one PUT) before the version list,
    so an existing file is complete; it is reused when its normaliser revision is current.
    """
    key = layout.prices_history_key(hospital_key, sha)
    if not lake.exists(key):
        return None
    with lake.local_copy(key) as path:
        if _stored_revision(path) != NORMALIZER_REVISION:
            return None
        rows = known.get(sha, {}).get("rows")
        return rows if rows is not None else pq.ParquetFile(path).metadata.num_rows


def build_hospital_prices_with_history(
    hospital_key: str, *, lake: Lake, scratch_dir: str | os.PathLike, memory_limit: str = "256MB",
    reuse: bool = True,
) -> HistoryResult:
    """Normalise the hospital's current parsed versions, keep each in the history, publish prices.

    A version already in ``prices_history`` (same file sha256, same normaliser revision) is
    reused, not normalised again (``reuse=False`` normalises everything): a rerun of an
    unchanged hospital only refreshes the version list, and a hospital with one changed file
    normalises that file only. ``prices.parquet`` is rewritten only when the set of current
    versions changed (or is missing).
    """
    scratch = Path(scratch_dir)
    versions = [v for v in current_parsed_versions(hospital_key, lake=lake) if v.summary.ok]
    previous = read_versions(lake, hospital_key)
    known = {r["file_sha256"]: r for r in previous}
    per_version: dict[str, tuple[Path | None, int, dict]] = {}
    written: list[str] = []
    for v in versions:
        if v.file_sha256 in per_version:  # the same bytes listed under two URLs
            continue
        info = {"url": v.url, "header": v.summary.header or {}}
        rows = _reusable_history(lake, hospital_key, v.file_sha256, known) if reuse else None
        if rows is not None:
            per_version[v.file_sha256] = (None, rows, info)
            continue
        out = scratch / f"history-{v.file_sha256}.parquet"
        with lake.local_copy(v.rows_key) as parsed_path:
            rows = normalize_to_prices(
                [(parsed_path, v.summary.header, v.file_sha256)],
                out,
                hospital_key=hospital_key,
                memory_limit=memory_limit,
                metadata={_REVISION_KEY: NORMALIZER_REVISION.encode()},
            )
        lake.put_file(out, layout.prices_history_key(hospital_key, v.file_sha256))
        per_version[v.file_sha256] = (out, rows, info)
        written.append(v.file_sha256)

    # The current table: the current versions' rows. Unchanged set of current versions and
    # nothing renormalised -> the published table is still right.
    previously_current = {r["file_sha256"] for r in previous if r["is_current"]}
    prices_key = layout.prices_key(hospital_key)
    total = sum(rows for _, rows, _ in per_version.values())
    if not written and set(per_version) == previously_current and lake.exists(prices_key):
        size = lake.size(prices_key)
    elif len(per_version) == 1:  # one version: the table is its history file
        (sha, (path, _, _)), = per_version.items()
        with contextlib.ExitStack() as stack:
            source = path or stack.enter_context(lake.local_copy(layout.prices_history_key(hospital_key, sha)))
            lake.put_file(source, prices_key)
        size = lake.size(prices_key)
    else:
        current = scratch / "prices.parquet"
        # The normaliser's writer options: dictionaries for text only, statistics where they prune.
        with pq.ParquetWriter(current, PRICES_SCHEMA, **WRITER_OPTIONS) as writer, contextlib.ExitStack() as stack:
            for sha, (path, _, _) in per_version.items():
                source = path or stack.enter_context(lake.local_copy(layout.prices_history_key(hospital_key, sha)))
                for batch in pq.ParquetFile(source).iter_batches(batch_size=64 * 1024):
                    writer.write_batch(batch)
        size = current.stat().st_size
        lake.put_file(current, prices_key)

    table = _updated_versions(previous, hospital_key, per_version)
    versions_out = scratch / "versions.parquet"
    pq.write_table(_table_from_rows(table, PRICE_VERSIONS_SCHEMA), versions_out)
    lake.put_file(versions_out, layout.price_versions_key(hospital_key))
    return HistoryResult(
        rows=total,
        bytes=size,
        current_versions=list(per_version),
        versions_written=written,
        versions_known=len(table),
        versions=table,
    )


def _updated_versions(previous: list[dict], hospital_key: str, current: dict[str, tuple[Path | None, int, dict]]) -> list[dict]:
    from price_pipeline.lib.parse.mrf.values import parse_date

    now = _now()
    by_sha = {r["file_sha256"]: dict(r) for r in previous}
    next_seq = max((r["version_seq"] for r in previous), default=0) + 1
    for row in by_sha.values():
        if row["is_current"] and row["file_sha256"] not in current:
            row["is_current"] = False
            row["superseded_at"] = now
    for sha, (_, rows, info) in current.items():
        header = info["header"]
        row = by_sha.get(sha)
        if row is None:
            row = {
                "hospital_key": hospital_key,
                "file_sha256": sha,
                "version_seq": next_seq,
                "first_seen_at": now,
                "superseded_at": None,
            }
            next_seq += 1
            by_sha[sha] = row
        row.update(
            url=info["url"],
            last_updated_on=parse_date(header.get("last_updated_on")),
            template_version=header.get("version"),
            rows=rows,
            is_current=True,
            last_seen_at=now,
            superseded_at=None,
        )
    return sorted(by_sha.values(), key=lambda r: r["version_seq"])


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=schema)`` for string, integer, bool, date and
    second-timestamp columns, built from buffers: pyarrow's converter imports pandas (~0.4 CPU-s
    per run process), which nothing else in the prices steps needs."""
    columns = []
    for f in schema:
        values = [r.get(f.name) for r in rows]
        nulls = np.array([v is None for v in values], bool)
        if pa.types.is_string(f.type):
            columns.append(str_array(values))
            continue
        if pa.types.is_date32(f.type):
            columns.append(date_array(values))
            continue
        if pa.types.is_timestamp(f.type) and f.type.unit == "s":
            numbers = [int((v - _EPOCH).total_seconds()) if v is not None else 0 for v in values]
            storage = np.int64
        elif pa.types.is_boolean(f.type):
            columns.append(from_numpy(np.array([bool(v) for v in values], bool), nulls))
            continue
        elif pa.types.is_signed_integer(f.type):
            numbers, storage = [v if v is not None else 0 for v in values], np.dtype(f"int{f.type.bit_width}")
        else:
            raise TypeError(f"{f.name}: {f.type} not supported")
        array = from_numpy(np.array(numbers, storage), nulls)
        columns.append(array if array.type == f.type else array.view(f.type))
    return pa.table(columns, schema=schema)


def newest_and_previous(versions: list[dict]) -> tuple[dict | None, dict | None]:
    """(newest current version, the version it replaced) from a hospital's version list."""
    current = [v for v in versions if v["is_current"]]
    if not current:
        return None, None
    newest = max(current, key=lambda v: v["version_seq"])
    older = [v for v in versions if v["version_seq"] < newest["version_seq"]]
    same_url = [v for v in older if v.get("url") == newest.get("url")]
    if same_url:
        return newest, max(same_url, key=lambda v: v["version_seq"])
    retired = [v for v in older if not v["is_current"]]
    return newest, (max(retired, key=lambda v: v["version_seq"]) if retired else None)


_KEY_LIST = ", ".join(NATURAL_KEY)
_JOIN_ON = " AND ".join(f"o.{c} IS NOT DISTINCT FROM n.{c}" for c in NATURAL_KEY) + " AND o.dup = n.dup"

# Duplicated natural keys (the same item listed twice) are paired in value order (dup).
_CHANGES_SQL = f"""
WITH o AS (
  SELECT *, row_number() OVER (PARTITION BY {_KEY_LIST} ORDER BY amount, percentage, value_text, source_row, source_path) AS dup
  FROM read_parquet($old)
), n AS (
  SELECT *, row_number() OVER (PARTITION BY {_KEY_LIST} ORDER BY amount, percentage, value_text, source_row, source_path) AS dup
  FROM read_parquet($new)
), joined AS (
  SELECT
    CASE WHEN o.dup IS NULL THEN 'added' WHEN n.dup IS NULL THEN 'removed'
         WHEN o.amount IS DISTINCT FROM n.amount OR o.percentage IS DISTINCT FROM n.percentage
              OR o.value_text IS DISTINCT FROM n.value_text THEN 'changed'
         ELSE 'unchanged' END AS change_kind,
    {", ".join(f"coalesce(n.{c}, o.{c}) AS {c}" for c in NATURAL_KEY)},
    o.amount AS old_amount, n.amount AS new_amount,
    o.percentage AS old_percentage, n.percentage AS new_percentage,
    o.value_text AS old_value_text, n.value_text AS new_value_text,
    o.source_row AS old_source_row, n.source_row AS new_source_row,
    o.source_path AS old_source_path, n.source_path AS new_source_path
  FROM o FULL OUTER JOIN n ON {_JOIN_ON}
)
SELECT $hospital_key AS hospital_key, $old_sha AS old_file_sha256, $new_sha AS new_file_sha256,
       $old_date::DATE AS old_last_updated_on, $new_date::DATE AS new_last_updated_on, *,
       new_amount - old_amount AS amount_change,
       CASE WHEN old_amount <> 0 THEN (new_amount - old_amount) / old_amount END AS amount_change_ratio
FROM joined
"""  # noqa: S608 - built from module constants only; values are bound parameters


_CHANGES_KEY = b"price_pipeline.changes"


def _stored_changes(lake: Lake, hospital_key: str) -> dict | None:
    """The versions compared and the counts of the stored changes file (None if absent or older)."""
    key = layout.price_changes_key(hospital_key)
    if not lake.exists(key):
        return None
    with lake.local_copy(key) as path:
        raw = (pq.read_schema(path).metadata or {}).get(_CHANGES_KEY)
    return json.loads(raw) if raw else None


@dataclass
class ChangesResult:
    new_file_sha256: str | None
    old_file_sha256: str | None
    counts: dict[str, int]
    bytes: int


def compute_price_changes(hospital_key: str, *, lake: Lake, scratch_dir: str | os.PathLike) -> ChangesResult:
    """Write ``price_changes/hospital_key=<k>/changes.parquet``: added, removed and changed rows.

    Unchanged rows are counted, not written. With no previous version the file is written empty.
    When the stored file already compares the same two versions (a rerun with nothing new),
    it is kept and its counts are read from its metadata instead of joining the versions again.
    """
    scratch = Path(scratch_dir)
    out = scratch / "changes.parquet"
    newest, previous = newest_and_previous(read_versions(lake, hospital_key))
    pair = {
        "old_file_sha256": previous["file_sha256"] if previous else None,
        "new_file_sha256": newest["file_sha256"] if newest else None,
        "revision": NORMALIZER_REVISION,
    }
    stored = _stored_changes(lake, hospital_key)
    if stored is not None and stored.get("pair") == pair:
        return ChangesResult(
            new_file_sha256=pair["new_file_sha256"],
            old_file_sha256=pair["old_file_sha256"],
            counts=stored["counts"],
            bytes=lake.size(layout.price_changes_key(hospital_key)),
        )
    counts = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}
    if newest is None or previous is None:
        table = empty_table(PRICE_CHANGES_SCHEMA)
    else:
        with contextlib.ExitStack() as stack:
            old_path = stack.enter_context(
                lake.local_copy(layout.prices_history_key(hospital_key, previous["file_sha256"]))
            )
            new_path = stack.enter_context(
                lake.local_copy(layout.prices_history_key(hospital_key, newest["file_sha256"]))
            )
            con = duckdb.connect(config={"memory_limit": "1GB", "threads": 2})
            try:
                table = con.sql(
                    _CHANGES_SQL,
                    params={
                        "old": str(old_path),
                        "new": str(new_path),
                        "hospital_key": hospital_key,
                        "old_sha": previous["file_sha256"],
                        "new_sha": newest["file_sha256"],
                        "old_date": previous.get("last_updated_on"),
                        "new_date": newest.get("last_updated_on"),
                    },
                ).to_arrow_table()
            finally:
                con.close()
        for item in pc.value_counts(table.column("change_kind")).to_pylist():
            counts[item["values"]] = item["counts"]
        table = table.filter(pc.not_equal(table.column("change_kind"), str_array(["unchanged"])[0])).select(PRICE_CHANGES_SCHEMA.names).cast(PRICE_CHANGES_SCHEMA)
        order = ["change_kind", "primary_code", "description", "payer_name", "plan_name", "charge_kind"]
        table = table.sort_by([(c, "ascending") for c in order])
    what = json.dumps({"pair": pair, "counts": counts}).encode()
    pq.write_table(table.replace_schema_metadata({_CHANGES_KEY: what}), out, compression="zstd")
    lake.put_file(out, layout.price_changes_key(hospital_key))
    return ChangesResult(
        new_file_sha256=newest["file_sha256"] if newest else None,
        old_file_sha256=previous["file_sha256"] if previous else None,
        counts=counts,
        bytes=out.stat().st_size,
    )
