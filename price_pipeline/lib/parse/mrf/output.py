"""Parquet sinks for parsed rows and quarantined rows (batch by batch, bounded memory)."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from price_pipeline.lib.lake.schemas import PARSED_SCHEMA

QUARANTINE_SCHEMA = pa.schema([
    ("file_sha256", pa.string()),
    ("source_row", pa.int64()),
    ("source_path", pa.string()),
    ("raw", pa.string()),
    ("reason", pa.string()),
])
# Row groups of about this many rows: big enough for good compression and fast scans,
# small enough to keep a wide file's expanded batches well under the memory budget.
ROW_GROUP_ROWS = 128 * 1024
# Min/max statistics where they help pruning (numbers, row numbers, short codes); computing
# them for long free-text columns cost ~13% of the write time for nothing.
STATS_COLUMNS = [f.name for f in PARSED_SCHEMA
                 if not pa.types.is_string(f.type) or f.name in ("file_sha256", "setting", "billing_class",
                                                                  "payer_name", "plan_name")]

# Dictionary encoding for the text columns (and the codes list), where values repeat, but not
# for the per-row unique JSON path (its dictionary always overflowed after hashing every
# value, ~15% of the write time) nor for numbers: hashing every amount cost ~12% of the write
# time, and plain amounts compressed with zstd came out smaller.
DICTIONARY_COLUMNS = [f.name for f in PARSED_SCHEMA
                      if (pa.types.is_string(f.type) or pa.types.is_list(f.type)) and f.name != "source_path"]


def quarantine_path(out_path: str | os.PathLike) -> str:
    """``<out_path stem>.quarantine.parquet`` next to ``out_path``."""
    out = os.fspath(out_path)
    stem = out[: -len(".parquet")] if out.endswith(".parquet") else out
    return stem + ".quarantine.parquet"


class ParsedSink:
    """Writes PARSED_SCHEMA tables to ``out_path``; quarantined rows to the sibling file.

    Row groups are encoded and compressed by one background thread (Parquet encoding releases
    the GIL), overlapping with parsing; at most one row group waits, so memory stays bounded.
    """

    def __init__(self, out_path: str | os.PathLike, file_sha256: str | None):
        self.out_path = os.fspath(out_path)
        self.sha = file_sha256
        self.writer = pq.ParquetWriter(self.out_path, PARSED_SCHEMA, compression="zstd", compression_level=1,
                                       write_statistics=STATS_COLUMNS, use_dictionary=DICTIONARY_COLUMNS)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.rows = 0
        self.q_rows: list[dict] = []
        self.q_writer = None
        self.quarantined = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._inflight: Future | None = None

    def write(self, table: pa.Table) -> None:
        """Queue a PARSED_SCHEMA table; flushed as row groups of ~ROW_GROUP_ROWS rows."""
        if table.num_rows == 0:
            return
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            t = pa.concat_tables(self.pending) if len(self.pending) > 1 else self.pending[0]
            self.pending, self.pending_rows = [], 0
            self._wait()
            self._inflight = self._pool.submit(self.writer.write_table, t,
                                               row_group_size=max(ROW_GROUP_ROWS, t.num_rows))

    def _wait(self) -> None:
        if self._inflight is not None:
            f, self._inflight = self._inflight, None
            f.result()  # re-raises a write error here

    def quarantine(self, source_row: int | None, raw: str, reason: str, source_path: str | None = None) -> None:
        """Keep an unreadable row (raw content and reason)."""
        self.quarantined += 1
        self.q_rows.append({"file_sha256": self.sha, "source_row": source_row, "source_path": source_path,
                            "raw": raw[:100_000], "reason": reason})
        if len(self.q_rows) >= 10_000:
            self._flush_quarantine()

    def _flush_quarantine(self) -> None:
        if not self.q_rows:
            return
        if self.q_writer is None:
            self.q_writer = pq.ParquetWriter(quarantine_path(self.out_path), QUARANTINE_SCHEMA)
        self.q_writer.write_table(pa.Table.from_pylist(self.q_rows, schema=QUARANTINE_SCHEMA))
        self.q_rows = []

    def reset(self) -> None:
        """Discard everything written so far (restart of a parse with another encoding)."""
        self.pending = []
        self._wait()
        self._pool.shutdown()
        self.writer.close()
        if self.q_writer is not None:
            self.q_writer.close()
            self.q_writer = None
        qp = quarantine_path(self.out_path)
        if os.path.exists(qp):
            os.remove(qp)
        self.__init__(self.out_path, self.sha)

    def close(self) -> None:
        """Flush and close both files (the quarantine file only exists when rows were quarantined)."""
        try:
            self._flush()
            self._wait()
        finally:
            self._pool.shutdown()
            self.writer.close()
        self._flush_quarantine()
        if self.q_writer is not None:
            self.q_writer.close()
        else:
            qp = quarantine_path(self.out_path)
            if os.path.exists(qp):  # stale file from an earlier run of the same output
                os.remove(qp)
