"""Streaming CSV (tall and wide) reader: rows 1-3 by hand, the body with Arrow.

Rows 1-3 are located with a quote-aware byte scanner (quoted line breaks in rows 1-2 are
legal and common; CRLF, CR-only and LF all end a record) and parsed with the ``csv`` module.
The rest of the byte stream goes to ``pyarrow.csv.open_csv`` with explicit column names,
all columns as strings, RFC 4180 quoting and ``newlines_in_values``. Arrow's single-threaded
streaming mode is used on purpose: it was measured faster than the threaded one for this
workload, and it numbers invalid rows, which keeps ``source_row`` exact (1-based physical CSV
record number, the three header rows included, so the first data row is 4).

Rows whose column count differs from row 3 reach ``invalid_row_handler``: short rows are
padded with empty fields and kept (finding ``short_row``), long rows whose extra fields are
empty are truncated and kept, other long rows are quarantined (finding ``long_row``).

Each Arrow batch is cleaned with vectorised ``pyarrow.compute`` and, for wide files,
unpivoted per payer/plan group (base columns + group columns, rows whose group values are all
empty dropped, payer/plan added as constants); rows with no payer value at all give one row
with null payer so item-level charges are never lost.
"""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import re
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from price_pipeline.lib.lake.schemas import CODE_STRUCT, PARSED_SCHEMA

from .header import (
    NUMERIC_FIELDS,
    PAYER_FIELDS,
    Layout,
    classify_columns,
    looks_like_column_row,
    parse_csv_header,
)
from .limits import MAX_RECORD_BYTES, InputLimit
from .streams import InnerReader
from .values import (
    EMPTY_STR,
    bool_to_numpy,
    clean_numeric,
    clean_text,
    from_numpy,
    int_to_numpy,
    is_valid_utf8,
    repeat_str,
    str_array,
)

_TOKEN = re.compile(rb'["\r\n]')
# The csv module refuses fields over 128 KiB by default (csv.Error); a record may hold up to
# MAX_RECORD_BYTES, which the scanners already enforce. (A process-wide setting: only ever raised.)
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
MAX_HEADER_BYTES = MAX_RECORD_BYTES
# Arrow parses blocks of READ_BLOCK_SIZE (small enough that a block's parse and conversion stay
# in the CPU caches: 512 KiB parsed a tall file in ~0.55x the CPU time of 4 MiB blocks), and
# the prefetch thread joins consecutive blocks into batches of about BATCH_BYTES, so the
# per-batch Python work of cleaning stays small. Wide rows are long: bigger batches keep them
# at ~10k rows.
READ_BLOCK_SIZE = 512 * 1024
BATCH_BYTES = 4 * 1024**2
WIDE_BATCH_BYTES = 8 * 1024**2


class EncodingRetry(Exception):
    """Invalid UTF-8 after the sample: parse again as cp1252."""


class RecordTooLong(Exception):
    """A record does not fit in Arrow's parse block: parse again with ``block_size`` bytes."""

    def __init__(self, block_size: int):
        super().__init__(block_size)
        self.block_size = block_size


class RecordTooLarge(InputLimit):
    """A CSV record over ``MAX_RECORD_BYTES`` (or a quoted field that never closes)."""

    def __init__(self, what: str):
        super().__init__("record_too_large", f"{what} is longer than {MAX_RECORD_BYTES // 1024**2} MiB (the record "
                         "size limit): a line without line breaks, or a quoted field that never closes")


# A record must fit in one Arrow block ("straddling object" otherwise). Blocks start at
# READ_BLOCK_SIZE or 32 header rows, whichever is more, and grow by this factor on each retry up
# to MAX_BLOCK_SIZE: the record size limit, which also bounds the reader's memory (a 1 GiB block
# for one 96 MiB line took the process over 1.4 GB). A record up to two blocks long still reaches
# the batches or the invalid-row handler, where its size is checked (check_record_sizes).
BLOCK_GROWTH = 16
MAX_BLOCK_SIZE = MAX_RECORD_BYTES
# Appended after the payload (see PrefixedReader): a record that Arrow returns on its own only
# when the payload does not end inside a quoted field. Arrow ends an unterminated quoted field
# silently at the end of the input; the sentinel makes that visible (finding unterminated_field).
END_MARK = "\x1fprice-pipeline-end-of-data\x1f"


def check_record_sizes(batch) -> None:
    """Raise :class:`RecordTooLarge` when a record of ``batch`` holds more than
    ``MAX_RECORD_BYTES`` (Arrow accepts a record up to two blocks long)."""
    if batch.nbytes <= MAX_RECORD_BYTES or not batch.num_rows:
        return
    lengths = [pc.binary_length(c) for c in batch.columns]
    if sum(pc.max(x).as_py() or 0 for x in lengths) <= MAX_RECORD_BYTES:
        return  # no row can be longer than its longest value in every column
    total = lengths[0]
    for x in lengths[1:]:
        total = pc.add(total, x)
    if (pc.max(total).as_py() or 0) > MAX_RECORD_BYTES:
        raise RecordTooLarge("a CSV record")


