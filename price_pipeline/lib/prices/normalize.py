"""Parsed rows (PARSED_SCHEMA) -> canonical prices (PRICES_SCHEMA), streamed batch by batch.

One output row per charge kind and amount:

* payer-level kinds, one row per parsed row where the value is present, with payer/plan:
  ``negotiated_dollar`` (amount), ``negotiated_percentage`` (percentage),
  ``negotiated_algorithm`` (value_text), ``estimated_amount`` (amount), ``median`` (amount,
  from median_amount), ``percentile_10th`` / ``percentile_90th`` (amount), ``count`` (value_text);
* item-level kinds ``gross``, ``discounted_cash``, ``minimum``, ``maximum``: ONCE per distinct
  item of a file — identity = file, description, codes, setting, billing_class, modifiers,
  drug unit/type and the value — with payer/plan NULL, taking the smallest source_row /
  source_path of the duplicates and the ``additional_generic_notes`` of the duplicate whose
  source_row (as text) or source_path sorts first (tall files repeat item-level charges on
  every payer row; wide and JSON don't, so this is what makes the three encodings give the
  same rows).

``primary_code`` / ``primary_code_type``: over the cleaned codes, the first well-formed code by
type priority CPT > HCPCS > MS-DRG > APR-DRG > other DRGs (any type containing "DRG") > NDC >
CDT > RC > any other type > LOCAL (a malformed code only when no code is well formed); ties
keep the file's code order (``pp_code_rank`` of :mod:`price_pipeline.lib.prices.codes`).

Codes are cleaned by code type before anything else (:mod:`price_pipeline.lib.prices.codes`: CPT /
HCPCS five upper-case characters, MS-DRG three digits, revenue codes four digits, NDC 11
digits, LOCAL as published, code types upper-cased with common misspellings mapped), so
``codes``, ``primary_code`` and the item identity use cleaned codes; ``mrf_parsed`` keeps
them as published.

``last_updated_on`` is parsed to a date (YYYY-MM-DD or M/D/YYYY); ``hospital_name`` and
``template_version`` come from the file header.

How (the rows are the same as the earlier single DuckDB query; the cost is not — it spent its
time running the cleaning macros and a sort inside a lambda on every row's code list, and
grouping the whole file by a list column):

1. The parsed Parquet is read in batches (:data:`BATCH_ROWS` rows), so memory does not grow
   with the file.
2. Codes are cleaned once per DISTINCT ``(code, type)`` pair (:class:`CodeCleaner`: a file has
   thousands of distinct codes and millions of rows). Before the first batch, the distinct
   pairs of the whole file (its ``codes`` column only, up to :data:`CACHE_PAIRS`) are cleaned
   at once: pairs the macros would leave unchanged (``99213``/``CPT``: an Arrow regex per
   type) are kept as they are, the rest go to the macros in ONE DuckDB query (binding them
   costs ~30 ms a query, which a query per batch paid a hundred times for a 1 GB file). Pairs
   first seen in a batch (beyond the cap) are cleaned the same way for that batch. What the
   macros made of a pair is also kept for the process (:data:`_MACRO_RESULTS`): the next
   hospital's known pairs need no query, and a file with nothing new to clean and no repeated
   item never opens a DuckDB connection (one connection with the macros costs ~35 ms). Each
   cleaned pair has a small integer id for the batch's takes, and a row's cleaned code list
   becomes a text key of its length-prefixed cleaned values (exact: two lists have the same
   key exactly when they are equal). The primary code is picked with numpy over the
   flattened lists.
3. Payer-level rows are written straight from the batch (Arrow filter/take, no SQL).
4. Item-level rows are de-duplicated in two stages. Stage 1, per batch: consecutive rows of
   the same item (a tall file repeats an item's charges on each payer row) collapse into one
   spilled row carrying the run's smallest row, path and notes key, and a hash of the item
   identity; the spill is a temporary Parquet file. Stage 2: a spilled row whose identity hash
   occurs once in the spill is an item of its own and is written as it is (most of a file's
   items); only rows with a repeated hash (an item cut by a batch end, listed twice, or a
   collision) go through a DuckDB GROUP BY over scalar columns (the code-list key, not the
   list), in passes of :data:`SPILL_ROWS_PER_PASS` rows under DuckDB's memory limit.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import math
import os
import queue
import tempfile
import threading

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from price_pipeline.lib.lake.schemas import CODE_STRUCT, CODES_TYPE, ITEM_LEVEL_CHARGE_KINDS, PRICES_SCHEMA
from price_pipeline.lib.parse.mrf.values import (
    EMPTY_STR,
    NULL_STR,
    bool_to_numpy,
    date_array,
    empty_table,
    from_numpy,
    int_to_numpy,
    parse_date,
    repeat_str,
    str_array,
)

from . import codes as code_cleaning

ParsedInput = tuple[str, dict, str | None]  # (parsed_parquet_path, header_dict, file_sha256)

CODE_PRIORITY = ["CPT", "HCPCS", "MS-DRG", "APR-DRG", "*DRG", "NDC", "CDT", "RC", "*", "LOCAL"]

# Rows per batch read from the parsed Parquet: large enough to amortise per-batch work, small
# enough that a batch and its derived arrays stay in the tens of MB.
BATCH_ROWS = 64 * 1024
# Distinct raw (code, type) pairs kept cleaned between batches; beyond it the cache starts over
# (it only saves work: keys are built from the cleaned values, not from cache ids).
CACHE_PAIRS = 250_000
# Spilled rows turned into final item rows at a time: each gives up to one row per item-level kind,
# so a table of at most BATCH_ROWS rows, the size of a payer batch's. A whole BATCH_ROWS of spilled
# rows (four times that, ~60 MB, with three in flight) grew the peak RSS with the number of item
# batches (mimalloc keeps the freed blocks): generated tall file 0.6 GB 773 -> 651 MB, 0.2 GB
# 568 -> 566 MB, same CPU; the file is also smaller (item rows in smaller row groups: 31.0 -> 29.1 MB).
ITEM_BATCH_ROWS = BATCH_ROWS // len(ITEM_LEVEL_CHARGE_KINDS)
# Spilled item runs aggregated per DuckDB pass (about 256 MB of DuckDB memory at most here).
SPILL_ROWS_PER_PASS = 100_000
# The temporary item spill is written once and read twice: no dictionaries or statistics (half
# the CPU of the defaults), lz4 to keep it small.
_SPILL_OPTIONS = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}
# Threads normalising batches: the Arrow kernels release the GIL, so two use both cores here.
WORKERS = 2

# payer-level kind -> (parsed column, output column)
PAYER_KINDS = (
    ("negotiated_dollar", "negotiated_dollar", "amount"),
    ("negotiated_percentage", "negotiated_percentage", "percentage"),
    ("negotiated_algorithm", "negotiated_algorithm", "value_text"),
    ("estimated_amount", "estimated_amount", "amount"),
    ("median", "median_amount", "amount"),
    ("percentile_10th", "percentile_10th", "amount"),
    ("percentile_90th", "percentile_90th", "amount"),
    ("count", "count", "value_text"),
)
ITEM_KINDS = tuple(zip(ITEM_LEVEL_CHARGE_KINDS, ("gross_charge", "discounted_cash", "minimum", "maximum"), strict=True))

_NO_CODE = 1 << 30  # priority of an element without a code: never the primary code

# No pandas: pyarrow imports it (~0.4 CPU-s per process) on the first ``pa.array``, ``pa.scalar``,
# Python literal given to a compute function or ``to_numpy(zero_copy_only=False)``. Arrays and
# scalars here are built from buffers (:mod:`price_pipeline.lib.parse.mrf.values`);
# ``test_prices_without_pandas`` keeps it so.
_COLON, _NEWLINE, _DASH = str_array([":", "\n", "-"])
_FLOAT_ZERO = from_numpy(np.zeros(1))[0]


def _str_scalar(value: str | None) -> pa.Scalar:
    return NULL_STR if value is None else str_array([value])[0]


def _float_to_numpy(arr: pa.Array, fill: float = 0.0) -> np.ndarray:
    """float64 numpy array of a floating Arrow array, NULL as ``fill`` (no pandas import)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.float64())
    if not len(arr):
        return np.zeros(0, np.float64)
    values = np.frombuffer(arr.buffers()[1], np.float64, len(arr), arr.offset * 8)
    return np.where(bool_to_numpy(arr.is_valid()), values, fill) if arr.null_count else values.copy()




