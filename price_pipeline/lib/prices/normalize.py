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
   thousands of distinct codes and millions of rows); the pairs seen are cached (up to
   :data:`CACHE_PAIRS`), each cleaned pair gets a small integer id for the batch's takes, and a
   row's cleaned code list becomes a text key of its length-prefixed cleaned values (exact: two
   lists have the same key exactly when they are equal).
   The primary code is picked with numpy over the flattened lists.
3. Payer-level rows are written straight from the batch (Arrow filter/take, no SQL).
4. Item-level rows are de-duplicated in two stages, both with DuckDB GROUP BYs over scalar
   columns (the code-list key, not the list): per batch into partial aggregates (min row,
   min path, the notes with the smallest lineage key), which are spilled to a temporary
   Parquet file, then once over the spill. The spill holds one row per distinct item and
   kind per batch — a tall file's payer repetitions collapse in the first stage — and the
   final GROUP BY runs under DuckDB's memory limit (spilling to disk beyond it).
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
from price_pipeline.lib.parse.mrf.values import parse_date

from . import codes as code_cleaning

ParsedInput = tuple[str, dict, str | None]  # (parsed_parquet_path, header_dict, file_sha256)

CODE_PRIORITY = ["CPT", "HCPCS", "MS-DRG", "APR-DRG", "*DRG", "NDC", "CDT", "RC", "*", "LOCAL"]

# Rows per batch read from the parsed Parquet: large enough to amortise per-batch work, small
# enough that a batch and its derived arrays stay in the tens of MB.
BATCH_ROWS = 64 * 1024
# Distinct raw (code, type) pairs kept cleaned between batches; beyond it the cache starts over
# (it only saves work: keys are built from the cleaned values, not from cache ids).
CACHE_PAIRS = 50_000
# Spilled item runs aggregated per DuckDB pass (about 256 MB of DuckDB memory at most here).
SPILL_ROWS_PER_PASS = 100_000
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


def _key_part(value: str | None) -> str:
    """One field of a code-list key: ``-`` for NULL, else ``<length>:<value>``."""
    return "-" if value is None else f"{len(value)}:{value}"


