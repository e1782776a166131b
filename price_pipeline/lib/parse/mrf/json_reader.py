"""Streaming JSON reader (ijson, yajl2_c backend).

The charges are streamed with a single C-level ``ijson.items_coro`` over
``standard_charge_information.item`` fed with chunks we read ourselves; each item is flattened
to one row per payer record (or one row per standard charge without payers) and written in
Arrow batches. ``source_path`` is e.g.
``standard_charge_information[3].standard_charges[0].payers_information[1]``.

Header fields (and ``modifier_information``) may come before *or after* the charges array.
A second full parse would double the cost, so:

* the part *before* the array is parsed with ``ijson.parse`` up to the
  ``standard_charge_information`` key (only the head bytes are read);
* for the part *after* the array, the chunks from the last one that completed an item onward
  are kept (the array ends there) and :func:`.json_top.find_tail_members` reads the trailing
  top-level members from them (the one tail parser, shared with :mod:`.json_chunks`).
* small payloads (< ``full_parse_below`` bytes) are simply parsed a second time for the
  header, which is cheap and exercises no heuristics.

Modifier entries (``modifier_information[m].modifier_payer_information[n]``) become rows with
``modifiers`` = the modifier code, ``description`` = the modifier description and the
payer-specific text in ``additional_payer_notes``.
"""

from __future__ import annotations

import ijson
import numpy as np
import pyarrow as pa

from price_pipeline.lib.lake.schemas import PARSED_SCHEMA

from .header import json_header
from .json_chunks import CHUNK_BYTES, Restart, read_charges_parallel
from .json_items import _CHARGE_NUM, _PAYER_NUM, _PAYER_TXT, ITEM_FULL_T, add_nines, flatten_items
from .json_top import TailTracker, collect_top, find_tail_members, parse_tail_members
from .values import (
    from_numpy,
    repeat_str,
    str_array,
    text,
    to_float,
)

CHUNK = 1 << 20
BATCH_ITEMS = 4096
FULL_PARSE_BELOW = 8 * 1024**2


def _py_column(values: list, typ: pa.DataType) -> pa.Array:
    """Arrow column of Python values; strings and floats without ``pa.array`` (see values.from_numpy)."""
    if all(v is None for v in values):
        return pa.nulls(len(values), typ)
    if typ == pa.string() and all(v is None or v.__class__ is str for v in values):
        return str_array(values)
    if typ == pa.float64() and all(v is None or v.__class__ is float for v in values):
        mask = np.array([v is None for v in values], dtype=bool)
        return from_numpy(np.array([0.0 if v is None else v for v in values], dtype=np.float64), mask=mask)
    return pa.array(values, typ)


class _Rows:
    """Column-wise accumulator of flattened rows."""

    FIELDS = [f.name for f in PARSED_SCHEMA if f.name not in ("file_sha256", "source_row")]

    def __init__(self):
        self.cols = {f: [] for f in self.FIELDS}
        self.n = 0

    def add(self, row: dict) -> None:
        for f in self.FIELDS:
            self.cols[f].append(row.get(f))
        self.n += 1

    def table(self, sha: str | None) -> pa.Table:
        arrays = []
        for f in PARSED_SCHEMA:
            if f.name == "file_sha256":
                arrays.append(repeat_str(sha, self.n))
            elif f.name == "source_row":
                arrays.append(pa.nulls(self.n, pa.int64()))
            else:
                arrays.append(_py_column(self.cols[f.name], f.type))
        self.__init__()
        return pa.Table.from_arrays(arrays, schema=PARSED_SCHEMA)