def _key_parts(values: pa.Array) -> pa.Array:
    """One field of a code-list key per value: ``-`` for NULL, else ``<length>:<value>``
    (length in characters), so a concatenation of parts is unambiguous without escaping."""
    lengths = pc.cast(pc.utf8_length(values), pa.string())
    return pc.fill_null(pc.binary_join_element_wise(lengths, values, _COLON), _DASH)


# A pair that the cleaning macros map to itself can skip DuckDB (most published pairs are already
# clean: ``99213``/``CPT``, ``0450``/``RC``). Conservative, ASCII-only shapes; anything else goes to
# the macros, so the result is the macros' own in every case (tested pair by pair).
_PLAIN_TYPE = "^[A-Z][A-Z0-9-]*$"  # a type the type-cleaning macro leaves as is
_PLAIN_CODE = "^[!-`{-~]+$"  # printable ASCII without space or lower-case letters
_MACRO_TYPES = sorted(set(code_cleaning.TYPE_SYNONYMS) | {"CDM"})  # types with their own rules


def _type_priority(code_type: str) -> int:
    """``pp_code_rank``'s type part (well-formed codes add 0, malformed 100)."""
    priority = code_cleaning.TYPE_PRIORITY.get(code_type)
    if priority is None:
        priority = 5 if "DRG" in code_type else 9
    return priority


def _already_clean(codes: pa.Array, types: pa.Array) -> np.ndarray:
    """Per pair, ``pp_code_rank`` when the macros leave the pair unchanged, else -1 (not certain)."""
    rank = np.full(len(codes), -1, np.int64)
    if not len(codes):
        return rank

    def where(mask: pa.Array) -> np.ndarray:
        return bool_to_numpy(mask)  # NULL -> False

    has_code = where(pc.is_valid(codes))
    special = list(code_cleaning.WELL_FORMED_PATTERNS) + ["LOCAL"]
    for code_type, pattern in code_cleaning.WELL_FORMED_PATTERNS.items():
        # CPT, HCPCS, DRGs, RC, NDC: already in the expected shape
        ok = where(pc.equal(types, _str_scalar(code_type))) & where(pc.match_substring_regex(codes, f"^(?:{pattern})$"))
        rank[ok] = _type_priority(code_type)
    rank[where(pc.equal(types, _str_scalar("LOCAL"))) & has_code] = _type_priority("LOCAL")  # kept exactly as published
    # other types: trimmed and upper-cased, which they are
    other = (where(pc.match_substring_regex(types, _PLAIN_TYPE))
             & ~where(pc.is_in(types, str_array(special + _MACRO_TYPES)))
             & where(pc.match_substring_regex(codes, _PLAIN_CODE)))
    for code_type in pc.unique(types.filter(from_numpy(other))).to_pylist():
        rank[other & where(pc.equal(types, _str_scalar(code_type)))] = _type_priority(code_type)
    return rank


# What the cleaning macros made of each (code, type) pair cleaned in this process: (cleaned code,
# cleaned type, pp_code_rank). The macros are pure functions of the pair, and the same pairs recur
# in hospital after hospital (CPT and revenue codes, each generator's shapes), while a DuckDB query
# that binds the macros costs ~30-60 ms of CPU whatever its size: for a small hospital that query
# (with the connection it needed) was most of its prices step. Bounded (~0.35 kB a pair, so ~17 MB
# at most; cleared when full): the shared code systems (CPT, HCPCS, DRGs, revenue codes) fit, and
# LOCAL codes, which are each hospital's own, never come here (the shortcut keeps them as published).
_MACRO_RESULTS: dict[tuple[str | None, str | None], tuple[str | None, str | None, int]] = {}
_MACRO_RESULTS_LOCK = threading.Lock()
MACRO_CACHE_PAIRS = 50_000