class CodeCleaner:
    """Cleans ``(code, type)`` pairs once per distinct pair, with the SQL macros of :mod:`codes`.

    ``clean(codes_list_array)`` returns the cleaned list array, a per-row text key of the
    cleaned list (equal keys <=> equal lists) and the primary code / type per row.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self._raw: dict[tuple[str | None, str | None], int] = {}  # raw pair -> cleaned pair id
        self._ids: dict[tuple[str | None, str | None], int] = {}  # cleaned pair -> id
        self._codes: list[str | None] = []  # by cleaned pair id
        self._types: list[str | None] = []
        self._prio: list[int] = []
        self._keys: list[str] = []  # the pair's part of a code-list key (see clean)
        self._tables: tuple[pa.Array, pa.Array, np.ndarray, pa.Array] | None = None  # Arrow views of the lists
        # Batches are cleaned by two threads: the caches and the DuckDB connection are shared.
        self._lock = threading.Lock()

    def _clean_new(self, pairs: list[tuple[str | None, str | None]]) -> None:
        table = pa.table({"code": pa.array([p[0] for p in pairs], pa.string()),
                          "type": pa.array([p[1] for p in pairs], pa.string())})
        self._con.register("pp_pairs", table)
        try:
            # Rows come back in any order (no insertion order): each carries its raw pair.
            # pp_code_rank: well-formed codes first, then type priority (lib/prices/codes.py).
            rows = self._con.execute(
                "SELECT code, type, clean_code, clean_type, pp_code_rank(clean_code, clean_type) FROM ("
                " SELECT code, type, pp_clean_code(code, type) AS clean_code, pp_clean_code_type(type) AS clean_type"
                " FROM pp_pairs)"
            ).fetchall()
        finally:
            self._con.unregister("pp_pairs")
        cleaned = {(code, typ): (clean_code, clean_type) for code, typ, clean_code, clean_type, _ in rows}
        rank = {(clean_code, clean_type): r for _, _, clean_code, clean_type, r in rows}
        for raw in pairs:
            out = cleaned[raw]
            pid = self._ids.get(out)
            if pid is None:
                pid = self._ids[out] = len(self._codes)
                self._codes.append(out[0])
                self._types.append(out[1])
                self._prio.append(_NO_CODE if out[0] is None else int(rank[out]))
                self._keys.append(_key_part(out[1]) + _key_part(out[0]))
            self._raw[raw] = pid
        self._tables = None

    def _lookup(self, raw_pairs: list[tuple[str | None, str | None]]) -> tuple[np.ndarray, pa.Array, pa.Array, np.ndarray]:
        """Cleaned pair ids of ``raw_pairs`` (cleaning the new ones) and the id -> code/type/priority tables."""
        with self._lock:
            if len(self._raw) > CACHE_PAIRS:  # bounded: files with millions of distinct codes exist
                self._raw, self._ids, self._codes, self._types, self._prio, self._keys = {}, {}, [], [], [], []
                self._tables = None
            new = [p for p in dict.fromkeys(raw_pairs) if p not in self._raw]
            if new:
                self._clean_new(new)
            pair_ids = np.fromiter((self._raw[p] for p in raw_pairs), dtype=np.int64, count=len(raw_pairs))
            if self._tables is None:
                self._tables = (pa.array(self._codes, pa.string()), pa.array(self._types, pa.string()),
                                np.asarray(self._prio, np.int64), pa.array(self._keys, pa.string()))
            return (pair_ids, *self._tables)

    def clean(self, codes: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
        n = len(codes)
        parents = pc.list_parent_indices(codes).to_numpy(zero_copy_only=False)
        elements = pc.list_flatten(codes)
        if isinstance(elements, pa.ChunkedArray):
            elements = elements.combine_chunks()
        code_arr = pc.struct_field(elements, [0])
        type_arr = pc.struct_field(elements, [1])
        # distinct raw pairs of the batch, via dictionary indices (nulls get their own index)
        cd = pc.dictionary_encode(code_arr, null_encoding="encode")
        td = pc.dictionary_encode(type_arr, null_encoding="encode")
        ci = cd.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        ti = td.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        combined = ti * (len(cd.dictionary) + 1) + ci
        uniq, inverse = np.unique(combined, return_inverse=True)
        cvals = cd.dictionary.to_pylist()
        tvals = td.dictionary.to_pylist()
        raw_pairs = [(cvals[u % (len(cd.dictionary) + 1)], tvals[u // (len(cd.dictionary) + 1)]) for u in uniq.tolist()]
        pair_ids, codes_tab, types_tab, prio_tab, keys_tab = self._lookup(raw_pairs)
        elem_ids = pair_ids[inverse] if len(inverse) else np.zeros(0, np.int64)

        ids_arr = pa.array(elem_ids)
        clean_values = pa.StructArray.from_arrays(
            [codes_tab.take(ids_arr), types_tab.take(ids_arr)], fields=list(CODE_STRUCT)
        )
        counts = np.bincount(parents, minlength=n) if len(parents) else np.zeros(n, np.int64)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(counts, out=offsets[1:])
        mask = codes.is_null()
        cleaned = pa.ListArray.from_arrays(pa.array(offsets), clean_values, type=CODES_TYPE, mask=mask)

        # Row key: the cleaned pairs, each field length-prefixed (so the concatenation is
        # unambiguous without escaping); NULL for a NULL list, "" for an empty one.
        parts = pa.ListArray.from_arrays(pa.array(offsets), keys_tab.take(ids_arr), mask=mask)
        key = pc.binary_join(parts, "")

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
            take_arr = pa.array(take, mask=take < 0)
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
        idx = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
        if not len(idx):
            continue
        idx_parts.append(idx)
        kind_parts.append(pa.array([kind]).take(pa.array(np.zeros(len(idx), np.int64))))
        picked = col.take(pa.array(idx))
        if pa.types.is_floating(picked.type):
            # The SQL normaliser's VALUES list turned -0.0 into 0.0 (x + 0.0 does the same).
            picked = pc.add(picked, 0.0)
        for name in values:
            typ = PRICES_SCHEMA.field(name).type
            values[name].append(picked.cast(typ) if name == target else pa.nulls(len(idx), typ))
    if not idx_parts:
        return None
    take = pa.array(np.concatenate(idx_parts))
    n = len(take)
    cols = {
        "hospital_key": pa.repeat(consts["hospital_key"], n).cast(pa.string()),
        "file_sha256": extra["sha"].take(take),
        "hospital_name": pa.repeat(pa.scalar(consts["hospital_name"], pa.string()), n),
        "last_updated_on": pa.repeat(pa.scalar(consts["last_updated_on"], pa.date32()), n),
        "template_version": pa.repeat(pa.scalar(consts["template_version"], pa.string()), n),
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
    with pq.ParquetWriter(out_path, schema, compression="zstd") as parquet_writer:
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
        con = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False,
                                     "temp_directory": tmp, "threads": max(1, min(2, os.cpu_count() or 1))})
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="pp-normalize")
        try:
            code_cleaning.register(con)
            cleaner = CodeCleaner(con)
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
                    sha_col = pc.coalesce(batch.column("file_sha256"), pa.scalar(sha, pa.string()))
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
                                spill = pq.ParquetWriter(spill_path, partial.schema, compression="lz4")
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
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(arr.type):
        bits = np.ascontiguousarray(arr.fill_null(0.0).to_numpy(zero_copy_only=False)).view(np.int64)
        eq = bits[1:] == bits[:-1]
    else:
        eq = pc.fill_null(pc.equal(arr.slice(1), arr.slice(0, len(arr) - 1)), False).to_numpy(zero_copy_only=False)
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
        present |= batch.column(column).is_valid().to_numpy(zero_copy_only=False)
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
    take = pa.array(rows)
    picked = {name: arr.take(take) if len(rows) < n else arr for name, arr in cols.items()}
    m = len(rows)
    cont = np.ones(max(m - 1, 0), bool)
    cont &= np.diff(rows) == 1  # only physically adjacent rows form a run
    for name in _RUN_STRINGS + _RUN_FLOATS:
        if m > 1 and cont.any():
            cont &= _same_as_previous(picked[name])
    starts = np.flatnonzero(np.concatenate([[True], ~cont])) if m else np.zeros(0, np.int64)
    run_id = np.cumsum(np.concatenate([[True], ~cont])) - 1 if m else np.zeros(0, np.int64)

    source_row = batch.column("source_row").take(take)
    source_path = batch.column("source_path").take(take)
    lineage = pc.coalesce(pc.cast(source_row, pa.string()), source_path)
    notes_key = pc.if_else(picked["additional_generic_notes"].is_valid(), lineage, pa.scalar(None, pa.string()))
    agg = pa.table({"run": run_id, "source_row": source_row, "source_path": source_path, "notes_key": notes_key})
    agg = agg.group_by("run", use_threads=False).aggregate(
        [("source_row", "min"), ("source_path", "min"), ("notes_key", "min")]
    ).sort_by("run")

    first = pa.array(rows[starts])
    out = {name: arr.take(pa.array(starts)) for name, arr in picked.items()}
    out.update({
        "file_idx": pa.repeat(pa.scalar(file_idx, pa.int32()), len(starts)),
        # Stage 2 runs in passes over parts of the spill; equal identities share a part.
        "part": pa.array(_string_hash(pc.binary_join_element_wise(
            pc.fill_null(out["description"], ""), pc.fill_null(out["codes_key"], ""), "\n")) % _PART_MODULUS),
        "source_row": agg.column("source_row_min"),
        "source_path": agg.column("source_path_min"),
        "notes_key": agg.column("notes_key_min"),
        "codes": extra["codes"].take(first),
        "primary_code": extra["primary_code"].take(first),
        "primary_code_type": extra["primary_code_type"].take(first),
    })
    return pa.table(out)


_PART_MODULUS = 1 << 20


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
    hashes[~arr.is_valid().to_numpy(zero_copy_only=False)] = 0
    return (hashes >> np.uint64(1)).astype(np.int64)


def _write_items(con: duckdb.DuckDBPyConnection, spill_path: str, headers: list[dict], writer) -> int:
    """Stage 2: the final item-level rows, streamed from DuckDB into ``writer``.

    DuckDB does not spill this aggregate (list payload) to disk, so it runs in passes of about
    :data:`SPILL_ROWS_PER_PASS` spilled rows each, over disjoint parts of the items."""
    con.register("pp_headers", pa.Table.from_pylist(headers, schema=pa.schema([
        ("file_idx", pa.int32()), ("hospital_key", pa.string()), ("hospital_name", pa.string()),
        ("last_updated_on", pa.date32()), ("template_version", pa.string())])))
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
