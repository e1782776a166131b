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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NULL_TOKENS = ["", "n/a", "na", "-", "--", "null", "none", "nan", "#n/a"]
NINE_NINES = 999_999_999.0


# ``pa.array``/``pa.scalar`` (and compute calls given Python literals) import pandas on first
# use: ~1.5-2 s of CPU per process, more than parsing 100 MB. The parser's hot paths build
# their arrays and scalars from buffers instead, so ``price-pipeline parse`` never pays it.
def from_numpy(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Arrow array over a 1-d numeric or bool numpy array (zero copy for numbers);
    ``mask`` True = null."""
    values = np.ascontiguousarray(values)
    n = len(values)
    validity = None if mask is None or not mask.any() else pa.py_buffer(np.packbits(~mask, bitorder="little"))
    if values.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), n, [validity, pa.py_buffer(np.packbits(values, bitorder="little"))])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), n, [validity, pa.py_buffer(values)])


def bool_to_numpy(arr: pa.Array) -> np.ndarray:
    """numpy bool array of a ``pa.bool_()`` array, nulls read as False (no pandas import)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=bool)
    validity, data = arr.buffers()[:2]
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=arr.offset + n, bitorder="little")
    out = bits[arr.offset :].astype(bool)
    if validity is not None and arr.null_count:
        vbits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), count=arr.offset + n, bitorder="little")
        out &= vbits[arr.offset :].astype(bool)
    return out


def int_to_numpy(arr: pa.Array, fill: int = 0) -> np.ndarray:
    """numpy array of an integer Arrow array, nulls as ``fill`` (no pandas import)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    dtype = np.dtype(f"{'u' if pa.types.is_unsigned_integer(arr.type) else 'i'}{arr.type.bit_width // 8}")
    if len(arr) == 0:
        return np.zeros(0, dtype=dtype)
    vals = np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    if arr.null_count:
        vals = np.where(bool_to_numpy(pc.is_valid(arr)), vals, fill)
    return vals


def str_array(values: list) -> pa.Array:
    """``pa.string()`` array of Python strings (None = null), built from buffers."""
    data = [v.encode() if v is not None else b"" for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    mask = np.array([v is None for v in values], dtype=bool)
    validity = pa.py_buffer(np.packbits(~mask, bitorder="little")) if mask.any() else None
    return pa.Array.from_buffers(pa.string(), len(data), [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


_EPOCH = _dt.date(1970, 1, 1)


def date_array(values: list, n: int | None = None) -> pa.Array:
    """date32 array of ``datetime.date`` values (None = NULL), or ``n`` times ``values[0]``,
    built from buffers."""
    days = np.array([(v - _EPOCH).days if v is not None else 0 for v in values], np.int32)
    nulls = np.array([v is None for v in values], bool)
    if n is not None:
        days, nulls = np.repeat(days, n), np.repeat(nulls, n)
    return from_numpy(days, nulls).view(pa.date32())


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` with no rows (``schema.empty_table()`` goes through pandas)."""
    return pa.table([pa.nulls(0, f.type) for f in schema], schema=schema)


def repeat_str(value: str | None, n: int) -> pa.Array:
    """``n`` times the same string (or ``n`` nulls), built from buffers."""
    if value is None:
        return pa.nulls(n, pa.string())
    b = value.encode()
    if (n + 1) * len(b) >= 2**31:  # over the int32 offsets of pa.string(): build it in pieces
        half = n // 2
        return pa.concat_arrays([repeat_str(value, half), repeat_str(value, n - half)])
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(b))
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(b * n)])


EMPTY_STR = str_array([""])[0]
NULL_STR = pa.nulls(1, pa.string())[0]
FALSE = from_numpy(np.zeros(1, dtype=bool))[0]
TRUE = from_numpy(np.ones(1, dtype=bool))[0]
_NULL_SET = str_array(NULL_TOKENS)
_NINES_F64 = from_numpy(np.array([NINE_NINES]))[0]
# What is left after removing "$", ",", "%" and spaces must look like this to be a number.
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_STRIP_RE = r"[$,%\s]"


