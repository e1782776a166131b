"""Chunked, vectorised v3.0.0 item check: the parser's Arrow JSON chunks, checked column-wise.

The ``standard_charge_information`` array is cut into ~16 MB chunks of complete items by the
parser's :func:`..mrf.json_chunks.read_charges_parallel` (main thread) and each chunk is parsed
by ``pyarrow.json`` against the parser's nested item schema in two worker threads (the GIL is
released while parsing and while the ``pyarrow.compute`` kernels run). The worker then decides,
with whole-column tests, whether *every* item of the chunk surely satisfies the v3.0.0 item
schema (the same conditions as :func:`.json_check.fast_ok_v3`); if so, only the alerts are
computed (positions, formatted later in the main thread, only while findings are kept).

Conservative by construction: a chunk goes to the exact per-item path (ijson + ``fast_ok_v3`` +
``jsonschema``, the sequential validator's code, in the main thread and in file order) when

* Arrow cannot read it against the schema (a string where a number is expected, an object where
  a list is expected, duplicate keys, syntax errors, ...);
* it contains a ``null`` value (Arrow reads it as "absent"), a non-finite number (Arrow accepts
  ``NaN``, ``Inf``, ``Infinity``, which are not JSON) or invalid UTF-8 (not checked by Arrow);
* any column test fails (so findings always come from the exact validator, with ajv-style
  messages, item paths and order identical to the sequential path).

Unknown members are ignored by Arrow, as by the schema (no ``additionalProperties``).
"""

from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from price_pipeline.lib.parse.mrf.json_chunks import chunk_items, read_items

from .rules import BILLING_CODE_TYPES_V3, DRUG_UNITS, METHODOLOGIES, SETTINGS


# Arrays, scalars and numpy views are built from buffers: ``pa.array``, ``pa.scalar`` (also the
# implicit one when a Python value is passed to a ``pyarrow.compute`` function) and
# ``Array.to_numpy`` import pandas, ~0.2 CPU-s per process with bytecode and ~1.3 s without,
# which the JSON path otherwise never needs.
def _strings(values) -> pa.StringArray:
    data = [v.encode("utf-8") for v in values]
    offsets = np.cumsum([0] + [len(d) for d in data], dtype=np.int64).astype(np.int32)
    return pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(data)))


def _number(value, typ: pa.DataType, dtype) -> pa.Scalar:
    return pa.Array.from_buffers(typ, 1, [None, pa.py_buffer(np.array([value], dtype=dtype).tobytes())])[0]


_NP_TYPES = {pa.int32(): np.int32, pa.int64(): np.int64, pa.uint64(): np.uint64}


def _np(a: pa.Array) -> np.ndarray:
    """Integer array without nulls -> numpy (zero-copy view)."""
    dtype = _NP_TYPES[a.type]
    if len(a) == 0:
        return np.zeros(0, dtype=dtype)
    assert a.null_count == 0
    return np.frombuffer(a.buffers()[1], dtype=dtype, count=a.offset + len(a))[a.offset:]


_CODES3 = _strings(BILLING_CODE_TYPES_V3)
_DRUG = _strings(DRUG_UNITS)
_METH = _strings(METHODOLOGIES)
_SET = _strings(SETTINGS)
_FALSE, _TRUE = pa.Array.from_buffers(pa.bool_(), 2, [None, pa.py_buffer(bytes([2]))])
_ZERO = _number(0, pa.int64(), np.int64)
_NDC, _OTHER, _S0, _S_NINES = _strings(["NDC", "other", "0", "999999999"])
# RE2: \d is ASCII and $ is the end of the text (Python's re also accepts a trailing newline,
# which only sends such a value to the exact path).
_COUNT_RE = r"^(0|1 through 10|1[1-9]|[2-9]\d+|[1-9]\d{2,})$"
# ``null`` as a value (not inside a string such as "annulled"): after ``:`` ``[`` or ``,``.
_NULL_VALUE = re.compile(rb"[:\[,][ \t\r\n]*null")
NINES = 999999999
_F_NINES = _number(float(NINES), pa.float64(), np.float64)
# alert kinds, in the order the sequential path emits them for one payer record
EST, CNT, MED, P10, P90 = range(5)
ALERT_KEYS = {CNT: ("count", "count"), MED: ("median_amount", "median amount"),
              P10: ("10th_percentile", "10th percentile"), P90: ("90th_percentile", "90th percentile")}