class _LazyDuckDB:
    """The DuckDB connection of one normalisation, opened (with the cleaning macros) on first use.

    Connecting and creating the macros costs ~35 ms of CPU; a small file whose pairs are all
    cleaned already (:data:`_MACRO_RESULTS`) and whose items are all distinct never needs it."""

    def __init__(self, config: dict):
        self._config = config
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def get(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                con = duckdb.connect(config=self._config)
                try:
                    code_cleaning.register(con)
                except BaseException:
                    con.close()
                    raise
                self._con = con
            return self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


class CodeCleaner:
    """Cleans ``(code, type)`` pairs once per distinct pair, with the SQL macros of :mod:`codes`.

    ``clean(codes_list_array)`` returns the cleaned list array, a per-row text key of the
    cleaned list (equal keys <=> equal lists) and the primary code / type per row.
    """

    def __init__(self, con: _LazyDuckDB):
        self._con = con
        self._reset()
        # Batches are cleaned by two threads: the caches and the DuckDB connection are shared.
        self._lock = threading.Lock()

    def _reset(self) -> None:
        self._raw: dict[tuple[str | None, str | None], int] = {}  # raw pair -> pair id
        # By pair id, as Arrow arrays (appended to, never rebuilt) and a numpy priority.
        self._codes_arr = str_array([])  # cleaned code
        self._types_arr = str_array([])  # cleaned type
        self._keys_arr = str_array([])  # the pair's part of a code-list key (see clean)
        self._prio_arr = np.zeros(0, np.int64)

    def _clean_new(self, pairs: list[tuple[str | None, str | None]], codes: pa.Array, types: pa.Array) -> None:
        """Clean ``pairs`` (not yet known; also given as their ``codes`` and ``types`` arrays)
        and append them to the tables, vectorised."""
        rank = _already_clean(codes, types)
        clean_codes, clean_types = codes, types
        todo = np.flatnonzero(rank < 0)
        if len(todo):
            done_i, done_codes, done_types, done_rank = self._macro_clean(pairs, todo, codes, types)
            # Every pair at its position: the shortcut pairs as they are, then the macros' results.
            fast = np.flatnonzero(rank >= 0)
            order = np.empty(len(pairs), np.int64)
            order[np.concatenate([fast, done_i])] = np.arange(len(pairs))
            take = from_numpy(order)
            clean_codes = pa.concat_arrays([codes.take(from_numpy(fast)), done_codes]).take(take)
            clean_types = pa.concat_arrays([types.take(from_numpy(fast)), done_types]).take(take)
            rank[done_i] = done_rank
        prio = np.where(bool_to_numpy(clean_codes.is_valid()), rank, _NO_CODE)
        keys = pc.binary_join_element_wise(_key_parts(clean_types), _key_parts(clean_codes), EMPTY_STR)
        base = len(self._codes_arr)
        self._raw.update(zip(pairs, range(base, base + len(pairs)), strict=True))
        self._codes_arr = pa.concat_arrays([self._codes_arr, clean_codes.cast(pa.string())])
        self._types_arr = pa.concat_arrays([self._types_arr, clean_types.cast(pa.string())])
        self._keys_arr = pa.concat_arrays([self._keys_arr, keys])
        self._prio_arr = np.concatenate([self._prio_arr, prio.astype(np.int64)])

    def _macro_clean(self, pairs: list[tuple[str | None, str | None]], todo: np.ndarray, codes: pa.Array,
                     types: pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array, np.ndarray]:
        """The macros' cleaned code, type and ``pp_code_rank`` of the pairs at positions ``todo``:
        ``(positions, codes, types, ranks)``, in an order of their own. Pairs cleaned earlier in
        this process come from :data:`_MACRO_RESULTS`; only the others go to DuckDB."""
        with _MACRO_RESULTS_LOCK:
            known = [_MACRO_RESULTS.get(pairs[i]) for i in todo.tolist()]
        hit = np.array([k is not None for k in known], bool)
        cached = [k for k in known if k is not None]
        parts_i = [todo[hit]]
        parts_codes = [str_array([k[0] for k in cached])]
        parts_types = [str_array([k[1] for k in cached])]
        parts_rank = [np.array([k[2] for k in cached], np.int64)]
        miss = todo[~hit]
        if len(miss):
            miss_arr = from_numpy(miss)
            table = pa.table({"i": miss_arr, "code": codes.take(miss_arr), "type": types.take(miss_arr)})
            con = self._con.get()
            con.register("pp_pairs", table)
            try:
                # Rows come back in any order (no insertion order): each carries its index.
                # pp_code_rank: well-formed codes first, then type priority (lib/prices/codes.py).
                done = con.sql(
                    "SELECT i, clean_code, clean_type, pp_code_rank(clean_code, clean_type) AS r FROM ("
                    " SELECT i, pp_clean_code(code, type) AS clean_code, pp_clean_code_type(type) AS clean_type"
                    " FROM pp_pairs)"
                ).to_arrow_table()
            finally:
                con.unregister("pp_pairs")
            done_i = int_to_numpy(done.column("i")).astype(np.int64)
            done_codes = done.column("clean_code").combine_chunks().cast(pa.string())
            done_types = done.column("clean_type").combine_chunks().cast(pa.string())
            done_rank = int_to_numpy(done.column("r")).astype(np.int64)
            with _MACRO_RESULTS_LOCK:
                if len(_MACRO_RESULTS) + len(done_i) > MACRO_CACHE_PAIRS:
                    _MACRO_RESULTS.clear()
                if len(done_i) <= MACRO_CACHE_PAIRS:  # (a file with more new pairs is not kept)
                    _MACRO_RESULTS.update(zip((pairs[i] for i in done_i.tolist()),
                                              zip(done_codes.to_pylist(), done_types.to_pylist(), done_rank.tolist(),
                                                  strict=True),
                                              strict=True))
            parts_i.append(done_i)
            parts_codes.append(done_codes)
            parts_types.append(done_types)
            parts_rank.append(done_rank)
        return (np.concatenate(parts_i), pa.concat_arrays(parts_codes), pa.concat_arrays(parts_types),
                np.concatenate(parts_rank))

    def _lookup(self, raw_pairs: list[tuple[str | None, str | None]], codes: pa.Array, types: pa.Array
                ) -> tuple[np.ndarray, pa.Array, pa.Array, np.ndarray, pa.Array]:
        """Cleaned pair ids of the distinct ``raw_pairs`` (also given as ``codes`` and ``types``
        arrays; the new ones are cleaned) and the id -> code/type/priority/key tables."""
        with self._lock:
            if len(self._raw) > CACHE_PAIRS:  # bounded: files with millions of distinct codes exist
                self._reset()
            raw = self._raw
            new = [i for i, p in enumerate(raw_pairs) if p not in raw]
            if new:
                take = from_numpy(np.array(new, np.int64))
                self._clean_new([raw_pairs[i] for i in new], codes.take(take), types.take(take))
            pair_ids = np.fromiter((raw[p] for p in raw_pairs), dtype=np.int64, count=len(raw_pairs))
            return pair_ids, self._codes_arr, self._types_arr, self._prio_arr, self._keys_arr

    @staticmethod
    def _distinct_pairs(codes: pa.Array) -> tuple[list[tuple[str | None, str | None]], np.ndarray, pa.Array, pa.Array]:
        """The distinct raw ``(code, type)`` pairs of a list array, each element's index into
        them, and the pairs' codes and types as arrays."""
        elements = pc.list_flatten(codes)
        if isinstance(elements, pa.ChunkedArray):
            elements = elements.combine_chunks()
        # distinct raw pairs, via dictionary indices (nulls get their own index)
        cd = pc.dictionary_encode(pc.struct_field(elements, [0]), null_encoding="encode")
        td = pc.dictionary_encode(pc.struct_field(elements, [1]), null_encoding="encode")
        ci = int_to_numpy(cd.indices).astype(np.int64)
        ti = int_to_numpy(td.indices).astype(np.int64)
        width = len(cd.dictionary) + 1
        # Distinct (type, code) index pairs by hashing (in first-seen order; a sort cost more).
        pair_index = pc.dictionary_encode(from_numpy(ti * width + ci))
        uniq = int_to_numpy(pair_index.dictionary)
        inverse = int_to_numpy(pair_index.indices)
        code_idx, type_idx = uniq % width, uniq // width
        cvals = cd.dictionary.to_pylist()
        tvals = td.dictionary.to_pylist()
        pairs = [(cvals[c], tvals[t]) for c, t in zip(code_idx.tolist(), type_idx.tolist(), strict=True)]
        return pairs, inverse, cd.dictionary.take(from_numpy(code_idx)), td.dictionary.take(from_numpy(type_idx))

    def prepare(self, paths: list[str]) -> None:
        """Clean the distinct pairs of whole parsed files up front, in one DuckDB query.

        Binding the cleaning macros costs ~30 ms a query, whatever its size: cleaning the new
        pairs of each batch on its own paid that once per batch. Reads only the ``codes``
        column; stops collecting at :data:`CACHE_PAIRS` (later pairs are cleaned per batch)."""
        new: dict[tuple[str | None, str | None], None] = {}
        new_codes, new_types = [], []
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS * 4, columns=["codes"]):
                pairs, _, codes, types = self._distinct_pairs(batch.column(0))
                fresh = [i for i, p in enumerate(pairs) if p not in self._raw and p not in new]
                new.update(dict.fromkeys(pairs[i] for i in fresh))
                take = from_numpy(np.array(fresh, np.int64))
                new_codes.append(codes.take(take))
                new_types.append(types.take(take))
                if len(self._raw) + len(new) > CACHE_PAIRS:
                    break
            else:
                continue
            break
        with self._lock:
            if new:
                keep = max(0, CACHE_PAIRS - len(self._raw))
                self._clean_new(list(new)[:keep], pa.concat_arrays(new_codes)[:keep], pa.concat_arrays(new_types)[:keep])

    def clean(self, codes: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
        n = len(codes)
        parents = int_to_numpy(pc.list_parent_indices(codes))
        raw_pairs, inverse, raw_codes, raw_types = self._distinct_pairs(codes)
        pair_ids, codes_tab, types_tab, prio_tab, keys_tab = self._lookup(raw_pairs, raw_codes, raw_types)
        elem_ids = pair_ids[inverse] if len(inverse) else np.zeros(0, np.int64)

        ids_arr = from_numpy(elem_ids)
        clean_values = pa.StructArray.from_arrays(
            [codes_tab.take(ids_arr), types_tab.take(ids_arr)], fields=list(CODE_STRUCT)
        )
        counts = np.bincount(parents, minlength=n) if len(parents) else np.zeros(n, np.int64)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(counts, out=offsets[1:])
        mask = codes.is_null()
        offsets_arr = from_numpy(offsets)
        cleaned = pa.ListArray.from_arrays(offsets_arr, clean_values, type=CODES_TYPE, mask=mask)

        # Row key: the cleaned pairs, each field length-prefixed (so the concatenation is
        # unambiguous without escaping); NULL for a NULL list, "" for an empty one.
        parts = pa.ListArray.from_arrays(offsets_arr, keys_tab.take(ids_arr), mask=mask)
        key = pc.binary_join(parts, EMPTY_STR)

        # Primary code: smallest (priority, position) per row; rows with no usable code -> NULL.
        prio = prio_tab[elem_ids] if len(elem_ids) else np.zeros(0, np.int64)
        primary_code = pa.nulls(n, pa.string())
        primary_type = pa.nulls(n, pa.string())
        if len(elem_ids):
            order_key = prio * (1 << 32) + np.arange(len(elem_ids), dtype=np.int64)
            starts = offsets[:-1][counts > 0]
            best = np.minimum.reduceat(order_key, starts)
            has = (best >> 32) < _NO_CODE
            rows = np.nonzero(counts > 0)[0][has]
            best_ids = elem_ids[(best[has] & 0xFFFFFFFF)]
            take = np.full(n, -1, np.int64)
            take[rows] = best_ids
            take_arr = from_numpy(take, take < 0)
            primary_code = codes_tab.take(take_arr)
            primary_type = types_tab.take(take_arr)
        return cleaned, key, primary_code, primary_type


# Stage 2 of the item-level de-duplication, over the spilled stage-1 runs: one row per item
# identity, kind and value. The lineage key of the notes is the one the SQL normaliser used
# (source_row as text, else the JSON path); stage 1 keeps its minimum per run in notes_key.
_ITEM_KEYS = ("sha, description, codes_key, setting, billing_class, modifiers, drug_unit_of_measurement, "
              "drug_type_of_measurement, kind, val")
_ITEMS_FINAL = f"""
SELECT h.hospital_key, i.sha AS file_sha256, i.source_row, i.source_path, h.hospital_name,
       h.last_updated_on, h.template_version, i.description, i.setting, i.billing_class, i.modifiers,
       i.drug_unit_of_measurement, i.drug_type_of_measurement, i.primary_code, i.primary_code_type,
       i.codes, NULL::VARCHAR AS payer_name, NULL::VARCHAR AS plan_name, i.kind AS charge_kind,
       i.val AS amount, NULL::DOUBLE AS percentage, NULL::VARCHAR AS value_text,
       NULL::VARCHAR AS methodology, NULL::VARCHAR AS additional_payer_notes, i.additional_generic_notes
FROM (
  SELECT {_ITEM_KEYS}, min(source_row) AS source_row, min(source_path) AS source_path,
         min(file_idx) AS file_idx, arg_min(additional_generic_notes, notes_key) AS additional_generic_notes,
         any_value(codes) AS codes, any_value(primary_code) AS primary_code,
         any_value(primary_code_type) AS primary_code_type
  FROM (
    SELECT r.*, k.kind, k.val FROM (SELECT * FROM read_parquet($spill) WHERE part % $passes = $pass) r,
      LATERAL (VALUES ('gross', r.gross_charge), ('discounted_cash', r.discounted_cash),
                      ('minimum', r.minimum), ('maximum', r.maximum)) k(kind, val)
    WHERE k.val IS NOT NULL
  )
  GROUP BY {_ITEM_KEYS}
) i JOIN pp_headers h ON h.file_idx = i.file_idx
"""  # noqa: S608 - module constants only

_PAYER_COLUMNS = ("source_row", "source_path", "description", "setting", "billing_class", "modifiers",
                  "drug_unit_of_measurement", "drug_type_of_measurement")
_PAYER_TAIL = ("methodology", "additional_payer_notes", "additional_generic_notes")


def _payer_rows(batch: pa.RecordBatch, extra: dict[str, pa.Array], consts: dict) -> pa.Table | None:
    """The payer-level rows of one batch (one per present value and kind), in PRICES_SCHEMA."""
    idx_parts, kind_parts, values = [], [], {"amount": [], "percentage": [], "value_text": []}
    for kind, column, target in PAYER_KINDS:
        col = batch.column(column)
        if col.null_count == len(col):
            continue
        idx = np.flatnonzero(bool_to_numpy(col.is_valid()))
        if not len(idx):
            continue
        idx_parts.append(idx)
        kind_parts.append(repeat_str(kind, len(idx)))
        picked = col.take(from_numpy(idx))
        if pa.types.is_floating(picked.type):
            # The SQL normaliser's VALUES list turned -0.0 into 0.0 (x + 0.0 does the same).
            picked = pc.add(picked, _FLOAT_ZERO)
        for name in values:
            typ = PRICES_SCHEMA.field(name).type
            values[name].append(picked.cast(typ) if name == target else pa.nulls(len(idx), typ))
    if not idx_parts:
        return None
    take = from_numpy(np.concatenate(idx_parts))
    n = len(take)
    cols = {
        "hospital_key": repeat_str(consts["hospital_key"], n),
        "file_sha256": extra["sha"].take(take),
        "hospital_name": repeat_str(consts["hospital_name"], n),
        "last_updated_on": date_array([consts["last_updated_on"]], n),
        "template_version": repeat_str(consts["template_version"], n),
        "primary_code": extra["primary_code"].take(take),
        "primary_code_type": extra["primary_code_type"].take(take),
        "codes": extra["codes"].take(take),
        "payer_name": batch.column("payer_name").take(take),
        "plan_name": batch.column("plan_name").take(take),
        "charge_kind": pa.concat_arrays(kind_parts),
    }
    for name in _PAYER_COLUMNS + _PAYER_TAIL:
        cols[name] = batch.column(name).take(take)
    for name, parts in values.items():
        cols[name] = pa.concat_arrays(parts)
    return pa.table([cols[f.name].cast(f.type) for f in PRICES_SCHEMA], schema=PRICES_SCHEMA)


class _BackgroundWriter:
    """A ParquetWriter fed from a one-slot queue by the normalising thread.

    Encoding and compressing a batch (about a quarter of the work) runs in this thread while the
    next batch is cleaned; pyarrow releases the GIL while it writes. At most one finished batch
    waits, so memory stays bounded.
    """

    def __init__(self, writer: pq.ParquetWriter):
        self._writer = writer
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pp-normalize-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write_table(table)
                except BaseException as exc:  # re-raised in the normalising thread
                    self._error = exc

    def write_table(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(table)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


# Parquet dictionaries for text only: amounts and row numbers are nearly unique, and trying a
# dictionary on them first cost ~20 % of the write CPU for a larger file.
_DICTIONARY_COLUMNS = [f.name for f in PRICES_SCHEMA if pa.types.is_string(f.type)] + [
    "codes.list.element.code", "codes.list.element.type"]
# Min/max and null-count statistics only where a reader can skip row groups with them: the keys
# dbt and the checks select a hospital or version by, the row order, the item's description and
# primary code, payer_name / value_text (``IS NULL`` filters; item-level rows are written last,
# in row groups of their own) and the numbers. The others (the code list, plan, methodology,
# setting, header constants, notes) are mixed within every row group, so their statistics prune
# nothing; computing them was ~15 % of the write CPU (2.6 M-row tall file: 1.68 -> 1.42 CPU-s).
_STATISTICS_COLUMNS = ["hospital_key", "file_sha256", "source_row", "source_path", "last_updated_on", "description",
                       "drug_unit_of_measurement", "primary_code", "payer_name", "charge_kind", "amount",
                       "percentage", "value_text"]
# How the published prices Parquet is written (also when history.py concatenates versions).
WRITER_OPTIONS = {"compression": "zstd", "use_dictionary": _DICTIONARY_COLUMNS,
                  "write_statistics": _STATISTICS_COLUMNS}


def normalize_to_prices(parsed: list[ParsedInput], out_path: str | os.PathLike, *, hospital_key: str,
                        memory_limit: str = "256MB", metadata: dict[bytes, bytes] | None = None) -> int:
    """Write PRICES_SCHEMA Parquet at ``out_path`` for all given parsed files of one hospital.

    ``parsed`` holds ``(parsed_parquet_path, header_dict, file_sha256)`` tuples. Returns the
    number of rows written (the file is always written, empty when there is nothing).
    ``memory_limit`` bounds DuckDB's part (the item-level de-duplication); beyond it DuckDB
    spills to a temporary directory. ``metadata`` is added to the file's Parquet schema metadata.
    """
    out_path = os.fspath(out_path)
    total = 0
    schema = PRICES_SCHEMA.with_metadata(metadata) if metadata else PRICES_SCHEMA
    with pq.ParquetWriter(out_path, schema, **WRITER_OPTIONS) as parquet_writer:
        if not parsed:
            return 0
        writer = _BackgroundWriter(parquet_writer)
        try:
            total = _normalize(parsed, writer, hospital_key=hospital_key, memory_limit=memory_limit)
        finally:
            writer.close()
    return total


def _normalize(parsed: list[ParsedInput], writer: _BackgroundWriter, *, hospital_key: str, memory_limit: str) -> int:
    """The whole pass: payer rows to ``writer`` batch by batch, item rows after the last batch."""
    total = 0
    with tempfile.TemporaryDirectory(prefix="pp-normalize-") as tmp:
        con = _LazyDuckDB({"memory_limit": memory_limit, "preserve_insertion_order": False,
                           "temp_directory": tmp, "threads": max(1, min(2, os.cpu_count() or 1))})
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pp-normalize")
        try:
            cleaner = CodeCleaner(con)
            cleaner.prepare([os.fspath(path) for path, _, _ in parsed])
            spill_path = os.path.join(tmp, "items.parquet")
            spill: pq.ParquetWriter | None = None
            headers = []
            for path, header, sha in parsed:
                header = header or {}
                consts = {
                    "hospital_key": hospital_key,
                    "hospital_name": header.get("hospital_name"),
                    "last_updated_on": parse_date(header.get("last_updated_on")),
                    "template_version": header.get("version"),
                }
                file_idx = len(headers)
                headers.append({"file_idx": file_idx, **consts})
                def process(batch, consts=consts, sha=sha, file_idx=file_idx):
                    codes, codes_key, primary_code, primary_type = cleaner.clean(batch.column("codes"))
                    sha_col = pc.coalesce(batch.column("file_sha256"), _str_scalar(sha))
                    extra = {"codes": codes, "primary_code": primary_code, "primary_code_type": primary_type,
                             "sha": sha_col}
                    return _payer_rows(batch, extra, consts), _item_partials(batch, extra, codes_key, file_idx)

                pending: collections.deque = collections.deque()
                batches = pq.ParquetFile(os.fspath(path)).iter_batches(batch_size=BATCH_ROWS)
                for batch in itertools.chain(batches, [None]):
                    if batch is not None and batch.num_rows:
                        pending.append(pool.submit(process, batch))
                    # Two batches in flight (one per core); the rest waits in the file.
                    while pending and (len(pending) >= WORKERS or batch is None):
                        payer, partial = pending.popleft().result()
                        if payer is not None:
                            writer.write_table(payer)
                            total += payer.num_rows
                        if partial is not None and partial.num_rows:
                            if spill is None:
                                spill = pq.ParquetWriter(spill_path, partial.schema, **_SPILL_OPTIONS)
                            spill.write_table(partial.cast(spill.schema))
            if spill is not None:
                spill.close()
                total += _write_items(con, spill_path, headers, writer)
        finally:
            pool.shutdown(cancel_futures=True)
            con.close()
    return total


# Columns that must be equal for a row to continue the previous row's run in stage 1.
_RUN_STRINGS = ("sha", "description", "codes_key", "setting", "billing_class", "modifiers",
                "drug_type_of_measurement", "additional_generic_notes")
_RUN_FLOATS = ("drug_unit_of_measurement", "gross_charge", "discounted_cash", "minimum", "maximum")


def _same_as_previous(arr: pa.Array) -> np.ndarray:
    """eq[i] for i >= 1: row i equals row i-1 (NULL equals NULL; floats compared bit for bit)."""
    valid = bool_to_numpy(arr.is_valid())
    if pa.types.is_floating(arr.type):
        bits = np.ascontiguousarray(_float_to_numpy(arr)).view(np.int64)
        eq = bits[1:] == bits[:-1]
    else:
        eq = bool_to_numpy(pc.equal(arr.slice(1), arr.slice(0, len(arr) - 1)))  # NULL -> False
    return (eq & valid[1:] & valid[:-1]) | (~valid[1:] & ~valid[:-1])


def _item_partials(batch: pa.RecordBatch, extra: dict, codes_key: pa.Array, file_idx: int) -> pa.Table | None:
    """Stage 1: the batch's rows carrying item-level charges, with runs of identical items merged.

    A tall file repeats an item's gross / cash / min / max on each of its payer rows, one after
    the other: consecutive rows with the same item identity, the same four values and the same
    notes collapse into their first row, carrying the run's smallest source_row, source_path
    and notes lineage key — exactly what stage 2's GROUP BY needs, on far fewer rows.
    """
    n = batch.num_rows
    present = np.zeros(n, bool)
    for _, column in ITEM_KINDS:
        present |= bool_to_numpy(batch.column(column).is_valid())
    if not present.any():
        return None
    cols = {
        "sha": extra["sha"], "description": batch.column("description"), "codes_key": codes_key,
        "setting": batch.column("setting"), "billing_class": batch.column("billing_class"),
        "modifiers": batch.column("modifiers"),
        "drug_unit_of_measurement": batch.column("drug_unit_of_measurement"),
        "drug_type_of_measurement": batch.column("drug_type_of_measurement"),
        "additional_generic_notes": batch.column("additional_generic_notes"),
        **{column: batch.column(column) for _, column in ITEM_KINDS},
    }
    rows = np.flatnonzero(present)
    take = from_numpy(rows)
    picked = {name: arr.take(take) if len(rows) < n else arr for name, arr in cols.items()}
    m = len(rows)
    cont = np.ones(max(m - 1, 0), bool)
    cont &= np.diff(rows) == 1  # only physically adjacent rows form a run
    for name in _RUN_STRINGS + _RUN_FLOATS:
        column = picked[name]
        if m > 1 and cont.any() and column.null_count < m:  # an all-NULL column splits no run
            cont &= _same_as_previous(column)
    starts = np.flatnonzero(np.concatenate([[True], ~cont]))

    source_row = batch.column("source_row").take(take)
    source_path = batch.column("source_path").take(take)
    lineage = pc.coalesce(pc.cast(source_row, pa.string()), source_path)
    notes_key = pc.if_else(picked["additional_generic_notes"].is_valid(), lineage, NULL_STR)

    first = from_numpy(rows[starts])
    starts_arr = from_numpy(starts)
    out = {name: arr.take(starts_arr) for name, arr in picked.items()}
    out.update({
        "file_idx": from_numpy(np.full(len(starts), file_idx, np.int32)),
        # A hash of the item identity: stage 2 sends only the rows whose hash occurs more than
        # once to the GROUP BY, and runs in passes over parts of them (equal identities share a part).
        "ident": from_numpy(ident := _identity_hash(out)),
        "part": from_numpy(ident % _PART_MODULUS),
        "source_row": _run_min(source_row, starts),
        "source_path": _run_min(source_path, starts),
        "notes_key": _run_min(notes_key, starts),
        "codes": extra["codes"].take(first),
        "primary_code": extra["primary_code"].take(first),
        "primary_code_type": extra["primary_code_type"].take(first),
    })
    return pa.table(out)


def _run_min(values: pa.Array, starts: np.ndarray) -> pa.Array:
    """Per run (the rows from each start to the next), the smallest non-NULL value, NULL if it
    has none: a hash aggregate's ``min`` over contiguous groups (Arrow's ``group_by`` imports
    pyarrow.dataset and with it pandas). Strings compare byte by byte, as in DuckDB's ``min``."""
    n = len(values)
    if len(starts) == n or values.null_count == n:  # runs of one row, or nothing to compare
        return values.take(from_numpy(starts))
    # Dense ranks (NULLs rank last by default, so a run's minimum is NULL only when all of it is), then the
    # first row of the smallest rank in each run.
    rank = int_to_numpy(pc.rank(values, sort_keys="ascending", tiebreaker="dense")).astype(np.int64)
    best = np.minimum.reduceat((rank << 32) | np.arange(n, dtype=np.int64), starts)
    return values.take(from_numpy(best & 0xFFFFFFFF))


_PART_MODULUS = 1 << 20
_IDENTITY_STRINGS = ("sha", "description", "codes_key", "setting", "billing_class", "modifiers",
                     "drug_type_of_measurement")


def _identity_hash(cols: dict[str, pa.Array]) -> np.ndarray:
    """A 63-bit hash of each row's item identity (equal identities, equal hashes; a collision
    only sends a row through the GROUP BY it could have skipped)."""
    joined = pc.binary_join_element_wise(*(pc.fill_null(cols[name], EMPTY_STR) for name in _IDENTITY_STRINGS),
                                         _NEWLINE)
    hashes = _string_hash(joined).astype(np.uint64)
    # Drug units: -0.0 and 0.0 (and every NaN) hash alike, whatever the GROUP BY makes of them.
    unit = _float_to_numpy(cols["drug_unit_of_measurement"])
    unit = np.ascontiguousarray(np.where(np.isnan(unit), np.nan, unit + 0.0))
    with np.errstate(over="ignore"):
        hashes = hashes * np.uint64(1099511628211) + unit.view(np.uint64)
    return (hashes >> np.uint64(1)).astype(np.int64)


def _string_hash(arr: pa.Array) -> np.ndarray:
    """A deterministic 64-bit polynomial hash of each string (NULL -> 0), vectorised with numpy."""
    arr = arr.cast(pa.large_string()) if not isinstance(arr, pa.LargeStringArray) else arr
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.int64)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64, n + 1, arr.offset * 8)
    start, end = offsets[:-1], offsets[1:]
    data = np.frombuffer(data_buf, np.uint8, int(end[-1]) - 0) if data_buf is not None else np.zeros(0, np.uint8)
    data = data[int(start[0]):int(end[-1])].astype(np.uint64)
    lengths = end - start
    if not len(data):
        return np.zeros(n, np.int64)
    parent = np.repeat(np.arange(n), lengths)
    position = np.arange(len(data)) - np.repeat(start - start[0], lengths)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(int(lengths.max()), 1099511628211, np.uint64))  # FNV prime powers
        terms = (data + np.uint64(1)) * powers[position]
        hashes = np.zeros(n, np.uint64)
        np.add.at(hashes, parent, terms)
    hashes[~bool_to_numpy(arr.is_valid())] = 0
    return (hashes >> np.uint64(1)).astype(np.int64)


