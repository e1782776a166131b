"""Parallel JSON charges reader: byte ranges of complete items, parsed by Arrow in threads.

The ``standard_charge_information`` array is cut into chunks of complete items (about
``chunk_bytes`` each) by the main thread; two worker threads turn each chunk into
newline-delimited JSON (the commas between items become line breaks), parse it with
``pyarrow.json`` against an explicit nested schema (C++, GIL released) and flatten it with
:func:`json_reader.flatten_items`, the same function the sequential path uses, so both give
identical rows. The main thread writes the tables to Parquet in file order, so memory stays
bounded by the in-flight chunks (``max_inflight``).

Finding the cuts must respect strings and nesting. Cheap and exact:

* ``\\\\`` and ``\\"`` are removed first (escapes are read left to right, so this is exact),
  then ``bytes.translate`` keeps only ``" { } [ ]`` (C speed); string contents are removed
  with one regex, leaving the structural brackets, whose running depth (numpy) gives the
  item ends: a ``}`` closing back to the array level.
* A cut candidate is the last ``}`` , ``{"<first key of item 0>":`` in the buffer (found by
  regex): in valid JSON ``{"key":`` with a bare quote can only be outside strings. The
  candidate is accepted only when the depth check above says it closes an item of this
  array; otherwise the exact numpy scanner (positions of every quote and bracket) is used.

Workers use the same candidate pattern to place the line breaks and check that Arrow read
exactly the expected number of items; any mismatch or Arrow error (a string where a number
is expected, duplicate keys, ...) falls back to the exact scanner, then to the sequential
ijson + :class:`JsonFlattener` path for that chunk (in the main thread, in order), which
records findings exactly as for a sequential parse.

Anything the cutter cannot handle (top level not an object, array not found in the first
64 MiB, an item larger than ``MAX_ITEM_BYTES``, unbalanced input) raises :class:`Restart`:
the caller discards what was written and parses sequentially.
"""

from __future__ import annotations

import io
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import ijson
import numpy as np
import pyarrow as pa
import pyarrow.json as pajson

from .json_items import ITEM_FULL_T, add_nines, flatten_items
from .json_top import MAX_TAIL_BYTES
from .limits import check_depth, guard_of

CHUNK_BYTES = 16 * 1024**2
READ_BYTES = 4 * 1024**2
MAX_HEAD_BYTES = 64 * 1024**2
MAX_ITEM_BYTES = 256 * 1024**2
ARRAY_KEY = b'"standard_charge_information"'
_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in ITEM_FULL_T])
_KEEP = b'"{}[]'
_DELETE = bytes(c for c in range(256) if c not in _KEEP)
_STRINGS = re.compile(rb'"[^"]*"')
_ESCAPE = re.compile(rb"\\.", re.S)
_WS = b" \t\r\n"
_FIRST_KEY = re.compile(rb'\{[ \t\r\n]*"((?:[^"\\]|\\.){1,200})"[ \t\r\n]*:')
_LEAD_WS = re.compile(rb"[ \t\r\n]*")
_AFTER_KEY = re.compile(rb'[ \t\r\n]*:[ \t\r\n]*\[')
# Exact scanner: 1 = quote, 2 = opening bracket, 3 = closing bracket.
_LUT = np.zeros(256, dtype=np.uint8)
_LUT[ord('"')] = 1
_LUT[ord("{")] = _LUT[ord("[")] = 2
_LUT[ord("}")] = _LUT[ord("]")] = 3
_DEPTH = np.zeros(256, dtype=np.int8)
_DEPTH[ord("{")] = _DEPTH[ord("[")] = 1
_DEPTH[ord("}")] = _DEPTH[ord("]")] = -1


class Restart(Exception):
    """The parallel reader cannot handle this payload: parse it sequentially instead."""


def _neutral(buf: bytes, keep_len: bool) -> bytes:
    """Remove (or blank, keeping positions) every escape sequence's backslash and next byte.

    Escapes are read left to right, so ``\\.`` matches exactly the JSON escapes: afterwards
    every quote left is a real string delimiter.
    """
    if b"\\" not in buf:
        return buf
    return _ESCAPE.sub(b"__" if keep_len else b"", buf)