def end_record(ncols: int) -> bytes:
    """The sentinel record: ``ncols + 1`` fields, so it always reaches the invalid-row handler."""
    return (END_MARK + "," * ncols + "\n").encode()


def is_end_record(text: str) -> bool:
    return text.startswith(END_MARK)


def scan_records(stream, n: int, chunk: int = 1 << 20, state: dict | None = None) -> tuple[bytes, list[int], bool]:
    """Read from ``stream`` until ``n`` CSV records are complete.

    Returns ``(buffer, ends, eof)``: ``ends[i]`` is the offset just after record ``i``'s line
    terminator. Quote state is tracked, so line breaks inside quotes do not end a record.
    ``state["open_quote"]`` is set when the stream ends inside quotes. Raises
    :class:`RecordTooLarge` when the records do not end within ``MAX_HEADER_BYTES``.
    """
    buf = b""
    eof = False
    while True:
        ends: list[int] = []
        in_q = False
        pos = 0
        pending_cr = False
        for m in _TOKEN.finditer(buf):
            c = m.group()
            i = m.start()
            if c == b'"':
                in_q = not in_q
                continue
            if in_q:
                continue
            if c == b"\n" and ends and ends[-1] == i and buf[i - 1 : i] == b"\r":
                ends[-1] = i + 1  # CRLF: extend the record ending at the CR
                continue
            if c == b"\r" and i == len(buf) - 1 and not eof:
                pending_cr = True  # might be the first half of a CRLF split across reads
                break
            ends.append(i + 1)
            pos = i + 1
            if len(ends) > n:
                break
        if len(ends) > n or (len(ends) == n and not pending_cr and (eof or ends[-1] < len(buf))):
            return buf, ends[:n], eof
        if eof:
            if pos < len(buf) and buf[pos:].strip():
                ends.append(len(buf))  # last record without terminator
            if state is not None:
                state["open_quote"] = in_q
            return buf, ends[:n], eof
        if len(buf) > MAX_HEADER_BYTES:
            raise RecordTooLarge(f"CSV record {len(ends) + 1}")
        more = stream.read(max(chunk, len(buf)))  # doubling: each pass rescans the buffer
        if not more:
            eof = True
        buf += more