# A value needs trimming only when its first or last byte could start/end whitespace: ASCII
# control/space bytes (<= 0x20) or any non-ASCII byte (Unicode spaces are multi-byte). A
# conservative superset of what ``utf8_trim_whitespace`` removes, checked on the raw buffers:
# ``byte - 0x21`` (uint8, wrapping) is >= 0x5E exactly for those bytes, so one max() decides.
_PRINTABLE_ASCII_SPAN = 0x5E


def _any_maybe_space(data: np.ndarray, positions: np.ndarray) -> bool:
    """Whether any byte of ``data`` at ``positions`` (clipped into range) may be whitespace."""
    picked = np.take(data, positions, mode="clip")
    np.subtract(picked, 0x21, out=picked)
    return bool(picked.max() >= _PRINTABLE_ASCII_SPAN)


def _string_offsets(t: pa.Array) -> np.ndarray:
    """The ``len(t) + 1`` int32 offsets of a ``pa.string()`` array (zero copy)."""
    return np.frombuffer(t.buffers()[1], dtype=np.int32, count=len(t) + 1, offset=t.offset * 4)


def is_valid_utf8(t: pa.Array) -> bool:
    """Whether the values of ``t`` (a ``pa.string()`` array read without UTF-8 checks) are UTF-8.

    An all-ASCII data buffer (one numpy max) is; otherwise Arrow's full validation decides.
    """
    n = len(t)
    if n == 0:
        return True
    offs = _string_offsets(t)
    start, end = int(offs[0]), int(offs[-1])
    if end == start or np.frombuffer(t.buffers()[2], dtype=np.uint8, count=end - start, offset=start).max() < 0x80:
        return True
    try:
        t.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _needs_trim(t: pa.Array) -> bool:
    """False only when no value of ``t`` (a ``pa.string()`` array) starts or ends with whitespace.

    Looks at the byte at every value start and before every value end. For an empty value
    these are bytes of its neighbours (or clamped to the first/last byte): at worst an
    unneeded trim, never a missed one.
    """
    n = len(t)
    if n == 0:
        return False
    offs = _string_offsets(t)
    start, end = int(offs[0]), int(offs[-1])
    if end == start:
        return False
    data = np.frombuffer(t.buffers()[2], dtype=np.uint8)
    return _any_maybe_space(data, offs[:-1]) or _any_maybe_space(data, offs[1:] - 1)


def _null_where_empty(t: pa.Array) -> pa.Array:
    """``t`` with empty strings made null: a new validity bitmap over the same data (no copy)."""
    if isinstance(t, pa.ChunkedArray):
        t = t.combine_chunks()
    if t.type != pa.string():
        lengths = pc.binary_length(t)
        zero = pc.cast(from_numpy(np.zeros(1, np.int64)), lengths.type)[0]
        keep = pc.fill_null(pc.greater(lengths, zero), FALSE)
        return pc.if_else(keep, t, pa.nulls(1, t.type)[0])
    n = len(t)
    offs = _string_offsets(t)
    keep = offs[1:] > offs[:-1]
    if t.null_count:
        keep &= bool_to_numpy(pc.is_valid(t))
    elif keep.all():
        return t
    b = t.buffers()
    bitmap = pa.py_buffer(np.packbits(keep, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), n, [bitmap, b[1].slice(t.offset * 4, (n + 1) * 4), b[2]])


def clean_text(arr: pa.Array) -> pa.Array:
    """Trim surrounding whitespace; empty strings become null."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    # Trimming copies every byte; published values rarely need it, so look first (cheap).
    if arr.type != pa.string() or _needs_trim(arr):
        arr = pc.utf8_trim_whitespace(arr)
    return _null_where_empty(arr)


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
        ok = pc.fill_null(ok, FALSE)
        good = pc.and_(ok, pc.invert(pc.fill_null(is_null, TRUE)))
        vals = pc.cast(pc.if_else(good, stripped, NULL_STR), pa.float64())
        bad_mask = pc.and_(pc.invert(good), pc.invert(pc.fill_null(is_null, TRUE)))
        bad_mask = pc.and_(bad_mask, pc.is_valid(t))
        bad = pc.indices_nonzero(bad_mask)
        if len(bad) == 0:
            bad = None
    nines = None
    top = pc.max(vals).as_py() if len(vals) else None
    if top is not None and top >= NINE_NINES:
        nines = pc.indices_nonzero(pc.fill_null(pc.greater_equal(vals, _NINES_F64), FALSE))
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