def exact_scan(buf: bytes, depth0: int = 0, in_string: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Positions and depths after each structural bracket of ``buf`` (outside strings).

    ``depth0``: depth at the start; the start must be outside a string unless ``in_string``.
    """
    b = np.frombuffer(_neutral(buf, True), dtype=np.uint8)
    m = _LUT[b]
    idx = np.flatnonzero(m)
    codes = m[idx]
    par = np.cumsum(codes == 1, dtype=np.int64) & 1
    if in_string:
        par ^= 1
    st = (codes >= 2) & (par == 0)
    pos = idx[st]
    depth = depth0 + np.cumsum(np.where(codes[st] == 2, 1, -1), dtype=np.int64)
    return pos, depth


def _item_ends(buf: bytes) -> tuple[np.ndarray, int]:
    """Ends (offset after the ``}``) of the items of an array starting at ``buf[0]`` (inside the
    array, between items) and the offset of the array's closing ``]`` (-1 if not in ``buf``)."""
    pos, depth = exact_scan(buf)
    if len(depth):
        check_depth(2 + int(depth.max()))
    closing = np.flatnonzero(depth < 0)
    close = int(pos[closing[0]]) if len(closing) else -1
    ends = pos[(depth == 0) & (np.frombuffer(buf, np.uint8)[pos] != ord("["))
               & (np.frombuffer(buf, np.uint8)[pos] != ord("{"))] + 1
    if close >= 0:
        ends = ends[ends <= close]
    return ends, close


def _closed_items(buf: bytes) -> int:
    """Number of items when ``buf`` (starting between items of the array) ends at an item end,
    never leaving the array and outside strings; 0 otherwise. The cheap check (no positions)."""
    sp = _neutral(buf, False).translate(None, _DELETE)
    if sp.count(b'"') & 1:
        return 0
    # Removing two adjacent quotes never changes which brackets are inside strings (the parity of
    # the quotes before every other byte is unchanged); most strings hold no bracket, so this
    # C-speed replace leaves few quotes for the regex.
    st = sp.replace(b'""', b"")
    if b'"' in st:
        st = _STRINGS.sub(b"", st)
    d = np.cumsum(_DEPTH[np.frombuffer(st, dtype=np.uint8)], dtype=np.int64)
    if not len(d) or int(d[-1]) != 0 or int(d.min()) < 0:
        return 0
    check_depth(2 + int(d.max()))  # items of the charges array (depth 2): see read_charges_parallel
    return int(np.count_nonzero(d == 0))


def _candidate_re(key: bytes) -> re.Pattern:
    return re.compile(rb"\}([ \t\r\n]*),([ \t\r\n]*)\{([ \t\r\n]*\"" + re.escape(key) + rb'")')


def _to_ndjson(chunk: bytes, cand: re.Pattern | None) -> tuple[bytes, int]:
    """Item separators (``},{"key"``) become line breaks; returns the text and their count."""
    if cand is None:
        return chunk, 0
    return cand.subn(rb"}\n{\3", chunk)


def read_items(nd: bytes, expected: int) -> pa.StructArray | None:
    """One item per line -> ``ITEM_FULL_T`` items; None unless Arrow read exactly ``expected``."""
    # One item per line (no line break inside items) lets Arrow use its faster line chunker.
    one_per_line = nd.count(b"\n") == expected - 1 and b"\r" not in nd
    try:
        t = pajson.read_json(
            pa.BufferReader(nd),
            read_options=pajson.ReadOptions(use_threads=False, block_size=len(nd) + 1),
            parse_options=pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore",
                                              newlines_in_values=not one_per_line))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowCapacityError):
        return None
    if t.num_rows != expected:
        return None
    return pa.StructArray.from_arrays([t.column(f.name).combine_chunks() for f in ITEM_FULL_T],
                                      fields=list(ITEM_FULL_T))


def chunk_items(chunk: bytes, cand: re.Pattern | None) -> pa.StructArray | None:
    """The items of a chunk (``ITEM_FULL_T``), or None when Arrow cannot read them exactly."""
    nd, nsep = _to_ndjson(chunk, cand)
    items = read_items(nd, nsep + 1) if nsep or cand is None else None
    if items is None:
        ends, _ = _item_ends(chunk)
        if not len(ends):
            return None
        arr = bytearray(chunk)
        for e in ends[:-1].tolist():
            p = e
            while arr[p] in _WS:
                p += 1
            if arr[p] != ord(","):
                return None
            arr[p] = ord("\n")
        items = read_items(bytes(arr), len(ends))
    return items