def _write_items(con: _LazyDuckDB, spill_path: str, headers: list[dict], writer) -> int:
    """Stage 2: the final item-level rows, into ``writer``.

    A spilled row whose identity hash occurs once in the spill is an item of its own: its rows
    are written as they are (no GROUP BY can merge it with anything). Only the rows with a
    repeated hash (an item cut by a batch end, repeated far apart, or a hash collision) go
    through DuckDB's GROUP BY (:func:`_aggregate_items`): a file's items are mostly unique, so
    that is a small share of the spill."""
    ident = int_to_numpy(pq.ParquetFile(spill_path).read(columns=["ident"]).column(0))  # not read_table: pyarrow.dataset imports pandas
    values, counts = np.unique(ident, return_counts=True)
    repeated = values[counts > 1]
    del ident, values, counts
    header = _headers_table(headers)
    dups_path = spill_path + ".repeated.parquet"
    dups: pq.ParquetWriter | None = None
    total = 0
    try:
        for batch in pq.ParquetFile(spill_path).iter_batches(batch_size=ITEM_BATCH_ROWS):
            is_dup = np.isin(int_to_numpy(batch.column("ident")), repeated)
            if is_dup.any():
                if dups is None:
                    dups = pq.ParquetWriter(dups_path, batch.schema, **_SPILL_OPTIONS)
                dups.write_batch(batch.filter(from_numpy(is_dup)))
                batch = batch.filter(from_numpy(~is_dup))
            if batch.num_rows:
                table = _single_item_rows(batch, header)
                if table.num_rows:
                    writer.write_table(table)
                    total += table.num_rows
    finally:
        if dups is not None:
            dups.close()
    if dups is not None:
        total += _aggregate_items(con.get(), dups_path, headers, writer)
    return total