def _all(mask) -> bool:
    """True when the boolean array is all true (nulls count as false)."""
    if len(mask) == 0:
        return True
    return bool(pc.all(pc.fill_null(mask, _FALSE)).as_py())


def _nonempty(a) -> pa.Array:
    return pc.fill_null(pc.greater(pc.binary_length(a), _ZERO), _FALSE)


def _absent_or_nonempty(a) -> bool:
    return a.null_count == len(a) or _all(pc.fill_null(pc.greater(pc.binary_length(a), _ZERO), _TRUE))


def _absent_or_positive(a) -> bool:
    return a.null_count == len(a) or _all(pc.fill_null(pc.greater(a, _ZERO), _TRUE))


def _finite(a) -> bool:
    """No NaN / infinity among the values (Arrow accepts them, JSON does not)."""
    return a.null_count == len(a) or _all(pc.fill_null(pc.is_finite(a), _TRUE))


def _in(a, values) -> pa.Array:
    return pc.fill_null(pc.is_in(a, value_set=values), _FALSE)


def _min_len_ok(lists) -> bool:
    """Every non-null list has at least one element."""
    if lists.null_count == len(lists):
        return True
    m = pc.min(pc.list_value_length(lists)).as_py()
    return m is None or m >= 1


def _starts(lists) -> np.ndarray:
    lens = _np(pc.fill_null(pc.list_value_length(lists), _number(0, pa.int32(), np.int32))).astype(np.int64)
    return np.cumsum(lens) - lens


def _valid(a) -> pa.Array:
    return a.is_valid()