class JsonFlattener:
    """Flattens standard_charge_information / modifier_information items into rows."""

    def __init__(self, sink, fc, sha):
        self.sink, self.fc, self.sha = sink, fc, sha
        self.rows = _Rows()
        self.pending: list = []

    def _num(self, v, path: str, key: str):
        if v is None or v.__class__ is float:
            return v
        try:
            f = to_float(v)
        except ValueError:
            self.fc.add("non_numeric_amount", "warning", f"not a number: {v!r}", path=path, column=key)
            return None
        if f is not None and f >= 999_999_999:
            self.fc.add("nine_nines_placeholder", "info", "999999999-style placeholder amount kept as published",
                        path=path, column=key)
        return f

    def _slow_item(self, i: int, it) -> None:
        base_path = f"standard_charge_information[{i}]"
        if not isinstance(it, dict):
            self.fc.add("bad_item", "error", "standard_charge_information item is not an object", path=base_path)
            self.sink.quarantine(None, repr(it)[:10000], "not an object", base_path)
            return
        codes = []
        for c in it.get("code_information") or []:
            if isinstance(c, dict):
                codes.append({"code": text(c.get("code")), "type": text(c.get("type"))})
        drug = it.get("drug_information") or {}
        if not isinstance(drug, dict):
            drug = {}
        common = {
            "description": text(it.get("description")),
            "codes": codes or None,
            "drug_unit_of_measurement": self._num(drug.get("unit"), base_path, "drug_information.unit"),
            "drug_type_of_measurement": text(drug.get("type")),
        }
        charges = it.get("standard_charges")
        if not isinstance(charges, list) or not charges:
            self.fc.add("missing_standard_charges", "warning", "item without standard_charges", path=base_path)
            row = dict(common)
            row["source_path"] = base_path
            self.rows.add(row)
            return
        for j, sc in enumerate(charges):
            spath = f"{base_path}.standard_charges[{j}]"
            if not isinstance(sc, dict):
                self.fc.add("bad_item", "error", "standard_charges entry is not an object", path=spath)
                continue
            row = dict(common)
            mods = sc.get("modifier_code")
            if isinstance(mods, list):
                mods = "|".join(str(m).strip() for m in mods if m is not None and str(m).strip()) or None
            else:
                mods = text(mods)
            row["modifiers"] = mods
            row["setting"] = text(sc.get("setting"))
            row["billing_class"] = text(sc.get("billing_class"))
            row["additional_generic_notes"] = text(sc.get("additional_generic_notes"))
            for src, dst in _CHARGE_NUM:
                row[dst] = self._num(sc.get(src), spath, src)
            payers = sc.get("payers_information")
            if not payers:
                row["source_path"] = spath
                self.rows.add(row)
                continue
            for k, p in enumerate(payers):
                ppath = f"{spath}.payers_information[{k}]"
                if not isinstance(p, dict):
                    self.fc.add("bad_item", "error", "payers_information entry is not an object", path=ppath)
                    continue
                r = dict(row)
                r["source_path"] = ppath
                r["payer_name"] = text(p.get("payer_name"))
                r["plan_name"] = text(p.get("plan_name"))
                for src, dst in _PAYER_NUM:
                    r[dst] = self._num(p.get(src), ppath, src)
                for src, dst in _PAYER_TXT:
                    r[dst] = text(p.get(src))
                self.rows.add(r)

    def modifiers(self, mods) -> None:
        if not isinstance(mods, list):
            return
        for m, mod in enumerate(mods):
            mpath = f"modifier_information[{m}]"
            if not isinstance(mod, dict):
                continue
            row = {"description": text(mod.get("description")), "modifiers": text(mod.get("code")),
                   "setting": text(mod.get("setting"))}
            payers = mod.get("modifier_payer_information") or []
            if not payers:
                row["source_path"] = mpath
                self.rows.add(row)
            for n, p in enumerate(payers):
                if not isinstance(p, dict):
                    continue
                r = dict(row)
                r["source_path"] = f"{mpath}.modifier_payer_information[{n}]"
                r["payer_name"] = text(p.get("payer_name"))
                r["plan_name"] = text(p.get("plan_name"))
                r["additional_payer_notes"] = text(p.get("description"))
                self.rows.add(r)
        self.flush()

    def item(self, i: int, it) -> None:
        """Queue item ``i``; converted in batches (see :meth:`flush`)."""
        self.pending.append((i, it))
        if len(self.pending) >= BATCH_ITEMS:
            self.flush()

    def flush(self) -> None:
        """Convert queued items: vectorised fast path, per-row fallback for odd batches."""
        if self.pending:
            batch, self.pending = self.pending, []
            table = None
            try:
                table = self._fast(batch)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, AttributeError, ValueError,
                    OverflowError):
                table = None  # a value of an unexpected type: the per-row path records findings
            if table is not None:
                self.sink.write(table)
            else:
                for i, it in batch:
                    self._slow_item(i, it)
        if self.rows.n:
            self.sink.write(self.rows.table(self.sha))

    def _fast(self, batch) -> pa.Table | None:
        """Flatten a batch of well-typed items with Arrow's dict->struct conversion."""
        items = [it for _, it in batch]
        for it in items:
            if not it.get("standard_charges"):
                return None
        res = flatten_items(pa.array(items, ITEM_FULL_T), np.asarray([i for i, _ in batch], dtype=np.int64),
                            self.sha)
        if res is None:
            return None
        table, nines = res
        add_nines(self.fc, nines)
        return table


