"""One ``standard_charge_information`` item of a JSON MRF as Arrow, and its vectorised flattening.

:data:`ITEM_FULL_T` is the nested type ``pyarrow.json`` and ``pa.array`` produce for an item;
:func:`flatten_items` turns a batch of them into ``PARSED_SCHEMA`` rows (one per payer record, or
one per standard charge without payers). The chunked reader (:mod:`.json_chunks`) and the
sequential one (:mod:`.json_reader`) share it and the column maps below.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from price_pipeline.lib.lake.schemas import CODES_TYPE, PARSED_SCHEMA

from .values import (
    EMPTY_STR,
    FALSE,
    bool_to_numpy,
    clean_text,
    from_numpy,
    int_to_numpy,
    repeat_str,
    str_array,
)

_S, _F = pa.string(), pa.float64()
_PAYER_T = pa.struct([
    ("payer_name", _S), ("plan_name", _S), ("standard_charge_dollar", _F), ("standard_charge_percentage", _F),
    ("standard_charge_algorithm", _S), ("estimated_amount", _F), ("median_amount", _F),
    ("10th_percentile", _F), ("90th_percentile", _F), ("count", _S), ("methodology", _S),
    ("additional_payer_notes", _S),
])
_SC_T = pa.struct([
    ("setting", _S), ("billing_class", _S), ("modifier_code", pa.list_(_S)), ("gross_charge", _F),
    ("discounted_cash", _F), ("minimum", _F), ("maximum", _F), ("additional_generic_notes", _S),
])
_ITEM_T = pa.struct([
    ("description", _S), ("code_information", CODES_TYPE),
    ("drug_information", pa.struct([("unit", _F), ("type", _S)])),
])
_SC_FULL_T = pa.struct(list(_SC_T) + [pa.field("payers_information", pa.list_(_PAYER_T))])
# One standard_charge_information item, nested (what pyarrow.json and pa.array produce).
ITEM_FULL_T = pa.struct(list(_ITEM_T) + [pa.field("standard_charges", pa.list_(_SC_FULL_T))])
NINES = 999_999_999
_NINES_F64 = from_numpy(np.array([float(NINES)]))[0]
_PIPE, _S_SCI, _S_SC, _S_CLOSE, _S_PAYERS = (
    str_array(["|", "standard_charge_information[", "].standard_charges[", "]", ".payers_information["]))


def _idx_str(a: np.ndarray) -> pa.Array:
    return from_numpy(a).cast(pa.string())


def _nines_rows(vals: pa.Array) -> list[int]:
    mx = pc.max(vals).as_py()
    if mx is None or mx < NINES:
        return []
    return int_to_numpy(pc.indices_nonzero(pc.fill_null(pc.greater_equal(vals, _NINES_F64), FALSE))).tolist()


def flatten_items(items: pa.StructArray, gidx: np.ndarray, sha: str | None):
    """Flatten ``items`` (ITEM_FULL_T; item ``i`` has global index ``gidx[i]``) into PARSED_SCHEMA rows.

    Pure Arrow (no per-row Python), so it runs in worker threads. Returns ``(table, nines)``
    where ``nines`` lists ``(path, json_key)`` of 999999999-style amounts (reported once per
    JSON value, like the per-row path), or ``None`` when the batch needs the per-row path
    (items without charges, null list entries, modifier lists needing cleaning).
    """
    n_items = len(items)
    scl = items.field("standard_charges")
    if items.null_count or scl.null_count or (n_items and pc.min(pc.list_value_length(scl)).as_py() == 0):
        return None
    sc = pc.list_flatten(scl)
    if sc.null_count:
        return None
    sc_item = int_to_numpy(pc.list_parent_indices(scl))
    nsc = len(sc)
    lens_sc = int_to_numpy(pc.list_value_length(scl)).astype(np.int64)
    sc_start = np.cumsum(lens_sc) - lens_sc
    sc_j = np.arange(nsc, dtype=np.int64) - sc_start[sc_item]
    pl = sc.field("payers_information")
    lens = int_to_numpy(pc.list_value_length(pl)).astype(np.int64)
    payers = pc.list_flatten(pl)
    if payers.null_count:
        return None
    codes_l = items.field("code_information")
    code_vals = pc.list_flatten(codes_l)
    if code_vals.null_count:
        return None
    mods = sc.field("modifier_code")
    if mods.null_count < len(mods):
        mflat = pc.list_flatten(mods)
        if mflat.null_count or (len(mflat) and not pc.all(pc.and_(
                pc.equal(pc.utf8_trim_whitespace(mflat), mflat), pc.not_equal(mflat, EMPTY_STR))).as_py()):
            return None
    counts = np.maximum(lens, 1)
    n = int(counts.sum())
    row_sc = np.repeat(np.arange(nsc, dtype=np.int64), counts)
    row_start = np.cumsum(counts) - counts
    row_k = np.arange(n, dtype=np.int64) - row_start[row_sc]
    p_start = np.cumsum(lens) - lens
    no_payer = lens[row_sc] == 0
    item_idx = sc_item[row_sc]
    # Take only the flat fields (taking the nested structs would copy every item's charges per row).
    item_take = from_numpy(item_idx)
    it_rows = pa.StructArray.from_arrays([items.field(f.name) for f in _ITEM_T], fields=list(_ITEM_T),
                                         mask=None).take(item_take)
    sc_rows = pa.StructArray.from_arrays([sc.field(f.name) for f in _SC_T], fields=list(_SC_T)).take(from_numpy(row_sc))
    p_idx = np.where(no_payer, 0, p_start[row_sc] + row_k)
    p_rows = payers.take(from_numpy(p_idx, mask=no_payer)) if len(payers) else pa.nulls(n, _PAYER_T)
    # Codes: trimmed, empty -> null, an empty list -> null (as the per-row path does).
    code_clean = pa.StructArray.from_arrays(
        [clean_text(code_vals.field("code")), clean_text(code_vals.field("type"))], fields=list(CODES_TYPE.value_type))
    clen = pc.list_value_length(codes_l)
    clen_np = int_to_numpy(clen)
    cnull = bool_to_numpy(pc.is_null(clen)) | (clen_np == 0)
    offs = np.zeros(n_items + 1, dtype=np.int32)
    np.cumsum(clen_np, out=offs[1:])
    codes_items = pa.ListArray.from_arrays(from_numpy(offs), code_clean, mask=from_numpy(cnull))
    out = {}
    out["description"] = clean_text(pc.struct_field(it_rows, "description"))
    out["codes"] = codes_items.take(item_take)
    drug = pc.struct_field(it_rows, "drug_information")
    out["drug_unit_of_measurement"] = pc.struct_field(drug, "unit")
    out["drug_type_of_measurement"] = clean_text(pc.struct_field(drug, "type"))
    for f in ("setting", "billing_class", "additional_generic_notes"):
        out[f] = clean_text(pc.struct_field(sc_rows, f))
    out["modifiers"] = clean_text(pc.binary_join(pc.struct_field(sc_rows, "modifier_code"), _PIPE))
    for src, dst in _CHARGE_NUM:
        out[dst] = pc.struct_field(sc_rows, src)
    out["payer_name"] = clean_text(pc.struct_field(p_rows, "payer_name"))
    out["plan_name"] = clean_text(pc.struct_field(p_rows, "plan_name"))
    for src, dst in _PAYER_NUM:
        out[dst] = pc.struct_field(p_rows, src)
    for src, dst in _PAYER_TXT:
        out[dst] = clean_text(pc.struct_field(p_rows, src))
    gi = gidx[item_idx]
    sci_path = pc.binary_join_element_wise(
        _S_SCI, _idx_str(gi), _S_SC, _idx_str(sc_j[row_sc]), _S_CLOSE, EMPTY_STR)
    payer_path = pc.binary_join_element_wise(sci_path, _S_PAYERS, _idx_str(row_k), _S_CLOSE, EMPTY_STR)
    out["source_path"] = pc.if_else(from_numpy(no_payer), sci_path, payer_path)
    # 999999999-style amounts: once per JSON value (item, charge or payer object).
    nines: list[tuple[str, str]] = []
    unit = pc.struct_field(items.field("drug_information"), "unit")
    for r in _nines_rows(unit):
        nines.append((f"standard_charge_information[{gidx[r]}]", "drug_information.unit"))
    for src, _dst in _CHARGE_NUM:
        for r in _nines_rows(sc.field(src)):
            nines.append((f"standard_charge_information[{gidx[sc_item[r]]}].standard_charges[{sc_j[r]}]", src))
    for src, dst in _PAYER_NUM:
        for r in _nines_rows(out[dst]):
            if not no_payer[r]:
                nines.append((out["source_path"][r].as_py(), src))
    arrays = []
    for f in PARSED_SCHEMA:
        if f.name == "file_sha256":
            arrays.append(repeat_str(sha, n))
        elif f.name == "source_row":
            arrays.append(pa.nulls(n, pa.int64()))
        else:
            a = out.get(f.name)
            arrays.append(pa.nulls(n, f.type) if a is None else a.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=PARSED_SCHEMA), nines


def add_nines(fc, nines) -> None:
    for path, col in nines:
        fc.add("nine_nines_placeholder", "info", "999999999-style placeholder amount kept as published",
               path=path, column=col)


_PAYER_NUM = (
    ("standard_charge_dollar", "negotiated_dollar"),
    ("standard_charge_percentage", "negotiated_percentage"),
    ("estimated_amount", "estimated_amount"),
    ("median_amount", "median_amount"),
    ("10th_percentile", "percentile_10th"),
    ("90th_percentile", "percentile_90th"),
)
_PAYER_TXT = (
    ("standard_charge_algorithm", "negotiated_algorithm"),
    ("count", "count"),
    ("methodology", "methodology"),
    ("additional_payer_notes", "additional_payer_notes"),
)
_CHARGE_NUM = (("gross_charge", "gross_charge"), ("discounted_cash", "discounted_cash"),
               ("minimum", "minimum"), ("maximum", "maximum"))