def items_ok_v3(items: pa.StructArray) -> bool:
    """True only when every item is surely valid against the v3.0.0 item schema."""
    n = len(items)
    if n == 0 or items.null_count:
        return False
    if not _all(_nonempty(items.field("description"))):
        return False
    codes_l = items.field("code_information")
    if codes_l.null_count or not _min_len_ok(codes_l):
        return False
    codes = pc.list_flatten(codes_l)
    if codes.null_count or not _all(_nonempty(codes.field("code"))) or not _all(_in(codes.field("type"),
                                                                                      _CODES3)):
        return False
    di = items.field("drug_information")
    has_di = _valid(di)
    if di.null_count < n:
        if not _finite(di.field("unit")):
            return False
        unit_ok = pc.fill_null(pc.greater(di.field("unit"), _ZERO), _FALSE)
        type_ok = _in(di.field("type"), _DRUG)
        if not _all(pc.or_(pc.invert(has_di), pc.and_(unit_ok, type_ok))):
            return False
    ndc = pc.equal(codes.field("type"), _NDC)
    if pc.any(ndc).as_py():
        parent = pc.list_parent_indices(codes_l)
        ndc_items = pc.filter(parent, ndc)
        if not _all(pc.take(has_di, ndc_items)):
            return False
    scl = items.field("standard_charges")
    if scl.null_count or not _min_len_ok(scl):
        return False
    sc = pc.list_flatten(scl)
    if sc.null_count or not _all(_in(sc.field("setting"), _SET)):
        return False
    for k in ("minimum", "maximum", "gross_charge", "discounted_cash"):
        if not (_finite(sc.field(k)) and _absent_or_positive(sc.field(k))):
            return False
    mods = sc.field("modifier_code")
    if mods.null_count < len(mods):
        if not _min_len_ok(mods):
            return False
        mflat = pc.list_flatten(mods)
        if mflat.null_count or not _all(_nonempty(mflat)):
            return False
    if not _absent_or_nonempty(sc.field("additional_generic_notes")):
        return False
    pl = sc.field("payers_information")
    has_pl = _valid(pl)
    if not _all(pc.or_(pc.or_(has_pl, _valid(sc.field("gross_charge"))), _valid(sc.field("discounted_cash")))):
        return False
    if pl.null_count == len(pl):
        return True
    if not _min_len_ok(pl):
        return False
    p = pc.list_flatten(pl)
    if p.null_count:
        return False
    if not (_all(_nonempty(p.field("payer_name"))) and _all(_nonempty(p.field("plan_name")))):
        return False
    meth = p.field("methodology")
    if not _all(_in(meth, _METH)):
        return False
    notes = p.field("additional_payer_notes")
    if not _absent_or_nonempty(notes):
        return False
    d, pct, alg = p.field("standard_charge_dollar"), p.field("standard_charge_percentage"), p.field(
        "standard_charge_algorithm")
    dv, pv, av = _valid(d), _valid(pct), _valid(alg)
    if not _all(pc.or_(pc.or_(dv, pv), av)):
        return False
    if not (_absent_or_positive(d) and _absent_or_positive(pct) and _absent_or_nonempty(alg)):
        return False
    for k in ("standard_charge_dollar", "standard_charge_percentage", "estimated_amount", "median_amount",
              "10th_percentile", "90th_percentile"):
        if not _finite(p.field(k)):
            return False
    med, p10, p90 = p.field("median_amount"), p.field("10th_percentile"), p.field("90th_percentile")
    if not (_absent_or_positive(med) and _absent_or_positive(p10) and _absent_or_positive(p90)):
        return False
    cnt = p.field("count")
    has_cnt = _valid(cnt)
    if cnt.null_count < len(cnt) and not _all(pc.or_(pc.invert(has_cnt),
                                                     pc.fill_null(pc.match_substring_regex(cnt, _COUNT_RE), _FALSE))):
        return False
    has_notes = _valid(notes)
    other = pc.fill_null(pc.equal(meth, _OTHER), _FALSE)
    if not _all(pc.or_(pc.invert(other), has_notes)):
        return False
    pa_or = pc.or_(pv, av)
    if pc.any(pa_or).as_py():
        if not _all(pc.or_(pc.invert(pa_or), has_cnt)):
            return False
        zero = pc.fill_null(pc.equal(cnt, _S0), _FALSE)
        need = pc.and_(pa_or, pc.invert(zero))
        allv = pc.and_(pc.and_(_valid(med), _valid(p10)), _valid(p90))
        if not _all(pc.or_(pc.invert(need), allv)):
            return False
    zero = pc.fill_null(pc.equal(cnt, _S0), _FALSE)
    if not _all(pc.or_(pc.invert(zero), has_notes)):
        return False
    if pc.any(dv).as_py():
        sc_parent = pc.list_parent_indices(pl)
        sc_dollar = pc.filter(sc_parent, dv)
        mm = pc.and_(_valid(sc.field("minimum")), _valid(sc.field("maximum")))
        if not _all(pc.take(mm, sc_dollar)):
            return False
    return True


