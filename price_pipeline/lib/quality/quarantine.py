"""Quarantine: every row and file that failed, with its reason, as one queryable table.

Nothing that fails is dropped: the bytes stay in ``raw/`` and the parser's unreadable rows stay in
``parsed/hospital_key=<k>/file_sha256=<sha>/quarantine.parquet``. This module gathers the
*current* failures of each hospital into :data:`QUARANTINE_SCHEMA` rows:

* ``level='file', stage='download'`` — a listed file that failed to download or was rejected
  (e.g. an HTML error page behind a ``.csv`` link; its bytes are kept under ``raw_key``);
* ``level='file', stage='parse'`` — a downloaded file the parser could not read as an MRF;
* ``level='row', stage='parse'`` — a row the parser quarantined, with the raw text and reason.

"Current" follows the hospital's latest ``mrf_files`` manifest and ``mrf_parsed`` outputs: a
rerun after a fix (a corrected file published by the hospital, or a parser fix) rewrites those,
so the released rows disappear from the view while older quarantine files stay in the lake.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.fetch.files import FilesManifest
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import Lake, connect_duckdb
from price_pipeline.lib.parse.versions import current_parsed_versions

RAW_TEXT_CHARS = 2000  # raw row text kept per quarantined row in the view

QUARANTINE_SCHEMA = pa.schema(
    [
        ("hospital_key", pa.string()),
        ("level", pa.string()),  # file | row
        ("stage", pa.string()),  # download | parse
        ("file_sha256", pa.string()),
        ("url", pa.string()),
        ("reason", pa.string()),
        ("source_row", pa.int64()),
        ("source_path", pa.string()),
        ("raw", pa.string()),
        ("lake_key", pa.string()),  # where the evidence is stored (raw bytes or quarantine Parquet)
    ]
)


def _hospital_keys(lake: Lake) -> list[str]:
    keys = {layout.hospital_key_of(key) for key in lake.list_keys(layout.FILES_MANIFESTS_PREFIX)}
    return sorted(k for k in keys if k is not None)


def _row(hospital_key: str, level: str, stage: str, reason: str, **kw: Any) -> dict[str, Any]:
    return {"hospital_key": hospital_key, "level": level, "stage": stage, "reason": reason, **kw}


def hospital_quarantine(hospital_key: str, *, lake: Lake) -> tuple[list[dict[str, Any]], list[str]]:
    """File-level rows of one hospital, and the lake keys of its current quarantine Parquet files."""
    rows: list[dict[str, Any]] = []
    row_files: list[str] = []
    manifest_key = layout.files_manifest_key(hospital_key)
    if not lake.exists(manifest_key):
        return rows, row_files
    manifest = FilesManifest.from_json(lake.get_bytes(manifest_key))
    for f in manifest.files:
        if f.status != "ok":
            rows.append(
                _row(hospital_key, "file", "download", f"{f.status}: {f.error or 'no reason recorded'}",
                     file_sha256=f.sha256 if f.raw_key else None, url=f.url, lake_key=f.raw_key)
            )
    if not lake.exists(layout.parsed_current_key(hospital_key)):
        return rows, row_files
    for v in current_parsed_versions(hospital_key, lake=lake):
        summary = v.summary
        if not summary.ok:
            errors = [f for f in summary.findings if f.severity == "error"]
            reason = "; ".join(f"{f.rule}: {f.message}" for f in errors[:3]) or "not a readable MRF"
            rows.append(
                _row(hospital_key, "file", "parse", f"unparseable: {reason}", file_sha256=v.file_sha256,
                     url=v.url, lake_key=layout.parsed_summary_key(hospital_key, v.file_sha256))
            )
        # A file the latest parse did not quarantine anything from may still have an older
        # quarantine.parquet (same bytes, older parser): the summary decides what is current.
        quarantine_key = layout.parsed_quarantine_key(hospital_key, v.file_sha256)
        if summary.rows_quarantined and lake.exists(quarantine_key):
            row_files.append(quarantine_key)
    return rows, row_files


_ROW_SQL = (
    "SELECT ?::VARCHAR AS hospital_key, 'row' AS level, 'parse' AS stage, file_sha256, NULL::VARCHAR AS url, "
    "reason, source_row, source_path, left(raw, ?) AS raw, ?::VARCHAR AS lake_key FROM read_parquet(?)"
)


def build_quarantine(lake: Lake, *, hospital_keys: Iterable[str] | None = None) -> pa.Table:
    """The current quarantine of the given hospitals (default: every hospital in the lake)."""
    file_rows: list[dict[str, Any]] = []
    row_files: list[tuple[str, str]] = []
    for key in sorted(hospital_keys) if hospital_keys is not None else _hospital_keys(lake):
        rows, files = hospital_quarantine(key, lake=lake)
        file_rows.extend(rows)
        row_files.extend((key, f) for f in files)
    tables = [pa.Table.from_pylist(file_rows, schema=QUARANTINE_SCHEMA)]
    if row_files:
        con = connect_duckdb(lake)
        try:
            for hospital_key, lake_key in row_files:
                # One file at a time, each tagged with its hospital and lake key.
                tables.append(
                    con.sql(_ROW_SQL, params=[hospital_key, RAW_TEXT_CHARS, lake_key, lake.uri(lake_key)])
                    .to_arrow_table()
                    .cast(QUARANTINE_SCHEMA)
                )
        finally:
            con.close()
    return pa.concat_tables(tables)


def write_quarantine(lake: Lake, table: pa.Table) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        lake.put_file(tmp, layout.QUARANTINE_KEY)
    finally:
        os.unlink(tmp)


def summarize(table: pa.Table) -> dict[str, Any]:
    """Counts by level/stage and by hospital, for metadata and the CLI."""
    rows = table.to_pylist()
    by_kind: dict[str, int] = {}
    by_hospital: dict[str, int] = {}
    for r in rows:
        kind = f"{r['level']}:{r['stage']}"
        by_kind[kind] = by_kind.get(kind, 0) + 1
        by_hospital[r["hospital_key"]] = by_hospital.get(r["hospital_key"], 0) + 1
    return {"entries": len(rows), "by_kind": by_kind, "by_hospital": dict(sorted(by_hospital.items()))}


def to_json_lines(table: pa.Table, *, limit: int | None = None) -> Iterable[str]:
    for i, r in enumerate(table.to_pylist()):
        if limit is not None and i >= limit:
            return
        yield json.dumps(r, default=str)