def read_json(open_stream, *, sink, fc, sha, header_out: dict, full_parse_below: int = FULL_PARSE_BELOW,
              parallel: bool = True, chunk_bytes: int | None = None) -> dict:
    """Parse a JSON MRF. ``open_stream()`` returns a fresh UTF-8 byte stream of the payload.

    ``parallel``: payloads of at least ``full_parse_below`` bytes go through the chunked,
    multi-threaded reader (:mod:`.json_chunks`, same rows as the sequential one); anything it
    does not handle is parsed sequentially.
    """
    flat = JsonFlattener(sink, fc, sha)
    # 1) head: top-level members before the charges array.
    top: dict = {}
    head_error = False  # a syntax error anywhere ends the file not ok (the rows may be cut off)
    try:
        with open_stream() as s:
            top, _ = collect_top(ijson.parse(s), stop_at_charges=True)
    except ijson.JSONError as e:
        fc.add("json_syntax_error", "error", f"invalid JSON in the file header: {e}")
        head_error = True
        if not top:
            return {"format": "json", "ok": False}
    except (ijson.IncompleteJSONError, ValueError) as e:
        fc.add("json_syntax_error", "error", f"invalid JSON in the file header: {e}")
        return {"format": "json", "ok": False}
    if not isinstance(top, dict):
        fc.add("not_an_mrf", "error", "JSON top level is not an object")
        return {"format": "json", "ok": False}
    if parallel:
        state = fc.snapshot()
        try:
            n_items, tail, _total, error = read_charges_parallel(
                open_stream, sink=sink, fc=fc, sha=sha, flat=flat, chunk_bytes=chunk_bytes or CHUNK_BYTES,
                min_bytes=full_parse_below)
        except Restart:
            fc.rollback(state)
            sink.reset()
            flat = JsonFlattener(sink, fc, sha)
        else:
            if error is not None:
                fc.add("json_syntax_error", "error", f"JSON parse stopped after {n_items} items: {error}")
            flat.flush()
            if tail is None:
                fc.add("json_tail_too_large", "warning", "members after the charges array were not read (over 256 MB)")
            elif error is None:
                try:
                    late = parse_tail_members(tail)
                except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as e:
                    fc.add("json_syntax_error", "error", f"invalid JSON after the charges array: {e}")
                    error = e
                    late = {}
                top.update({k: v for k, v in late.items() if k not in top})
            return _finish(top, flat, fc, header_out, n_items, error is not None or head_error)
    # 2) charges, streamed by ijson's C generator (measured 2x faster than feeding
    #    items_coro); the reader wrapper keeps the chunks read since the last completed item.
    n_items = 0
    error = None
    with open_stream() as s:
        tracker = TailTracker(s)
        try:
            for it in ijson.items(tracker, "standard_charge_information.item", use_float=True, buf_size=CHUNK):
                tracker.mark()
                flat.item(n_items, it)
                n_items += 1
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError) as e:
            error = e
    total = tracker.total
    tail, tail_overflow = tracker.since_mark, tracker.overflow
    if error is not None:
        fc.add("json_syntax_error", "error", f"JSON parse stopped after {n_items} items: {error}")
    flat.flush()
    # 3) tail: members after the charges array (modifier_information, late header fields).
    if total < full_parse_below or n_items == 0:
        try:
            with open_stream() as s:
                full, _ = collect_top(ijson.parse(s), stop_at_charges=False)
            top.update({k: v for k, v in full.items() if k not in top})
        except (ijson.JSONError, ijson.IncompleteJSONError, ValueError):
            pass
    elif tail_overflow:
        fc.add("json_tail_too_large", "warning", "members after the charges array were not read (over 256 MB)")
    elif error is None:
        top.update({k: v for k, v in find_tail_members(b"".join(tail)).items() if k not in top})
    return _finish(top, flat, fc, header_out, n_items, error is not None or head_error)


def _finish(top: dict, flat: JsonFlattener, fc, header_out: dict, n_items: int, broken: bool = False) -> dict:
    header_out.update(json_header(top, fc))
    flat.modifiers(top.get("modifier_information"))
    if broken:  # rows read before a syntax error are kept for inspection, never published as the file
        return {"format": "json", "ok": False}
    if n_items == 0 and "standard_charge_information" not in top and not header_out.get("hospital_name"):
        fc.add("not_an_mrf", "error", "JSON without standard_charge_information or hospital_name")
        return {"format": "json", "ok": False}
    return {"format": "json", "ok": True}