class PrefixedReader(InnerReader):
    """Raw reader serving ``prefix``, then the rest of ``inner``, then ``suffix`` (preceded by a
    line break when the payload does not end with one)."""

    def __init__(self, prefix: bytes, inner, suffix: bytes = b""):
        self.prefix = memoryview(prefix)
        self.inner = inner
        self.suffix = suffix
        self.last = prefix[-1:]
        self.done = False

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes (fewer only at the end), as a buffered reader gives them; in the middle of
        the payload straight from ``inner`` (a plain file's bytes are copied once, by the
        kernel), where a buffered reader on top would copy them again."""
        if n is None or n < 0:
            return self.readall()
        head = b""
        if not self.done and not len(self.prefix):
            head = self.inner.read(n)
            if head:
                self.last = head[-1:]
            if len(head) == n:
                return head
        b = bytearray(n - len(head))  # the prefix, the payload's end and the suffix
        view, got = memoryview(b), 0
        while got < len(b):
            k = self.readinto(view[got:])
            if not k:
                break
            got += k
        return head + bytes(b[:got])

    def readinto(self, b) -> int:
        if len(self.prefix):
            n = min(len(b), len(self.prefix))
            b[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        if not self.done:
            n = self.inner.readinto(b)  # straight into the caller's buffer (no extra copy)
            if n:
                self.last = bytes(b[n - 1 : n])
                return n
            self.done = True
            if self.suffix and self.last not in (b"", b"\n", b"\r"):
                self.suffix = b"\n" + self.suffix
            self.prefix = memoryview(self.suffix)
            return self.readinto(b) if len(self.prefix) else 0
        return 0


# A run of blank lines (empty or spaces/tabs only) after a line end. Such lines cost Arrow one
# invalid-row callback into Python each (one field instead of ncols): 16 MiB of b"\n" took 31 s
# to parse and 49 s / 886 MB to validate, against ~2-4 s for 16 MiB of ordinary rows. A run of
# two or more outside quotes is replaced by one BLANK_MARK record that says how many records it
# stands for, and the readers number the rows after it as if the lines were still there.
# A line end followed by a blank line (the run then extends over every space, tab, CR and LF up
# to its last line end: a search in C, where a regex repeating per line cost ~150 ns a line).
_BLANK_START = re.compile(rb"(?:\n|\r(?!\n))(?=[ \t]*[\r\n])")
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")
BLANK_MARK = "\x1fprice-pipeline-blank-lines\x1f"
_MARK_BYTES = BLANK_MARK.encode()
COLLAPSE_BLANK_RUNS = True  # (tests switch it off to compare with the lines read one by one)
_SPACE_LINE = re.compile(rb"[ \t]+(?:\r\n|\r|\n)")


class BlankRunsQuoted(Exception):
    """A collapsed blank-line run was inside a quoted field after all (the quote count said it
    was outside, but a quote in the middle of a field is text to Arrow): read again without
    collapsing."""


def blank_mark_count(text: str) -> tuple[int, int] | None:
    """``(blank records, empty ones)`` a BLANK_MARK record stands for (None for any other record).
    Arrow reads an empty line as a row of empty fields (the parser counts it in ``blank_rows``),
    a line of spaces or tabs as an invalid row of one field (skipped silently)."""
    if not text.startswith(BLANK_MARK):
        return None
    try:  # (a data record could start with the mark's text: never an exception in Arrow's callback)
        k, e = text[len(BLANK_MARK) :].split(",", 1)[0].split(":")
        return int(k), int(e)
    except ValueError:
        return None


class BlankRunReader(InnerReader):
    """``inner`` with each run of two or more blank lines outside quotes replaced by one
    ``BLANK_MARK`` record (never ``ncols`` fields, so it always reaches the invalid-row
    handler, which gets the run's length from it). ``inserted`` counts the marks written: a
    reader that saw fewer at the end had one inside a quoted field (:class:`BlankRunsQuoted`).

    Inside or outside quotes is decided by the parity of the quotes so far, at C speed (one
    ``count`` per run); Arrow opens a quoted field only at a field's start, so a stray quote in
    the middle of a field can make that parity wrong: then a run is either left alone (correct,
    only slower) or its mark lands inside a field, which the mark count shows."""

    def __init__(self, inner, ncols: int):
        self.inner = inner
        self.tail = b"," if ncols != 2 else b",,"  # 2 fields (3 when a record has 2)
        self.inserted = 0
        self.quotes = 0  # quote parity before the next byte
        self.ctx = b"\n"  # the body starts right after the header's line end
        self.drop_lf = False
        self.out = b""
        self.eof = False

    def _collapse(self, chunk: bytes) -> bytes:
        if self.drop_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]  # the LF of a CRLF whose CR ended the previous chunk's collapsed run
            self.ctx = b"\n"
        self.drop_lf = False
        if not chunk:
            return chunk
        buf = self.ctx + chunk
        self.ctx = chunk[-1:]
        parts = []
        at = 1  # (buf[0] is the previous chunk's last byte)
        q, qat = self.quotes, 1
        pos = 0
        while True:
            m = _BLANK_START.search(buf, pos)
            if m is None:
                break
            start = m.end()
            stop = _NOT_BLANK.search(buf, start)
            stop = len(buf) if stop is None else stop.start()
            end = max(buf.rfind(b"\n", start, stop), buf.rfind(b"\r", start, stop)) + 1
            pos = max(end, start)
            run = buf[start:end]
            k = run.count(b"\n") + run.count(b"\r") - run.count(b"\r\n")
            q ^= buf.count(b'"', qat, start) & 1
            qat = start
            if k < 2 or q:
                continue
            e = k - len(_SPACE_LINE.findall(run)) if b" " in run or b"\t" in run else k
            parts.append(buf[at:start])
            parts.append(b"%s%d:%d%s\n" % (_MARK_BYTES, k, e, self.tail))
            self.inserted += 1
            at = end
            if end == len(buf) and run.endswith(b"\r"):
                self.drop_lf = True
        self.quotes = q ^ (buf.count(b'"', qat) & 1)
        if not parts:
            return chunk
        parts.append(buf[at:])
        return b"".join(parts)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        out = self.out
        while len(out) < n and not self.eof:
            data = self.inner.read(max(n, 1 << 16))
            if not data:
                self.eof = True
                break
            data = self._collapse(data)
            out = out + data if out else data
        self.out = out[n:]
        return out[:n]

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def expand_rows(nums: np.ndarray, marks: list[tuple[int, int, int]]) -> np.ndarray:
    """Arrow record numbers (after blank runs were collapsed) -> the file's record numbers:
    ``marks`` holds ``(record number of the mark, blank records it stands for, ...)`` in order."""
    if not marks:
        return nums
    at = np.array([m[0] for m in marks], dtype=np.int64)
    extra = np.cumsum(np.array([m[1] - 1 for m in marks], dtype=np.int64))
    i = np.searchsorted(at, nums, side="left")  # marks before each record
    return nums + np.where(i > 0, extra[np.maximum(i - 1, 0)], 0)


class ArrowSource:
    """The Python stream handed to Arrow (``pa.PythonFile``), which calls it from its read-ahead
    threads. Leaving a read early (an error, a retry) must not leave such a call running: one
    still in Python when the interpreter exits aborts the process (PyGILState_Release). So
    :meth:`release` makes every later call an end of file and waits until none is in flight."""

    def __init__(self, raw):
        self.raw = raw
        self.calls = 0
        self.active = 0
        self.released = False
        self.closed = False
        self.lock = threading.Lock()

    def read(self, n: int = -1) -> bytes:
        with self.lock:
            self.calls += 1
            self.active += 1
        try:
            return b"" if self.released else self.raw.read(n)
        finally:
            with self.lock:
                self.active -= 1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def release(self, quiet: float = 0.01, limit: float = 1.0) -> None:
        """Stop reading, close the stream, and wait until Arrow's threads are done calling in
        (no call active and none new for ``quiet`` seconds; at most ``limit`` seconds)."""
        self.released = True
        deadline = time.monotonic() + limit
        seen = -1
        while time.monotonic() < deadline:
            if self.active == 0 and self.calls == seen:
                break
            seen = self.calls
            time.sleep(quiet)
        self.raw.close()


def arrow_input(raw) -> tuple[pa.NativeFile, ArrowSource]:
    """``(file for Arrow, source to release)`` over the binary stream ``raw``."""
    src = ArrowSource(raw)
    return pa.PythonFile(src, mode="r"), src


def _null_str(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


class BatchBuilder:
    """Turns batches of raw string columns into PARSED_SCHEMA tables (vectorised)."""

    def __init__(self, layout: Layout, fc, sha: str | None):
        self.layout = layout
        self.fc = fc
        self.sha = sha

    # -- helpers -------------------------------------------------------------------------
    def _numeric(self, arr, rows: np.ndarray, colname_of) -> pa.Array:
        vals, bad, nines = clean_numeric(arr)
        fc = self.fc
        if bad is not None:
            idx = int_to_numpy(bad)
            keep = idx[: fc.room]
            raw = arr.take(from_numpy(keep)).to_pylist() if len(keep) else []
            for j, v in zip(keep, raw, strict=True):
                fc.add("non_numeric_amount", "warning", f"not a number: {v!r}", row=int(rows[j]),
                       column=colname_of(j))
            fc.count_only(len(idx) - len(keep))
        if nines is not None:
            idx = int_to_numpy(nines)
            keep = idx[: fc.room]
            for j in keep:
                fc.add("nine_nines_placeholder", "info", "999999999-style placeholder amount kept as published",
                       row=int(rows[j]), column=colname_of(j))
            fc.count_only(len(idx) - len(keep))
        return vals

    def _codes(self, cols, n: int) -> pa.Array:
        pairs = self.layout.codes
        if not pairs:
            return pa.nulls(n, pa.list_(CODE_STRUCT))
        code_arrs, type_arrs, valid = [], [], []
        for ci, ti in pairs:
            c = clean_text(cols(ci)) if ci is not None else _null_str(n)
            t = clean_text(cols(ti)) if ti is not None else _null_str(n)
            code_arrs.append(c)
            type_arrs.append(t)
            valid.append(bool_to_numpy(pc.or_(pc.is_valid(c), pc.is_valid(t))))
        k = len(pairs)
        vm = np.stack(valid, axis=1)  # n x k
        counts = vm.sum(axis=1)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        ri, ki = np.nonzero(vm)  # row-major: codes of a row stay in column order
        flat = from_numpy(ki.astype(np.int64) * n + ri)
        codes = pa.concat_arrays(code_arrs).take(flat) if k > 1 else code_arrs[0].take(flat)
        types = pa.concat_arrays(type_arrs).take(flat) if k > 1 else type_arrs[0].take(flat)
        structs = pa.StructArray.from_arrays([codes, types], fields=list(CODE_STRUCT))
        mask = from_numpy(counts == 0)
        return pa.ListArray.from_arrays(from_numpy(offsets), structs, mask=mask)

    # -- main ----------------------------------------------------------------------------
    def build(self, colget, n: int, rows: np.ndarray) -> pa.Table:
        """``colget(i)`` returns column ``i`` of the batch as a string array; ``rows`` the source rows."""
        lay = self.layout
        names = lay.raw_names
        out: dict[str, pa.Array] = {}
        for fld, ci in lay.base.items():
            a = colget(ci)
            if fld in NUMERIC_FIELDS:
                out[fld] = self._numeric(a, rows, lambda j, _n=names[ci]: _n)
            else:
                out[fld] = clean_text(a)
        out["codes"] = self._codes(colget, n)
        if lay.fmt == "csv_wide":
            return self._unpivot(colget, n, rows, out)
        return self._assemble(out, n, from_numpy(rows.astype(np.int64, copy=False)))

    def _assemble(self, out: dict, n: int, source_row: pa.Array) -> pa.Table:
        arrays = []
        for f in PARSED_SCHEMA:
            if f.name == "file_sha256":
                arrays.append(repeat_str(self.sha, n))
            elif f.name == "source_row":
                arrays.append(source_row)
            elif f.name in out:
                a = out[f.name]
                arrays.append(a if a.type == f.type else a.cast(f.type))
            else:
                arrays.append(pa.nulls(n, f.type))
        return pa.Table.from_arrays(arrays, schema=PARSED_SCHEMA)

    def _unpivot(self, colget, n: int, rows: np.ndarray, base: dict) -> pa.Table:
        """One row per (row, group) with any value, in source order (a row's groups in header
        order); a row without any payer value gives one row with null payer.

        Each payer field's group columns are concatenated into one long column (group-major,
        memcpy only), so trimming/validity run once per field, not once per column; one take
        per field then picks the rows in source order. Source order (not group by group) puts
        a row's repeated item columns next to each other: the Parquet writer's dictionary
        indices then run-length encode, which halved the file and cut ~20% of the write time.
        """
        groups = self.layout.groups
        G = len(groups)
        long: dict[str, pa.Array] = {}
        present = np.zeros(G * n, dtype=bool)
        for fld in PAYER_FIELDS:
            if not any(fld in g.cols for g in groups):
                continue
            parts = [colget(g.cols[fld]) if fld in g.cols else _null_str(n) for g in groups]
            parts = [p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p for p in parts]
            t = clean_text(pa.concat_arrays(parts))
            long[fld] = t
            present |= bool_to_numpy(pc.is_valid(t))
        # (row, group) pairs with a value, row-major; rows without any value get group -1.
        grid = present.reshape(G, n)  # G == 0: no pairs, every row is payer-less
        row_idx, gid = np.nonzero(grid.T)
        none_idx = np.flatnonzero(~grid.any(axis=0))
        if len(none_idx):
            row_idx = np.concatenate([row_idx, none_idx])
            gid = np.concatenate([gid, np.full(len(none_idx), -1, dtype=gid.dtype)])
            order = np.argsort(row_idx, kind="stable")
            row_idx, gid = row_idx[order], gid[order]
        m = len(row_idx)
        no_group = gid < 0
        take = from_numpy(row_idx.astype(np.int64, copy=False))
        out = {k: v.take(take) for k, v in base.items()}
        src = rows[row_idx]
        gtake = from_numpy(np.where(no_group, 0, gid).astype(np.int32), mask=no_group) if G else None
        for name, attr in (("payer_name", "payer"), ("plan_name", "plan")):
            if G:
                out[name] = str_array([getattr(g, attr) for g in groups]).take(gtake)
            else:
                out[name] = _null_str(m)
        sel = from_numpy(np.where(no_group, 0, gid * n + row_idx).astype(np.int64), mask=no_group)
        for fld in PAYER_FIELDS:
            t = long.get(fld)
            col = t.take(sel) if t is not None else _null_str(m)
            if fld in NUMERIC_FIELDS:
                if col.null_count == m:
                    col = pa.nulls(m, pa.float64())
                else:
                    def colname(j, _f=fld):
                        g = groups[gid[j]] if gid[j] >= 0 else None
                        return g.headers.get(_f) if g else _f
                    col = self._numeric(col, src, colname)
            out[fld] = col
        return self._assemble(out, m, from_numpy(src.astype(np.int64, copy=False)))


def read_csv(stream, *, encoding: str, plain_path: str | None, body_offset_base: int, sink, fc, sha,
             header_out: dict, block_size: int | None = None, collapse_blanks: bool = True) -> dict:
    """Parse a CSV MRF from a UTF-8 byte ``stream`` into ``sink``.

    ``plain_path``/``body_offset_base``: when the payload is an uncompressed UTF-8 file, Arrow
    reads the body straight from the file (native I/O, no Python in the loop); the offset of
    the body is ``body_offset_base`` (BOM length) plus the header bytes.
    ``block_size``: Arrow's parse block (default: from the column header row's length).
    ``collapse_blanks``: runs of blank lines reach Arrow as one record each (:class:`BlankRunReader`).
    Returns ``{"format": ..., "ok": bool}``; fills ``header_out``. Raises ``EncodingRetry``,
    ``RecordTooLong`` or ``BlankRunsQuoted`` when the body must be read again (see ``_parse_payload``).
    """
    scan: dict = {}
    buf, ends, eof = scan_records(stream, 3, state=scan)
    if not ends:
        fc.add("empty_file", "error", "file has no content")
        return {"format": None, "ok": False}
    if scan.get("open_quote"):
        fc.add("unterminated_field", "error", "the file ends inside a quoted field of rows 1-3 (a quote never closes)")
        return {"format": None, "ok": False}
    head_text = buf[: ends[-1]].decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(head_text, newline="")))
    col_row = next((k for k, r in enumerate(rows[:3]) if looks_like_column_row(r)), None)
    if col_row is None:
        fc.add("not_an_mrf", "error", "no CMS column header row (with 'description') in rows 1-3")
        return {"format": None, "ok": False}
    if col_row >= len(ends):
        # a stray quote inside a field of rows 1-3: the record scanner (which toggles on every quote)
        # and the csv module (a quote opens only at a field's start) split the rows differently
        fc.add("not_an_mrf", "error", "rows 1-3 cannot be delimited: a quote in them is not a field's quote")
        return {"format": None, "ok": False}
    if col_row != 2:
        fc.add("missing_header_rows", "warning",
               f"column headers found on row {col_row + 1}, expected row 3 (rows 1-2 hold the file header)")
    if col_row >= 1:
        header_out.update(parse_csv_header(rows[0], rows[1] if col_row == 2 else [], fc))
    layout = classify_columns(rows[col_row], fc)
    first_row = col_row + 2  # 1-based record number of the first data row
    body_start = ends[col_row]
    # Stream for Arrow, positioned at the first data record, the end record after the payload.
    if plain_path is not None:
        raw = open(plain_path, "rb", buffering=0)  # noqa: SIM115 - closed by the reader below
        raw.seek(body_offset_base + body_start)
        inner, prefix = raw, b""
    else:
        inner, prefix = stream, buf[body_start:]
    # Arrow reads blocks of block_size: unbuffered, each block is one read of the payload.
    body_raw = PrefixedReader(prefix, inner, end_record(layout.ncols))
    # (a one-column layout reads a blank line as a row: nothing to collapse)
    collapse = collapse_blanks and COLLAPSE_BLANK_RUNS and layout.ncols > 1
    blanks = BlankRunReader(body_raw, layout.ncols) if collapse else None
    body, source = arrow_input(blanks or body_raw)
    if block_size is None:
        block_size = max(READ_BLOCK_SIZE, 32 * (ends[col_row] - (ends[col_row - 1] if col_row else 0)))
    block_size = min(block_size, MAX_BLOCK_SIZE)
    try:
        complete = _read_body(body, layout, first_row, sink, fc, sha, block_size,
                              utf8_source=encoding in ("utf-8", "utf-8-sig"), blanks=blanks)
    finally:
        source.release()
        if plain_path is not None:
            raw.close()
    return {"format": layout.fmt, "ok": complete}


def _uncollapsed(marks: list[tuple[int, int, int]], classified: int) -> int:
    """Records the parser would have counted besides ``returned + skipped.count`` with the blank
    lines read one by one: the other lines of each classified mark, and the empty lines (rows
    to Arrow) of the marks after the last batch."""
    return sum(k - 1 for _n, k, _e in marks[:classified]) + sum(e for _n, _k, e in marks[classified:])


# Invalid rows waiting for the main thread: past this many, Arrow's thread hands them over without
# waiting for a batch (a body of nothing but short rows never yields one, and held its rows).
PENDING_INVALID_ROWS = 65_536


class _InvalidRows:
    """Invalid rows reported by Arrow's reader thread, taken in order by the main thread.

    ``total`` counts every row reported; ``rows`` holds only those not taken yet, so memory
    stays bounded however many there are. ``signal`` (set by :func:`_prefetch`) hands the rows
    over when :data:`PENDING_INVALID_ROWS` wait."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.total = 0
        self.signalled = 0
        self.signal = None
        self.drain = None  # before the prefetch thread: take the rows now (see _read_body)

    def add(self, entry: tuple) -> None:
        self.rows.append(entry)
        self.total += 1
        if self.total - self.signalled >= PENDING_INVALID_ROWS:
            self.signalled = self.total
            if self.signal is not None:
                self.signal()
            elif self.drain is not None:
                self.drain()

    def take(self, upto: int, taken: int) -> list[tuple]:
        """The rows numbered ``taken + 1 .. upto`` (counts of reported rows), removed."""
        k = upto - taken
        out = self.rows[:k]
        del self.rows[:k]
        return out


