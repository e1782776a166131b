"""Cleaning of published values: numbers, placeholders, text and dates.

Numbers are cleaned with vectorised ``pyarrow.compute`` (one pass per column and batch):

* accepted: ``1234.5``, `` 12 ``, ``$1,234.00``, ``50%`` (the ``%`` is dropped: the column
  says whether it is a percentage), ``1e3``;
* null without a finding: empty, ``N/A``, ``NA``, ``n/a``, ``-``, ``--``, ``null``, ``none``
  (the CMS dictionary says to leave blanks, hospitals often write these instead);
* anything else: null plus a ``non_numeric_amount`` finding (capped by the collector);
* ``999999999`` and larger are kept as values (they are what the hospital published) but
  get a ``nine_nines_placeholder`` finding: v2 files used them as "not knowable" markers.
"""

from __future__ import annotations

import datetime as _dt
import re

import pyarrow as pa
import pyarrow.compute as pc

NULL_TOKENS = ["", "n/a", "na", "-", "--", "null", "none", "nan", "#n/a"]
NINE_NINES = 999_999_999.0
_NULL_SET = pa.array(NULL_TOKENS, pa.string())
# What is left after removing "$", ",", "%" and spaces must look like this to be a number.
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_STRIP_RE = r"[$,%\s]"


def _null_where_empty(t: pa.Array) -> pa.Array:
    """``t`` with empty strings made null: a new validity bitmap over the same data (no copy)."""
    if isinstance(t, pa.ChunkedArray):
        t = t.combine_chunks()
    keep = pc.fill_null(pc.greater(pc.binary_length(t), 0), False)
    if t.type != pa.string() or t.offset or keep.offset:
        return pc.if_else(keep, t, pa.scalar(None, t.type))
    b = t.buffers()
    return pa.Array.from_buffers(pa.string(), len(t), [keep.buffers()[1], b[1], b[2]])


def clean_text(arr: pa.Array) -> pa.Array:
    """Trim surrounding whitespace; empty strings become null."""
    return _null_where_empty(pc.utf8_trim_whitespace(arr))


def clean_numeric(arr: pa.Array) -> tuple[pa.Array, pa.Array | None, pa.Array | None]:
    """Clean a string array into float64.

    Returns ``(values, bad_indices, nines_indices)``: indices (into ``arr``) of values that are
    not numbers (now null), and of 999999999-style placeholders; ``None`` when there are none.
    """
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    # Fast path: already a clean number or empty (the normal case in valid files): no trim.
    try:
        vals = pc.cast(_null_where_empty(arr), pa.float64())
        bad = None
    except pa.ArrowInvalid:
        t = pc.utf8_trim_whitespace(arr)
        low = pc.utf8_lower(t)
        is_null = pc.is_in(low, value_set=_NULL_SET)
        stripped = pc.replace_substring_regex(t, _STRIP_RE, "")
        ok = pc.match_substring_regex(stripped, _NUMBER_RE)
        ok = pc.fill_null(ok, False)
        good = pc.and_(ok, pc.invert(pc.fill_null(is_null, True)))
        vals = pc.cast(pc.if_else(good, stripped, pa.scalar(None, pa.string())), pa.float64())
        bad_mask = pc.and_(pc.invert(good), pc.invert(pc.fill_null(is_null, True)))
        bad_mask = pc.and_(bad_mask, pc.is_valid(t))
        bad = pc.indices_nonzero(bad_mask)
        if len(bad) == 0:
            bad = None
    nines = None
    if len(vals) and pc.max(vals).as_py() is not None and pc.max(vals).as_py() >= NINE_NINES:
        nines = pc.indices_nonzero(pc.fill_null(pc.greater_equal(vals, NINE_NINES), False))
    return vals, bad, nines


def to_float(v) -> float | None:
    """Scalar version of :func:`clean_numeric` (JSON values); raises ValueError when not a number."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip()
    if s.lower() in NULL_TOKENS:
        return None
    s2 = re.sub(_STRIP_RE, "", s)
    if not re.match(_NUMBER_RE, s2):
        raise ValueError(s)
    return float(s2)


def text(v) -> str | None:
    """Scalar text cleaning (JSON values): trimmed string, empty -> None."""
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%m-%d-%Y", "%Y-%m-%dT%H:%M:%S", "%m/%d/%y")


def parse_date(value) -> _dt.date | None:
    """Parse an MRF date: ISO ``YYYY-MM-DD`` or ``M/D/YYYY`` (both allowed by CMS); None if not."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    s = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return _dt.datetime.strptime(s[:19] if "T" in s else s, fmt).date()
        except ValueError:
            continue
    return None


def parse_bool(value) -> bool | None:
    """TRUE/true/yes/1 -> True, FALSE/false/no/0 -> False, else None."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    s = str(value).strip().lower()
    if s in ("true", "t", "yes", "y", "1"):
        return True
    if s in ("false", "f", "no", "n", "0"):
        return False
    return None
