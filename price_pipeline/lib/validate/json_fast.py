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

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..mrf.json_chunks import chunk_items
from .rules import BILLING_CODE_TYPES_V3, DRUG_UNITS, METHODOLOGIES, SETTINGS

_CODES3 = pa.array(list(BILLING_CODE_TYPES_V3), pa.string())
_DRUG = pa.array(list(DRUG_UNITS), pa.string())
_METH = pa.array(list(METHODOLOGIES), pa.string())
_SET = pa.array(list(SETTINGS), pa.string())
# RE2: \d is ASCII and $ is the end of the text (Python's re also accepts a trailing newline,
# which only sends such a value to the exact path).
_COUNT_RE = r"^(0|1 through 10|1[1-9]|[2-9]\d+|[1-9]\d{2,})$"
# ``null`` as a value (not inside a string such as "annulled"): after ``:`` ``[`` or ``,``.
_NULL_VALUE = re.compile(rb"[:\[,][ \t\r\n]*null")
NINES = 999999999
# alert kinds, in the order the sequential path emits them for one payer record
EST, CNT, MED, P10, P90 = range(5)
ALERT_KEYS = {CNT: ("count", "count"), MED: ("median_amount", "median amount"),
              P10: ("10th_percentile", "10th percentile"), P90: ("90th_percentile", "90th percentile")}


def _all(mask) -> bool:
    """True when the boolean array is all true (nulls count as false)."""
    if len(mask) == 0:
        return True
    return bool(pc.all(pc.fill_null(mask, False)).as_py())


def _nonempty(a) -> pa.Array:
    return pc.fill_null(pc.greater(pc.binary_length(a), 0), False)


def _absent_or_nonempty(a) -> bool:
    return a.null_count == len(a) or _all(pc.fill_null(pc.greater(pc.binary_length(a), 0), True))


def _absent_or_positive(a) -> bool:
    return a.null_count == len(a) or _all(pc.fill_null(pc.greater(a, 0), True))


def _finite(a) -> bool:
    """No NaN / infinity among the values (Arrow accepts them, JSON does not)."""
    return a.null_count == len(a) or _all(pc.fill_null(pc.is_finite(a), True))


def _in(a, values) -> pa.Array:
    return pc.fill_null(pc.is_in(a, value_set=values), False)


def _min_len_ok(lists) -> bool:
    """Every non-null list has at least one element."""
    if lists.null_count == len(lists):
        return True
    m = pc.min(pc.list_value_length(lists)).as_py()
    return m is None or m >= 1


def _starts(lists) -> np.ndarray:
    lens = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
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
        unit_ok = pc.fill_null(pc.greater(di.field("unit"), 0), False)
        type_ok = _in(di.field("type"), _DRUG)
        if not _all(pc.or_(pc.invert(has_di), pc.and_(unit_ok, type_ok))):
            return False
    ndc = pc.equal(codes.field("type"), "NDC")
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
                                                     pc.fill_null(pc.match_substring_regex(cnt, _COUNT_RE), False))):
        return False
    has_notes = _valid(notes)
    other = pc.fill_null(pc.equal(meth, "other"), False)
    if not _all(pc.or_(pc.invert(other), has_notes)):
        return False
    pa_or = pc.or_(pv, av)
    if pc.any(pa_or).as_py():
        if not _all(pc.or_(pc.invert(pa_or), has_cnt)):
            return False
        zero = pc.fill_null(pc.equal(cnt, "0"), False)
        need = pc.and_(pa_or, pc.invert(zero))
        allv = pc.and_(pc.and_(_valid(med), _valid(p10)), _valid(p90))
        if not _all(pc.or_(pc.invert(need), allv)):
            return False
    zero = pc.fill_null(pc.equal(cnt, "0"), False)
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
             (CNT, pc.fill_null(pc.equal(p.field("count"), str(NINES)), False))]
    for kind, key in ((MED, "median_amount"), (P10, "10th_percentile"), (P90, "90th_percentile")):
        masks.append((kind, pc.fill_null(pc.equal(p.field(key), float(NINES)), False)))
    parts = []
    for kind, m in masks:
        if pc.any(m).as_py():
            idx = pc.indices_nonzero(m).to_numpy().astype(np.int64)
            parts.append(np.stack([idx, np.full(len(idx), kind, dtype=np.int64)], axis=1))
    if not parts:
        return None
    fk = np.concatenate(parts)
    fk = fk[np.lexsort((fk[:, 1], fk[:, 0]))]
    flat = fk[:, 0]
    # flat payer index -> (sc index, k) -> (item, j); starts from the lengths, as list_flatten counts
    sc_of = pc.list_parent_indices(pl).to_numpy()[flat]
    k = flat - _starts(pl)[sc_of]
    scl = items.field("standard_charges")
    item_of = pc.list_parent_indices(scl).to_numpy()[sc_of]
    j = sc_of - _starts(scl)[item_of]
    return np.stack([item_of, j, k, fk[:, 1]], axis=1)


def check_chunk_v3(chunk: bytes, base: int, cand) -> tuple:
    """Worker: ``("ok", n_items, alerts)`` when the whole chunk passed, else ``("raw", chunk)``."""
    if b"null" in chunk and _NULL_VALUE.search(chunk):
        return ("raw", chunk)
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return ("raw", chunk)
    items = chunk_items(chunk, cand)
    if items is None or not items_ok_v3(items):
        return ("raw", chunk)
    return ("ok", len(items), alerts_v3(items))