class SkippedRecords:
    """Arrow record numbers not returned as rows, kept as runs of consecutive numbers (a flood of
    short rows is one run, not one Python int per line). Numbers must be added in ascending order,
    as Arrow's single-threaded reader reports them. The validator's body pass shares it."""

    COMPACT_AFTER = 4096  # folded runs kept before the lists are trimmed

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.count = 0
        # Runs before every row mapped so far are folded into one offset, so that mapping batch
        # after batch costs the runs still open, not every run since the start of the file.
        self._first_open = 0
        self._folded = 0

    def add(self, num: int) -> None:
        if len(self.starts) > self._first_open and self.starts[-1] + self.lengths[-1] == num:
            self.lengths[-1] += 1
        else:
            self.starts.append(num)
            self.lengths.append(1)
        self.count += 1

    def map(self, r: np.ndarray) -> np.ndarray:
        """Arrow record numbers of returned rows ``r`` (1-based, in return order). Successive calls
        must map ascending rows (each batch after the one before), as both readers do."""
        k = self._first_open
        if k == len(self.starts):
            return r + self._folded if self._folded else r
        starts = np.array(self.starts[k:], dtype=np.int64)
        lengths = np.array(self.lengths[k:], dtype=np.int64)
        before = np.concatenate(([self._folded], self._folded + np.cumsum(lengths)))
        valid_before = starts - 1 - before[:-1]  # returned rows before each run
        mapped = r + before[np.searchsorted(valid_before, r, side="left")]
        if len(r):
            # every later row comes after r[-1]: runs with at most r[-1] rows before them are done
            done = int(np.searchsorted(valid_before, r[-1], side="right"))
            self._folded = int(before[done])
            self._first_open = k + done
            if self._first_open > self.COMPACT_AFTER and self._first_open * 2 > len(self.starts):
                del self.starts[:self._first_open], self.lengths[:self._first_open]
                self._first_open = 0
        return mapped