_HEADERS_SCHEMA = pa.schema([("file_idx", pa.int32()), ("hospital_key", pa.string()), ("hospital_name", pa.string()),
                             ("last_updated_on", pa.date32()), ("template_version", pa.string())])


def _headers_table(headers: list[dict]) -> pa.Table:
    """The per-file constants, by ``file_idx`` (``pa.Table.from_pylist`` without pandas)."""
    return pa.table([
        from_numpy(np.array([h["file_idx"] for h in headers], np.int32)),
        str_array([h["hospital_key"] for h in headers]),
        str_array([h["hospital_name"] for h in headers]),
        date_array([h["last_updated_on"] for h in headers]),
        str_array([h["template_version"] for h in headers]),
    ], schema=_HEADERS_SCHEMA)


def _single_item_rows(batch: pa.RecordBatch, header: pa.Table) -> pa.Table:
    """The item-level rows of spilled rows that are items of their own, as :data:`_ITEMS_FINAL`
    would write them: one row per present kind, the row's lineage and notes (a stage-1 run has
    one notes value, and its notes key is NULL exactly when the notes are)."""
    file_idx = batch.column("file_idx")
    parts = []
    for kind, column in ITEM_KINDS:
        val = batch.column(column)
        if val.null_count == len(val):
            continue
        idx = from_numpy(np.flatnonzero(bool_to_numpy(val.is_valid())))
        n = len(idx)
        files = file_idx.take(idx)
        cols = {
            "file_sha256": batch.column("sha").take(idx),
            # As published, -0.0 included (the GROUP BY key keeps it; only payer amounts lose it).
            "amount": val.take(idx),
            "charge_kind": repeat_str(kind, n),
        }
        for name in ("hospital_key", "hospital_name", "last_updated_on", "template_version"):
            cols[name] = header.column(name).take(files)
        for name in ("source_row", "source_path", "description", "setting", "billing_class", "modifiers",
                     "drug_unit_of_measurement", "drug_type_of_measurement", "primary_code", "primary_code_type",
                     "codes", "additional_generic_notes"):
            cols[name] = batch.column(name).take(idx)
        parts.append(pa.table([cols[f.name].cast(f.type) if f.name in cols else pa.nulls(n, f.type)
                               for f in PRICES_SCHEMA], schema=PRICES_SCHEMA))
    return pa.concat_tables(parts) if parts else empty_table(PRICES_SCHEMA)


def _aggregate_items(con: duckdb.DuckDBPyConnection, spill_path: str, headers: list[dict], writer) -> int:
    """The item-level rows of spilled rows whose identity repeats, streamed from DuckDB into ``writer``.

    DuckDB does not spill this aggregate (list payload) to disk, so it runs in passes of about
    :data:`SPILL_ROWS_PER_PASS` spilled rows each, over disjoint parts of the items."""
    con.register("pp_headers", _headers_table(headers))
    total = 0
    try:
        passes = max(1, math.ceil(pq.ParquetFile(spill_path).metadata.num_rows / SPILL_ROWS_PER_PASS))
        for number in range(passes):
            params = {"spill": spill_path, "passes": passes, "pass": number}
            reader = con.sql(_ITEMS_FINAL, params=params).to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                t = pa.Table.from_batches([batch]).select(PRICES_SCHEMA.names).cast(PRICES_SCHEMA)
                writer.write_table(t)
                total += t.num_rows
    finally:
        con.unregister("pp_headers")
    return total