def alerts_v3(items: pa.StructArray) -> np.ndarray | None:
    """v3 payer alerts of checked items: rows ``(item, sc j, payer k, kind)`` in emission order."""
    sc = pc.list_flatten(items.field("standard_charges"))
    pl = sc.field("payers_information")
    if pl.null_count == len(pl):
        return None
    p = pc.list_flatten(pl)
    masks = [(EST, _valid(p.field("estimated_amount"))),
             (CNT, pc.fill_null(pc.equal(p.field("count"), _S_NINES), _FALSE))]
    for kind, key in ((MED, "median_amount"), (P10, "10th_percentile"), (P90, "90th_percentile")):
        masks.append((kind, pc.fill_null(pc.equal(p.field(key), _F_NINES), _FALSE)))
    parts = []
    for kind, m in masks:
        if pc.any(m).as_py():
            idx = _np(pc.indices_nonzero(m)).astype(np.int64)
            parts.append(np.stack([idx, np.full(len(idx), kind, dtype=np.int64)], axis=1))
    if not parts:
        return None
    fk = np.concatenate(parts)
    fk = fk[np.lexsort((fk[:, 1], fk[:, 0]))]
    flat = fk[:, 0]
    # flat payer index -> (sc index, k) -> (item, j); starts from the lengths, as list_flatten counts
    sc_of = _np(pc.list_parent_indices(pl))[flat]
    k = flat - _starts(pl)[sc_of]
    scl = items.field("standard_charges")
    item_of = _np(pc.list_parent_indices(scl))[sc_of]
    j = sc_of - _starts(scl)[item_of]
    return np.stack([item_of, j, k, fk[:, 1]], axis=1)


def _items_same_separator(chunk: bytes, cand) -> pa.StructArray | None:
    """Fast path of ``chunk_items`` when every item separator is spelt like the first one.

    ``bytes.replace`` of that literal (``}`` , ``{"<first key>"`` with its whitespace) is about
    twice as fast as the regex substitution. Exact for the same reason as the regex: the literal
    contains ``{"`` with an unescaped quote, which cannot occur inside a string of valid JSON, and
    a line break put where it does not belong makes Arrow fail or read a different number of rows.
    Returns None when Arrow does not read exactly one item per separator (+1).
    """
    m = cand.search(chunk)
    if m is None:
        return None
    sep = chunk[m.start(): m.end()]
    n = chunk.count(sep)
    return read_items(chunk.replace(sep, b"}\n{" + m.group(3)), n + 1)


def check_chunk_v3(chunk: bytes, base: int, cand) -> tuple:
    """Worker: ``("ok", n_items, alerts)`` when the whole chunk passed, else ``("raw", chunk)``."""
    if b"null" in chunk and _NULL_VALUE.search(chunk):
        return ("raw", chunk)
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return ("raw", chunk)
    items = _items_same_separator(chunk, cand) if cand is not None else None
    if items is None:
        items = chunk_items(chunk, cand)
    if items is None or not items_ok_v3(items):
        return ("raw", chunk)
    return ("ok", len(items), alerts_v3(items))


# --- plain files: cuts found by file offset, chunks read by the workers ----------------------------
# For an uncompressed UTF-8 file the main thread does not have to stream the bytes through itself
# (the parser's reader copies every byte into its buffer and regex-scans the last 2 MB of every
# chunk while holding the GIL): it only reads a small window after each target offset to find the
# next item separator, and each worker ``os.pread``s its own chunk (GIL released while copying).
_FIRST_KEY = re.compile(rb'\{[ \t\r\n]*"((?:[^"\\]|\\.){1,200})"[ \t\r\n]*:')
_LEAD_WS = re.compile(rb"[ \t\r\n]*")
_WS = b" \t\r\n"
CUT_WINDOW = 256 * 1024
_OVERLAP = 4096  # a separator straddling two windows is found in the next one (or a later one is used)
MAX_ITEM_BYTES = 256 * 1024**2
MAX_LAST_BYTES = 512 * 1024**2


def _candidate_re(key: bytes) -> re.Pattern:
    """``}`` , ``{"<first key of item 0>"``: an item separator (same pattern as the parser's)."""
    return re.compile(rb"\}([ \t\r\n]*),([ \t\r\n]*)\{([ \t\r\n]*\"" + re.escape(key) + rb'")')


class _Head:
    """Minimal stream for :func:`json_chunks.locate_array` (reads the head of the file)."""

    def __init__(self, f):
        self.f, self.eof, self.total = f, False, 0

    def read(self, n: int) -> bytes:
        b = self.f.read(n) if not self.eof else b""
        self.eof = not b
        self.total += len(b)
        return b