def _prefetch(reader, invalid: _InvalidRows, batch_bytes: int):
    """Yield ``("batch", batch, n_invalid)`` from ``reader``, reading the next batch in a thread
    while the caller builds the current one (Arrow's CSV parsing releases the GIL).

    Arrow's small blocks are joined into batches of about ``batch_bytes`` in that thread.
    ``n_invalid``: invalid rows reported so far (all of them precede the batch's next rows).
    ``("invalid", None, n_invalid)``: many invalid rows wait and no batch came (see
    :class:`_InvalidRows`). Ends with ``("error", exc, n)`` on any error of the reader (after the rows read before it).
    """
    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    invalid.signal = lambda: q.put(("invalid", None, invalid.total))

    def joined(parts: list) -> pa.RecordBatch:
        if len(parts) == 1:
            return parts[0]
        return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]

    def run():
        parts: list = []
        size = 0
        try:
            while not stop.is_set():
                try:
                    b = reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as e:
                    # Arrow's parse errors, and whatever the stream under it raised (a damaged
                    # archive, a limit): handed to the caller, never taken for the end of the file.
                    if parts:
                        q.put(("batch", joined(parts), invalid.total))
                        parts = []
                    q.put(("error", e, invalid.total))
                    return
                parts.append(b)
                size += b.nbytes
                if size >= batch_bytes:
                    q.put(("batch", joined(parts), invalid.total))
                    parts, size = [], 0
            if parts and not stop.is_set():
                q.put(("batch", joined(parts), invalid.total))
        finally:
            q.put(None)

    t = threading.Thread(target=run, name="csv-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            yield item
            if item[0] == "error":
                return
    finally:
        stop.set()
        while t.is_alive():  # unblock a pending put, then let the thread end
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        t.join()


def _raise_if_retryable(error: Exception, block_size: int, utf8_source: bool) -> None:
    """Raise ``EncodingRetry`` / ``RecordTooLong`` when reading again fixes Arrow's ``error``,
    ``RecordTooLarge`` for a record over the limit, and ``error`` itself when it is not Arrow's
    (e.g. a damaged archive under the stream: the caller turns it into a finding).

    Besides Arrow's own UTF-8 errors: a row with the wrong column count whose bytes are not
    UTF-8 never reaches ``invalid_row_handler`` (pyarrow fails to decode its text first), so
    Arrow stops with that row in the message, decoded with replacement characters.
    """
    if not isinstance(error, pa.ArrowInvalid):
        raise error
    msg = str(error)
    if utf8_source and ("UTF8" in msg or "UTF-8" in msg or "\ufffd" in msg):
        raise EncodingRetry(msg) from error
    if "straddl" in msg:
        if block_size < MAX_BLOCK_SIZE:
            raise RecordTooLong(min(block_size * BLOCK_GROWTH, MAX_BLOCK_SIZE)) from error
        raise RecordTooLarge("a CSV record") from error


def _read_body(body, layout: Layout, first_row: int, sink, fc, sha, block_size: int, utf8_source: bool,
               blanks: BlankRunReader | None = None) -> bool:
    """Stream the data records into ``sink``; True when the whole body was read (its last record
    not cut off inside a quoted field, Arrow never stopped at an error).

    ``blanks``: the reader that collapsed blank-line runs into marks; their records are counted
    back into every row number, and a mark that did not arrive as a record of its own (it was
    inside a quoted field) raises :class:`BlankRunsQuoted`."""
    ncols = layout.ncols
    names = [f"c{i}" for i in range(ncols)]
    used = sorted(set(layout.base.values()) | {i for p in layout.codes for i in p if i is not None}
                  | {i for g in layout.groups for i in g.cols.values()})
    builder = BatchBuilder(layout, fc, sha)
    skipped = SkippedRecords()  # Arrow record numbers (1-based within the body) not returned
    recovered: list[tuple[int, list[str]]] = []
    # (Arrow record number, blank records, empty ones) of each BLANK_MARK record, filled by Arrow's
    # thread: its invalid rows reach classify() only with a later batch, and a body of nothing
    # but blank runs has none. classify() counts the marks it has seen (they are in ``skipped``).
    marks: list[tuple[int, int, int]] = []
    marks_classified = [0]

    invalid = _InvalidRows()  # added by Arrow's reader thread, classified by the main thread
    end_seen: list[bool] = []
    too_large: list[bool] = []

    def on_invalid(row) -> str:
        if is_end_record(row.text):
            end_seen.append(True)
            return "skip"
        mark = blank_mark_count(row.text)
        if mark is not None:
            marks.append((row.number, *mark))
            invalid.add((row.number, None, 0, 0))  # (numbered in order with the others)
        elif len(row.text) > MAX_RECORD_BYTES:
            too_large.append(True)  # (an exception here would be swallowed by pyarrow)
        else:
            invalid.add((row.number, row.text, row.actual_columns, row.expected_columns))
        return "skip"

    def classify(num, text, actual, expected) -> None:
        skipped.add(num)
        if text is None:  # a BLANK_MARK record (see on_invalid)
            marks_classified[0] += 1
            return
        src_row = None if num is None else int(expand_rows(np.array([num]), marks)[0]) + first_row - 1
        try:
            fields = next(csv.reader(io.StringIO(text, newline="")), [])
        except csv.Error:
            fields = None
        if fields is not None and actual < expected:
            if not any(x.strip() for x in fields):
                return
            fc.add("short_row", "warning", f"{actual} fields instead of {expected}; padded with empty values",
                   row=src_row)
            recovered.append((src_row, fields + [""] * (ncols - len(fields))))
        elif fields is not None and len(fields) >= ncols and not any(x.strip() for x in fields[ncols:]):
            fc.add("long_row", "info", f"{actual} fields instead of {ncols}; extra fields are empty", row=src_row)
            recovered.append((src_row, fields[:ncols]))
        else:
            fc.add("long_row", "error", f"{actual} fields instead of {expected}; row quarantined", row=src_row)
            sink.quarantine(src_row, text, f"{actual} fields, expected {expected}")

    read_opts = pacsv.ReadOptions(use_threads=False, block_size=block_size, column_names=names)
    parse_opts = pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                    newlines_in_values=True, ignore_empty_lines=False,
                                    invalid_row_handler=on_invalid)
    # check_utf8=False: Arrow's per-value UTF-8 check cost ~40% of its parse time; each batch
    # column is checked here instead (all-ASCII buffers, the usual case, in one numpy pass).
    conv_opts = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                     include_columns=[names[i] for i in used],
                                     strings_can_be_null=False, quoted_strings_can_be_null=False,
                                     check_utf8=False)
    returned = 0
    blank_rows = 0
    done_invalid = 0

    def drain_invalid() -> None:
        # Arrow reads on in open_csv until it has a first batch: a body of nothing but short
        # rows is read whole there, on this thread, before any prefetch thread exists.
        nonlocal done_invalid
        for entry in invalid.take(invalid.total, done_invalid):
            classify(*entry)
        done_invalid = invalid.total
        emit_recovered()

    invalid.drain = drain_invalid

    def emit_recovered():
        nonlocal blank_rows
        if not recovered:
            return
        items = list(recovered)
        recovered.clear()
        cols = list(zip(*[f for _, f in items], strict=True))
        src = np.array([r if r is not None else -1 for r, _ in items], dtype=np.int64)
        t = builder.build(lambda i: str_array(list(cols[i])), len(items), src)
        sink.write(t)

    try:
        reader = pacsv.open_csv(body, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)
    except pa.ArrowInvalid as e:
        _raise_if_retryable(e, block_size, utf8_source)
        fc.add("csv_parse_error", "error", f"CSV body unreadable: {e}")
        return False
    batch_bytes = BATCH_BYTES if layout.fmt == "csv_tall" else WIDE_BATCH_BYTES
    batches = _prefetch(reader, invalid, max(batch_bytes, block_size))
    try:
        for kind, batch, n_invalid in batches:
            if too_large:
                raise RecordTooLarge("a CSV record")
            for entry in invalid.take(n_invalid, done_invalid):
                classify(*entry)
            done_invalid = n_invalid
            if kind == "invalid":
                emit_recovered()
                continue
            if kind == "error":
                _raise_if_retryable(batch, block_size, utf8_source)
                fc.add("csv_parse_error", "error", f"CSV parse stopped: {batch}", row=returned + first_row)
                return False
            n = batch.num_rows
            if n == 0:
                continue
            check_record_sizes(batch)
            for column in batch.columns:
                if not is_valid_utf8(column):
                    raise EncodingRetry(f"invalid UTF-8 in the rows after record {returned + first_row - 1}")
            # Map returned row r (0-based) to the Arrow record number, skipping invalid rows.
            r = np.arange(returned + 1, returned + n + 1, dtype=np.int64)
            r = skipped.map(r)
            src_rows = expand_rows(r, marks) + (first_row - 1)
            returned += n
            colmap = {name: batch.column(j) for j, name in enumerate(batch.schema.names)}
            # Blank lines come back as all-empty rows: drop them (they still count as records).
            desc_i = layout.base.get("description")
            if desc_i is not None:
                desc = colmap[names[desc_i]]
                maybe_blank = pc.equal(desc, EMPTY_STR)
                if pc.any(maybe_blank).as_py():
                    allempty = maybe_blank
                    for a in colmap.values():
                        allempty = pc.and_(allempty, pc.equal(pc.utf8_trim_whitespace(a), EMPTY_STR))
                    if pc.any(allempty).as_py():
                        keep = pc.invert(allempty)
                        blank_rows += n - pc.sum(keep.cast(pa.int64())).as_py()
                        colmap = {k: v.filter(keep) for k, v in colmap.items()}
                        src_rows = src_rows[bool_to_numpy(keep)]
                        n = len(src_rows)
            if n:
                sink.write(builder.build(lambda i, _c=colmap: _c[names[i]], n, src_rows))
            emit_recovered()
        # Invalid rows after the last batch: Arrow returns no batch at all for a body without one
        # well-formed row, and those rows still need their findings (short rows are kept).
        for entry in invalid.take(invalid.total, done_invalid):
            classify(*entry)
        done_invalid = invalid.total
        emit_recovered()
        if blanks is not None and blanks.inserted != len(marks):
            raise BlankRunsQuoted()
        if too_large:
            raise RecordTooLarge("a CSV record")
        blank_rows += sum(e for _n, _k, e in marks)  # empty lines read one by one were rows
        if blank_rows:
            fc.add("blank_rows", "info", f"{blank_rows} blank row(s) skipped")
        if not end_seen:
            fc.add("unterminated_field", "error", "the file ends inside a quoted field (a quote never closes): the last "
                   "record is cut off", row=returned + skipped.count + _uncollapsed(marks, marks_classified[0])
                   + first_row - 1)
            return False
        return True
    except RecordTooLarge as e:
        if blanks is not None and blanks.inserted > len(marks):
            raise BlankRunsQuoted() from e  # a mark inside a field may have made it too large
        raise
    finally:
        # Stop the prefetch thread and Arrow's reader (the caller then releases the stream).
        batches.close()
        reader.close()
