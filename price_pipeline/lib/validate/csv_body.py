"""The data rows of a CSV MRF, streamed by ``pyarrow.csv`` (all columns as strings) in batches
that the vectorised rules (:class:`.csv_rows.RowChecker`) check group by group.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from price_pipeline.lib.parse.mrf import csv_reader
from price_pipeline.lib.parse.mrf.csv_reader import (
    BLOCK_GROWTH,
    MAX_BLOCK_SIZE,
    MAX_RECORD_BYTES,
    BlankRunReader,
    BlankRunsQuoted,
    PrefixedReader,
    RecordTooLarge,
    RecordTooLong,
    SkippedRecords,
    arrow_input,
    blank_mark_count,
    check_record_sizes,
    end_record,
    expand_rows,
    is_end_record,
)

from .csv_header import CsvLayout, UnterminatedField
from .csv_rows import RowChecker
from .report import ReportCollector

GROUP_BYTES = 8 * 1024**2  # batches checked together


class UnreadableBody(Exception):
    """Arrow stopped reading the data rows (the message says why)."""


def body_input(stream, buf: bytes, body_at: int, plain_path: str | None, bom: int, layout: CsvLayout,
               collapse_blanks: bool = True):
    """``(Arrow input, source to release, blank-run reader or None)`` positioned at the first data
    record, with the parser's end record after the payload (it shows whether the payload ends
    inside a quoted field); runs of blank lines collapsed as the parser does (:class:`BlankRunReader`)."""
    ncols = len(layout.columns)
    suffix = end_record(ncols)
    if plain_path is not None:
        raw = open(plain_path, "rb")  # noqa: SIM115 - closed by ArrowSource.release
        raw.seek(bom + body_at)
        body = PrefixedReader(b"", raw, suffix)  # (unbuffered: see the parser's read_csv)
    else:
        body = PrefixedReader(buf[body_at:], stream, suffix)
    collapse = collapse_blanks and csv_reader.COLLAPSE_BLANK_RUNS and ncols > 1
    blanks = BlankRunReader(body, ncols) if collapse else None
    return (*arrow_input(blanks or body), blanks)


# Recovered short rows held before they are checked (memory stays bounded on a flood of them).
PENDING_RECOVERED_ROWS = 65_536


def check_body(body_source, layout: CsvLayout, rc: ReportCollector, *, threads: bool,
               block_size: int) -> tuple[int, int] | None:
    """Stream the data rows through the vectorised checks. Returns (rows checked, records seen).

    ``block_size``: Arrow's block (the caller's :data:`.csv_check.BLOCK_SIZE`, bigger when a record
    does not fit). ``threads``: Arrow parses blocks on all cores; it does not number invalid rows (wrong field
    count) then, so at the first one this returns None and the caller starts over without.
    """
    ncols = len(layout.columns)
    names = [f"c{i}" for i in range(ncols)]
    skipped = SkippedRecords()  # Arrow record numbers not returned as rows (ascending)
    recovered: list[tuple[int, list[str]]] = []
    marks: list[tuple[int, int, int]] = []  # (Arrow record number, blank records, empty ones)
    unnumbered = []
    end_seen = []
    too_large = []

    def on_invalid(row) -> str:
        if is_end_record(row.text):
            end_seen.append(True)
            return "skip"
        if len(row.text) > MAX_RECORD_BYTES:
            too_large.append(True)  # (an exception here would be swallowed by pyarrow)
            return "skip"
        num = row.number
        if num is None:
            unnumbered.append(1)
            return "skip"
        skipped.add(num)
        mark = blank_mark_count(row.text)
        if mark is not None:
            marks.append((num, *mark))  # blank records: counted, never checked
            return "skip"
        try:
            fields = next(csv.reader(io.StringIO(row.text, newline="")), [])
        except csv.Error:
            fields = []
        fields = (fields + [""] * ncols)[:ncols]
        recovered.append((num, fields))
        if len(recovered) >= PENDING_RECOVERED_ROWS:
            flush_now()  # a body of short rows only: Arrow reads it whole without returning a batch
        return "skip"

    read_opts = pacsv.ReadOptions(use_threads=threads, block_size=block_size, column_names=names)
    parse_opts = pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                    newlines_in_values=True, ignore_empty_lines=False,
                                    invalid_row_handler=on_invalid)
    conv_opts = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                     quoted_strings_can_be_null=False)
    checker = RowChecker(layout, rc)
    returned = 0
    checked = 0
    pending: list = []
    pending_rows: list = []
    pending_bytes = 0

    def check_pending() -> int:
        nonlocal pending_bytes
        if not pending:
            return 0
        if len(pending) == 1:
            cols = [pending[0].column(j) for j in range(ncols)]
        else:
            cols = [pa.concat_arrays([b.column(j) for b in pending]) for j in range(ncols)]
        rows = np.concatenate(pending_rows)
        pending.clear()
        pending_rows.clear()
        pending_bytes = 0
        return checker.check(cols, rows)

    def flush_now() -> None:
        # Arrow calls on_invalid on this thread (the threaded pass stops at the first invalid
        # row): the rows returned so far are checked first, so findings keep file order.
        nonlocal checked
        checked += check_pending()
        checked += _flush_recovered(recovered, checker, ncols, marks)

    def stopped(e: pa.ArrowInvalid) -> None:
        if "straddl" not in str(e):
            raise UnreadableBody(str(e)) from e
        if block_size < MAX_BLOCK_SIZE:
            raise RecordTooLong(min(block_size * BLOCK_GROWTH, MAX_BLOCK_SIZE)) from e
        raise RecordTooLarge("a CSV record") from e

    body, source, blanks = body_source
    try:
        reader = pacsv.open_csv(body, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)
    except pa.ArrowInvalid as e:
        source.release()
        stopped(e)
    # Small Arrow blocks keep the reader's read-ahead (32 blocks) small; the checks run on groups
    # of batches (GROUP_BYTES) so that their per-call overhead stays small. Findings come out in
    # the same order as batch by batch: the rows of a group are in file order.

    def run() -> tuple[int, int] | None:
        nonlocal returned, checked, pending_bytes
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as e:
                stopped(e)
            if unnumbered:
                return None
            n = batch.num_rows
            if too_large:
                raise RecordTooLarge("a CSV record")
            check_record_sizes(batch)
            if n:
                r = np.arange(returned + 1, returned + n + 1, dtype=np.int64)
                # one array per run of skipped records, not a re-sort of every skipped number
                # per batch (a flood of short rows made that quadratic)
                r = skipped.map(r)
                returned += n
                pending.append(batch)
                pending_rows.append(expand_rows(r, marks) + 3)
                pending_bytes += batch.nbytes
            if recovered or pending_bytes >= GROUP_BYTES:
                checked += check_pending()
            if recovered:
                checked += _flush_recovered(recovered, checker, ncols, marks)
        if unnumbered:
            return None
        checked += check_pending()
        if recovered:
            checked += _flush_recovered(recovered, checker, ncols, marks)
        records = returned + skipped.count + sum(k - 1 for _n, k, _e in marks)
        if blanks is not None and blanks.inserted != len(marks):
            raise BlankRunsQuoted()
        if too_large:
            raise RecordTooLarge("a CSV record")
        if not end_seen:
            raise UnterminatedField(f"the file ends inside a quoted field (a quote never closes) after record "
                                    f"{records + 3}: the last record is cut off")
        return checked, records

    try:
        return run()
    except RecordTooLarge as e:
        if blanks is not None and blanks.inserted > len(marks):
            raise BlankRunsQuoted() from e  # a mark inside a field may have made it too large
        raise
    finally:
        reader.close()
        source.release()  # no read-ahead call may outlive the reader (see ArrowSource)


def _flush_recovered(recovered, checker, ncols, marks) -> int:
    items = sorted(recovered, key=lambda x: x[0])
    recovered.clear()
    cols = list(zip(*[f for _, f in items], strict=True))
    rows = expand_rows(np.array([num for num, _ in items], dtype=np.int64), marks) + 3
    return checker.check([pa.array(cols[i], pa.string()) for i in range(ncols)], rows)