def process_chunk(chunk: bytes, base: int, cand: re.Pattern | None, sha: str | None):
    """Worker: ``("ok", n_items, table, nines)`` or ``("raw", chunk)`` for the sequential path."""
    items = chunk_items(chunk, cand)
    if items is None:
        return ("raw", chunk)
    n = len(items)
    res = flatten_items(items, np.arange(base, base + n, dtype=np.int64), sha)
    if res is None:
        return ("raw", chunk)
    return ("ok", n, res[0], res[1])


class _Stream:
    def __init__(self, f):
        self.f = f
        self.eof = False
        self.total = 0

    def read(self, n: int) -> bytes:
        b = self.f.read(n) if not self.eof else b""
        if not b:
            self.eof = True
        self.total += len(b)
        return b


def locate_array(f: _Stream) -> tuple[bytes, int]:
    """Read the head and return ``(buffer, offset just after the '[' of the charges array)``."""
    buf = b""
    k = 0
    while True:
        k = buf.find(ARRAY_KEY, k)
        while k >= 0:
            m = _AFTER_KEY.match(buf, k + len(ARRAY_KEY))
            if m is None and len(buf) - k < 4096 and not f.eof:
                break  # need more bytes to decide
            if m is not None:
                head = buf[:k]
                lead = len(head) - len(head.lstrip(_WS))
                if head[lead : lead + 1] != b"{":
                    raise Restart("top level is not an object")
                _, depth = exact_scan(head)
                if _outside_string(head) and len(depth) and int(depth[-1]) == 1 and int(depth.min()) >= 1:
                    return buf, m.end()
            k = buf.find(ARRAY_KEY, k + 1)
        if k < 0:
            k = max(0, len(buf) - len(ARRAY_KEY))
        if f.eof or len(buf) > MAX_HEAD_BYTES:
            raise Restart("charges array not found")
        buf += f.read(READ_BYTES)


def _outside_string(buf: bytes) -> bool:
    return not (_neutral(buf, False).count(b'"') & 1)