def read_plain_file(path: str, process, consume, *, chunk_bytes: int, workers: int = 2,
                    max_inflight: int = 3) -> tuple[int, bytes, Exception | None]:
    """Cut the charges array of the plain UTF-8 JSON file ``path`` into chunks of whole items.

    ``process(chunk, 0, cand)`` runs in ``workers`` threads, ``consume(result)`` in this thread
    in file order and returns ``(n_items, error)`` (an error stops the reading). Cuts are made
    at item separators (``}`` , ``{"<first key>"``) without a bracket-depth check, so, as with
    ``read_charges_parallel(verify_cuts=False)``, ``process`` must prove each chunk is a
    sequence of complete items and ``consume`` must treat anything else as an error.

    Returns ``(n_items, tail after the array's ']', error)``. Raises
    :class:`~..mrf.json_chunks.Restart` for layouts it does not handle (no items, no array, an
    item over ``MAX_ITEM_BYTES``, an unbalanced or very long last part).
    """
    from price_pipeline.lib.parse.mrf.json_chunks import Restart, exact_scan, locate_array
    from price_pipeline.lib.parse.mrf.limits import JsonGuard

    with open(path, "rb", buffering=0) as raw:
        buf, start = locate_array(_Head(raw))
    del buf
    fd = os.open(path, os.O_RDONLY)
    pool = ThreadPoolExecutor(max_workers=workers)
    inflight: deque = deque()
    state = {"n": 0, "error": None}

    def work(lo: int, hi: int, cand):
        data = os.pread(fd, hi - lo, lo)
        # read here, not through the guarded stream: the same JSON limits, per chunk of items
        JsonGuard(depth0=2, offset=lo).feed(data)
        return process(data, 0, cand)

    def drain(limit: int) -> None:
        while len(inflight) > limit:
            res = inflight.popleft().result()
            if state["error"] is None:
                n, err = consume(res)
                state["n"] += n
                state["error"] = err

    try:
        size = os.fstat(fd).st_size
        first = os.pread(fd, 4096, start)
        pos = start + _LEAD_WS.match(first).end()
        first = os.pread(fd, 4096, pos)
        m = _FIRST_KEY.match(first)
        if m is None:
            raise Restart("first item is not an object" if first[:1] != b"]" else "no items")
        cand = _candidate_re(m.group(1))
        while state["error"] is None:
            cut = None
            lo = pos + chunk_bytes
            while lo < size:
                win = os.pread(fd, CUT_WINDOW, lo)
                mm = cand.search(win)
                if mm is not None:
                    cut, nxt = lo + mm.start() + 1, lo + mm.start(3) - 1
                    break
                if lo + len(win) >= size:
                    break
                if lo + len(win) - pos > MAX_ITEM_BYTES:
                    raise Restart("item larger than MAX_ITEM_BYTES")
                lo += len(win) - _OVERLAP
            if cut is None:  # the rest holds the last items, the array's ']' and the tail
                if size - pos > MAX_LAST_BYTES:
                    raise Restart("last part too long")
                rest = os.pread(fd, size - pos, pos)
                JsonGuard(depth0=2, offset=pos).feed(rest)
                at, depth = exact_scan(rest)
                closing = np.flatnonzero(depth < 0)
                if not len(closing):
                    raise Restart("unbalanced charges array")
                close = int(at[closing[0]])
                last = rest[:close].rstrip(_WS)
                if last:
                    inflight.append(pool.submit(process, last, 0, cand))
                drain(0)
                return state["n"], rest[close + 1:], state["error"]
            inflight.append(pool.submit(work, pos, cut, cand))
            drain(max_inflight)
            pos = nxt
        drain(0)
        return state["n"], b"", state["error"]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(fd)