def read_charges_parallel(open_stream, *, sink=None, fc=None, sha=None, flat=None, chunk_bytes: int = CHUNK_BYTES,
                          workers: int = 2, max_inflight: int = 2, min_bytes: int = 0, process=None,
                          consume=None, verify_cuts: bool = True) -> tuple[int, bytes | None, int, Exception | None]:
    """Stream the charges array of a JSON MRF into ``sink``.

    Hook for other consumers of the chunks (the conformance validator): ``process(chunk, base,
    cand)`` runs in the worker threads instead of :func:`process_chunk` and ``consume(result,
    base)`` in the main thread, in file order, instead of writing to ``sink``; it returns
    ``(n_items, error)`` (``error`` not None stops the reading, as a JSON error does).
    ``verify_cuts=False`` skips the main thread's bracket-depth check of each candidate cut (the
    item count estimate is then meaningless): only for a ``process`` that itself proves each
    chunk is a comma-separated sequence of complete items (e.g. Arrow read every line exactly)
    and a ``consume`` that treats anything else as an error.

    Returns ``(n_items, tail, total_bytes, error)``: ``tail`` is the text after the array's
    ``]`` (None when over ``MAX_TAIL_BYTES``), ``error`` a JSON error met by the sequential
    fallback of a chunk (parsing stopped there, as the sequential reader does).
    Raises :class:`Restart` when the layout is not handled (nothing useful written).
    """
    with open_stream() as raw:
        f = _Stream(raw)
        buf, start = locate_array(f)
        buf = buf[start:]
        guard = guard_of(raw)
        if guard is not None and verify_cuts:
            # From here every byte passes _closed_items or _item_ends (bracket depth, strings
            # skipped) before a parser sees it, and both check the depth limit: the stream's guard
            # need not compute it a second time (it still checks numbers, strings, VT/FF).
            guard.check_depth = False
        pool = ThreadPoolExecutor(max_workers=workers) if workers > 0 else None
        inflight: deque = deque()
        state = {"n": 0, "error": None}
        cand = None
        est = 0  # items submitted so far (estimated from the cuts)

        def drain(limit: int) -> None:
            while len(inflight) > limit:
                fut, base = inflight.popleft()
                res = fut.result() if pool is not None else fut
                _consume(res, base)

        def _consume(res, base) -> None:
            if state["error"] is not None:
                return
            if consume is not None:
                n_done, err = consume(res, base)
                state["n"] += n_done
                if err is not None:
                    state["error"] = err
                return
            if res[0] == "ok" and base == state["n"]:
                _, n, table, nines = res[:4]
                add_nines(fc, nines)
                sink.write(table)
                state["n"] += n
                return
            chunk = res[1] if res[0] == "raw" else res[4]
            if res[0] == "ok":  # a chunk before was counted differently: redo with the right base
                res2 = process_chunk(chunk, state["n"], cand, sha)
                if res2[0] == "ok":
                    add_nines(fc, res2[3])
                    sink.write(res2[2])
                    state["n"] += res2[1]
                    return
            try:
                for it in ijson.items(io.BytesIO(b"[" + chunk + b"]"), "item", use_float=True):
                    flat.item(state["n"], it)
                    state["n"] += 1
            except (ijson.JSONError, ijson.IncompleteJSONError) as e:
                state["error"] = e
            flat.flush()

        def submit(chunk: bytes, n_est: int) -> None:
            nonlocal est
            if process is not None:
                fut = pool.submit(process, chunk, est, cand) if pool is not None else process(chunk, est, cand)
            elif pool is not None:
                fut = pool.submit(_process_keep, chunk, est, cand, sha)
            else:
                fut = _process_keep(chunk, est, cand, sha)
            inflight.append((fut, est))
            est += n_est
            drain(max_inflight if pool is not None else 0)

        try:
            tail = None
            while True:
                while len(buf) < chunk_bytes and not f.eof:
                    buf += f.read(max(READ_BYTES, chunk_bytes - len(buf)))
                lead = _LEAD_WS.match(buf).end()  # (no copy of the buffer)
                if lead:
                    buf = buf[lead:]
                if not buf:
                    raise Restart("truncated charges array")
                if buf[:1] == b"]":
                    tail = buf[1:]
                    break
                if est == 0 and f.eof and f.total < min_bytes:
                    raise Restart("small payload: the sequential reader is as fast")
                if cand is None:
                    m = _FIRST_KEY.match(buf)
                    if m is None:
                        raise Restart("first item is not an object")
                    cand = _candidate_re(m.group(1))
                cut = None
                if not f.eof:
                    last = None
                    lo = max(0, len(buf) - 2 * 1024**2)
                    for mm in cand.finditer(buf, lo):
                        last = mm
                    if last is None and lo:
                        for mm in cand.finditer(buf):
                            last = mm
                    if last is not None:
                        n_est = _closed_items(buf[: last.start() + 1]) if verify_cuts else 1
                        if n_est:
                            cut = last.start() + 1
                if cut is None:
                    ends, close = _item_ends(buf)
                    if close >= 0:
                        # the array ends in this buffer: last chunk, then the tail
                        if len(ends):
                            chunk = buf[: int(ends[-1])]
                            submit(chunk, len(ends))
                        tail = buf[close + 1 :]
                        break
                    if len(ends):
                        cut = int(ends[-1])
                        n_est = len(ends)
                    elif f.eof:
                        raise Restart("unbalanced charges array")
                    else:
                        if len(buf) > MAX_ITEM_BYTES:
                            raise Restart("item larger than MAX_ITEM_BYTES")
                        buf += f.read(max(READ_BYTES, len(buf)))
                        continue
                chunk = buf[:cut]
                rest = buf[cut:].lstrip(_WS)
                submit(chunk, n_est)
                if state["error"] is not None:
                    break
                if rest[:1] == b",":
                    buf = rest[1:]
                elif rest[:1] == b"]":
                    tail = rest[1:]
                    break
                elif not rest and not f.eof:
                    buf = rest
                    buf += f.read(READ_BYTES)
                    buf = buf.lstrip(_WS)
                    if buf[:1] == b",":
                        buf = buf[1:]
                    elif buf[:1] == b"]":
                        tail = buf[1:]
                        break
                    else:
                        raise Restart("unexpected byte after an item")
                else:
                    raise Restart("unexpected byte after an item")
            drain(0)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if state["error"] is not None:  # stopped at a JSON error (the loop left without a tail)
            return state["n"], b"", f.total, state["error"]
        # tail: the rest of the payload, bounded
        parts = [tail]
        size = len(tail)
        while not f.eof:
            b = f.read(READ_BYTES)
            size += len(b)
            if size > MAX_TAIL_BYTES:
                parts = None
                while not f.eof:
                    f.read(READ_BYTES)
                break
            parts.append(b)
        return state["n"], (b"".join(parts) if parts is not None else None), f.total, state["error"]


def _process_keep(chunk: bytes, base: int, cand, sha):
    res = process_chunk(chunk, base, cand, sha)
    return res if res[0] == "raw" else (*res, chunk)
