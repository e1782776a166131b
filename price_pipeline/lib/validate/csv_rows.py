"""The data-row rules of a CSV MRF, vectorised: ``pyarrow.compute`` / numpy masks, one pass per
rule, never a Python loop over cells; only the findings that are kept (the first N) are formatted
(official ``buildRowValidators``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from price_pipeline.lib.parse.mrf.values import bool_to_numpy, from_numpy, str_array

from .csv_header import CsvLayout
from .csv_messages import MSG, PAYER_SUFFIX, allowed_msg, notes_msg, pct_msg, required_msg
from .report import ReportCollector
from .rules import (
    BILLING_CODE_TYPES_V2,
    BILLING_CODE_TYPES_V3,
    DRUG_UNITS,
    METHODOLOGIES,
    SETTINGS,
    csv_cell,
    vkey,
)

NUM_RE = r"^(?:\d+(?:\.\d*)?|\.\d+)$"
_COUNT_RE = r"^(1[1-9]|[2-9]\d+|[1-9]\d{2,})$"
_NINES_RE = r"^\+?0*999999999(?:\.0*)?$"

# Masks, index arrays, sets and scalars are built from buffers (lib.parse.mrf.values): ``pa.array``,
# ``pa.scalar`` (also the implicit one when a Python value is given to a ``pyarrow.compute``
# function) and ``Array.to_numpy`` import pandas, ~0.2 CPU-s of every hospital run's
# conformance step (and ~1.3 s where bytecode is not cached) that nothing else in the run needs.
_COUNT_WORDS = str_array(["0", "1 through 10"])


def _str_scalar(text: str) -> pa.Scalar:
    return str_array([text])[0]


def _int_scalar(value: int) -> pa.Scalar:
    return from_numpy(np.array([value], dtype=np.int32))[0]


def _nonempty(a) -> np.ndarray:
    return bool_to_numpy(pc.greater(pc.binary_length(a), _int_scalar(0)))


def _offsets_data(a):
    """Offsets (int32, this array's slice) and data bytes (numpy) of a string array without nulls."""
    bufs = a.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int32, count=len(a) + 1, offset=a.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and len(bufs[2]) else np.zeros(1, np.uint8)
    return offs, data


def trim(a):
    """``utf8_trim_whitespace``, skipped when no value starts or ends with a byte that could be
    whitespace (ASCII <= 0x20 or DEL, or any non-ASCII byte): most columns of most files."""
    if a.type != pa.string() or a.null_count or len(a) == 0:
        return pc.utf8_trim_whitespace(a)
    offs, data = _offsets_data(a)
    lens = offs[1:] - offs[:-1]
    ne = lens > 0
    if not ne.any():
        return a
    first = data[offs[:-1][ne]]
    last = data[offs[1:][ne] - 1]
    if ((first <= 0x20) | (first >= 0x7F)).any() or ((last <= 0x20) | (last >= 0x7F)).any():
        return pc.utf8_trim_whitespace(a)
    return a


_NUMERIC_BYTE = np.zeros(256, dtype=bool)
_NUMERIC_BYTE[list(b"0123456789.")] = True


def positive_mask(a) -> np.ndarray:
    """Per value: matches ``^(?:\\d+(?:\\.\\d*)?|\\.\\d+)$`` and has a digit 1-9 (a positive number as the
    official validator writes it). Fast path when every byte of the column is a digit or ``.``."""
    if a.type == pa.string() and not a.null_count and len(a):
        offs, data = _offsets_data(a)
        lo, hi = int(offs[0]), int(offs[-1])
        if hi > lo and _NUMERIC_BYTE[data[lo:hi]].all():
            # only digits and dots: one dot at most, a digit, and not only zeros
            ok = bool_to_numpy(pc.less_equal(pc.count_substring(a, "."), _int_scalar(1)))
            lens = offs[1:] - offs[:-1]
            ne = lens > 0
            first = np.zeros(len(a), dtype=np.uint8)
            first[ne] = data[offs[:-1][ne]]
            zeroish = np.flatnonzero(ne & ((first == 0x30) | (first == 0x2E)))
            if len(zeroish):  # leading zero or dot: is there a non-zero digit?
                sub = a.take(from_numpy(zeroish))
                nz = pc.greater(pc.binary_length(pc.utf8_ltrim(sub, characters="0.")), _int_scalar(0))
                ok[zeroish] &= bool_to_numpy(nz)
            return ok & ne
    ok = pc.and_(pc.match_substring_regex(a, NUM_RE), pc.match_substring_regex(a, "[1-9]"))
    return bool_to_numpy(ok)


class RowChecker:
    """Vectorised data-row rules for one layout and version (official buildRowValidators)."""

    def __init__(self, layout: CsvLayout, rc: ReportCollector):
        self.L = layout
        self.rc = rc
        v = vkey(layout.version)
        self.v = v
        self.codes = BILLING_CODE_TYPES_V3 if v >= (3, 0, 0) else BILLING_CODE_TYPES_V2
        self._sets = {}

    # -- per batch helpers --------------------------------------------------------------
    def _arr(self, label):
        a = self._cache_arr.get(label)
        if a is None:
            idx = self.L.label_index.get(label)
            if idx is None:
                return None
            a = trim(self._cols[idx])
            self._cache_arr[label] = a
        return a

    def _lower(self, label):
        a = self._cache_lower.get(label)
        if a is None:
            a = self._cache_lower[label] = pc.utf8_lower(self._arr(label))
        return a

    def present(self, label) -> np.ndarray:
        m = self._cache_present.get(label)
        if m is None:
            a = self._arr(label)
            m = np.zeros(self.n, dtype=bool) if a is None else _nonempty(a)
            self._cache_present[label] = m
        return m

    def value(self, label, i) -> str:
        a = self._arr(label)
        return "" if a is None else a[int(i)].as_py()

    def col_index(self, label) -> int:
        return self.L.label_index.get(label, -1)

    def col_name(self, label) -> str:
        idx = self.col_index(label)
        return (self.L.data_columns[idx] or "") if idx > -1 else ""

    def emit(self, rule, mask, label, msg):
        """Count ``mask`` rows for ``rule``; keep candidate findings while there is room."""
        if mask is None:
            return
        k = int(np.count_nonzero(mask))
        if not k:
            return
        self.rc.count(rule, k)
        room = self.rc.room
        if not room:
            return
        idx = np.flatnonzero(mask)[:room]
        order = self._order
        self._order += 1
        ci = self.col_index(label) if isinstance(label, str) else -1
        colname = self.col_name(label) if isinstance(label, str) else None
        for i in idx:
            row = int(self.rows[i])
            text = msg(i) if callable(msg) else msg
            self._cands.append((row, order, rule, text, colname or None, csv_cell(row - 1, ci)))

    def _lower_in(self, label, allowed) -> np.ndarray:
        key = (label, allowed)
        a = self._arr(label)
        if a is None:
            return np.zeros(self.n, dtype=bool)
        sets = self._sets.get(allowed)
        if sets is None:
            low = [x.lower() for x in allowed]
            # exact match with an allowed value as written or in lower case implies a case-insensitive match
            sets = self._sets[allowed] = (str_array(low), str_array(sorted(set(low) | set(allowed))))
        r = self._cache_in.get(key)
        if r is None:
            r = bool_to_numpy(pc.is_in(a, value_set=sets[1]))
            if not r.all():
                r = bool_to_numpy(pc.is_in(self._lower(label), value_set=sets[0]))
            self._cache_in[key] = r
        return r

    def _eq(self, label, text) -> np.ndarray:
        a = self._arr(label)
        if a is None:
            return np.zeros(self.n, dtype=bool)
        return bool_to_numpy(pc.equal(a, _str_scalar(text)))

    def _ieq(self, label, text) -> np.ndarray:
        a = self._arr(label)
        if a is None:
            return np.zeros(self.n, dtype=bool)
        # only values of the right length can match: lower-case just those when there are any
        cand = pc.equal(pc.binary_length(a), _int_scalar(len(text.encode())))
        if not pc.any(cand).as_py():
            return np.zeros(self.n, dtype=bool)
        return bool_to_numpy(pc.equal(self._lower(label), _str_scalar(text.lower())))

    # -- rule families ----------------------------------------------------------------------
    def required(self, rule, label, suffix="", where=None):
        miss = ~self.present(label)
        if where is not None:
            miss &= where
        self.emit(rule, miss, label, required_msg(self.col_name(label), suffix))

    def enum(self, label, allowed, where=None, required_rule=None, suffix=""):
        p = self.present(label)
        if required_rule is not None:
            miss = ~p if where is None else (~p & where)
            self.emit(required_rule, miss, label, required_msg(self.col_name(label), suffix))
        bad = p & ~self._lower_in(label, allowed)
        if where is not None:
            bad &= where
        name = self.col_name(label)
        self.emit("allowed_value", bad, label, lambda i: allowed_msg(name, self.value(label, i), allowed))

    def positive(self, label, where=None):
        a = self._arr(label)
        if a is None:
            return
        p = self.present(label)
        if where is not None:
            p = p & where
        if not p.any():
            return
        bad = p & ~positive_mask(a)
        name = self.col_name(label)
        self.emit("invalid_number", bad, label, lambda i: (
            f'"{name}" value "{self.value(label, i)}" is not a positive number. You must encode a positive, '
            "non-zero, numeric value."))

    def count_value(self, label):
        a = self._arr(label)
        if a is None:
            return
        p = self.present(label)
        if not p.any():
            return
        ok = bool_to_numpy(pc.or_(pc.is_in(pc.utf8_lower(a), value_set=_COUNT_WORDS),
                                  pc.match_substring_regex(a, _COUNT_RE)))
        name = self.col_name(label)
        self.emit("invalid_count", p & ~ok, label, lambda i: (
            f'"{name}" value "{self.value(label, i)}" is not a valid count of allowed amounts. You must encode 0, '
            'an integer 11 or greater, or "1 through 10".'))

    def nines(self, label, friendly):
        a = self._arr(label)
        if a is None:
            return
        if not pc.any(pc.match_substring(a, "999999999")).as_py():
            return
        m = bool_to_numpy(pc.match_substring_regex(a, _NINES_RE))
        self.emit("nine_nines", m, label, f"Nine 9s used for {friendly}.")

    def any_present(self, labels) -> np.ndarray:
        m = np.zeros(self.n, dtype=bool)
        for lab in labels:
            m |= self.present(lab)
        return m

    # -- one batch ---------------------------------------------------------------------------
    def check(self, cols: list, rows: np.ndarray) -> int:
        n = len(rows)
        # blank records (every field empty after trimming) are skipped, as the official validator
        # does; only records with a blank description can be blank, so only those are looked at
        di = self.L.label_index.get("description")
        maybe = ~_nonempty(trim(cols[di])) if di is not None else np.ones(n, dtype=bool)
        if maybe.any():
            idx = np.flatnonzero(maybe)
            take = from_numpy(idx)
            blank = np.ones(len(idx), dtype=bool)
            for c in cols:
                blank &= ~_nonempty(trim(c.take(take)))
            if blank.any():
                nonblank = np.ones(n, dtype=bool)
                nonblank[idx[blank]] = False
                keep = from_numpy(nonblank)
                cols = [c.filter(keep) for c in cols]
                rows = rows[nonblank]
                n = len(rows)
        if not n:
            return 0
        self._cols = cols
        self.rows = rows
        self.n = n
        self._cache_arr, self._cache_present, self._cache_in, self._cache_lower = {}, {}, {}, {}
        self._cands: list = []
        self._order = 0
        self._run()
        if self._cands:
            self._cands.sort(key=lambda c: (c[0], c[1]))
            for row, _o, rule, text, colname, cell in self._cands[: self.rc.room]:
                self.rc.keep(rule, text, row=row, column=colname, cell=cell)
        self._cols = None
        return n

    def _run(self) -> None:
        L, v = self.L, self.v
        tall = L.is_tall
        pp = L.payers_plans
        self.required("required_value", "description")
        for i in range(1, L.code_count + 1):
            c, t = f"code | {i}", f"code | {i} | type"
            self.required("cond_code_type_pair", c, where=self.present(t))
            self.enum(t, self.codes, where=self.present(c), required_rule="cond_code_type_pair")
        for lab in ("standard_charge | gross", "standard_charge | discounted_cash", "standard_charge | min",
                    "standard_charge | max"):
            self.positive(lab)
        if tall:
            self.positive("standard_charge | negotiated_dollar")
            self.positive("standard_charge | negotiated_percentage")
            self.enum("standard_charge | methodology", METHODOLOGIES)
            if (2, 2, 0) <= v < (3, 0, 0):
                self.positive("estimated_amount")
            if v >= (3, 0, 0):
                for lab in ("median_amount", "10th_percentile", "90th_percentile"):
                    self.positive(lab)
                self.count_value("count")
        else:
            for p in pp:
                self.positive(f"standard_charge | {p} | negotiated_dollar")
                self.positive(f"standard_charge | {p} | negotiated_percentage")
                self.enum(f"standard_charge | {p} | methodology", METHODOLOGIES)
                if (2, 2, 0) <= v < (3, 0, 0):
                    self.positive(f"estimated_amount | {p}")
                if v >= (3, 0, 0):
                    for lab in ("median_amount", "10th_percentile", "90th_percentile"):
                        self.positive(f"{lab} | {p}")
                    self.count_value(f"count | {p}")
        if v >= (2, 2, 0):
            unit, dtype = "drug_unit_of_measurement", "drug_type_of_measurement"
            either = self.present(unit) | self.present(dtype)
            self.required("cond_drug_unit_type_pair", unit, ' when "drug_type_of_measurement" is present', either)
            self.positive(unit, where=either)
            self.enum(dtype, DRUG_UNITS, where=either, required_rule="cond_drug_unit_type_pair",
                      suffix=' when "drug_unit_of_measurement" is present')
            ndc = np.zeros(self.n, dtype=bool)
            for i in range(1, L.code_count + 1):
                ndc |= self._ieq(f"code | {i} | type", "NDC")
            if ndc.any():
                mu, mt = ~self.present(unit), ~self.present(dtype)
                self.emit("cond_ndc_drug_info", ndc & mu, unit, MSG["cond_ndc_drug_info"])
                self.emit("cond_ndc_drug_info", ndc & ~mu & mt, dtype, MSG["cond_ndc_drug_info"])
        has_code = self.any_present([x for i in range(1, L.code_count + 1)
                                     for x in (f"code | {i}", f"code | {i} | type")])
        if v >= (2, 2, 0):
            has_mod = self.present("modifiers")
            nonmod = has_code | ~has_mod
            modrow = ~has_code & has_mod
            self.emit("cond_code_pair_missing", ~has_code & ~has_mod, None, MSG["cond_code_pair_missing"])
        else:
            nonmod = np.ones(self.n, dtype=bool)
            modrow = None
            self.emit("cond_code_pair_missing", ~has_code, None, MSG["cond_code_pair_missing"])
        self._nonmodifier(nonmod)
        if modrow is not None and modrow.any():
            if tall:
                extra = ["additional_generic_notes", "standard_charge | negotiated_dollar",
                         "standard_charge | negotiated_percentage", "standard_charge | negotiated_algorithm"]
            else:
                extra = ["additional_generic_notes"]
                for p in pp:
                    extra += [f"standard_charge | {p} | negotiated_dollar",
                              f"standard_charge | {p} | negotiated_percentage",
                              f"standard_charge | {p} | negotiated_algorithm", f"additional_payer_notes | {p}"]
            self.emit("cond_modifier_info", modrow & ~self.any_present(extra), "additional_generic_notes",
                      MSG["cond_modifier_info"])
        # alerts
        if v >= (2, 2, 0):
            if tall:
                if v < (3, 0, 0):
                    self.nines("estimated_amount", "estimated amount")
                else:
                    for lab, fr in (("count", "count"), ("median_amount", "median amount"),
                                    ("10th_percentile", "10th percentile"), ("90th_percentile", "90th percentile")):
                        self.nines(lab, fr)
            else:
                for p in pp:
                    self.nines(f"estimated_amount | {p}", "estimated amount")
                    if v >= (3, 0, 0):
                        for lab, fr in (("count", "count"), ("median_amount", "median amount"),
                                        ("10th_percentile", "10th percentile"),
                                        ("90th_percentile", "90th percentile")):
                            self.nines(f"{lab} | {p}", fr)

    def _nonmodifier(self, w: np.ndarray) -> None:
        L, v = self.L, self.v
        self.enum("setting", SETTINGS, where=w, required_rule="required_value")
        if v < (2, 1, 0):
            return
        gross, cash = "standard_charge | gross", "standard_charge | discounted_cash"
        if L.is_tall:
            d, pct, alg = ("standard_charge | negotiated_dollar", "standard_charge | negotiated_percentage",
                           "standard_charge | negotiated_algorithm")
            meth = "standard_charge | methodology"
            pd, pp_, pa_ = self.present(d), self.present(pct), self.present(alg)
            charge = pd | pp_ | pa_
            for lab in ("payer_name", "plan_name", meth):
                self.required("cond_payer_plan_methodology", lab, PAYER_SUFFIX, w & charge)
            notes = self.present("additional_generic_notes")
            self.emit("cond_other_methodology_notes", w & self._ieq(meth, "other") & ~notes,
                      "additional_generic_notes", notes_msg("standard charge methodology", "other"))
            self.emit("cond_item_requires_charge", w & ~(charge | self.present(gross) | self.present(cash)), gross,
                      MSG["cond_item_requires_charge"])
            self._min_max(w & pd)
            pa_or = pp_ | pa_
            if (2, 2, 0) <= v < (3, 0, 0):
                self.emit("cond_estimated_amount_required", w & ~pd & pa_or & ~self.present("estimated_amount"),
                          "estimated_amount", MSG["cond_estimated_amount_required"])
            if v >= (3, 0, 0):
                self._v3_allowed(w, pa_or, "count", "median_amount", "10th_percentile", "90th_percentile",
                                 "additional_generic_notes")
                self.emit("cond_charge_with_payer_plan",
                          w & self.present("payer_name") & self.present("plan_name") & ~charge, "payer_name",
                          MSG["cond_charge_with_payer_plan"])
            return
        anyd = np.zeros(self.n, dtype=bool)
        anycharge = self.present(gross) | self.present(cash)
        for p in L.payers_plans:
            d, pct, alg = (f"standard_charge | {p} | negotiated_dollar", f"standard_charge | {p} | negotiated_percentage",
                           f"standard_charge | {p} | negotiated_algorithm")
            meth = f"standard_charge | {p} | methodology"
            pd = self.present(d)
            charge = pd | self.present(pct) | self.present(alg)
            anyd |= pd
            anycharge |= charge
            self.required("cond_payer_plan_methodology", meth, PAYER_SUFFIX, w & charge)
            notes_l = f"additional_payer_notes | {p}"
            self.emit("cond_other_methodology_notes", w & self._ieq(meth, "other") & ~self.present(notes_l), notes_l,
                      notes_msg("standard charge methodology", "other"))
        self.emit("cond_item_requires_charge", w & ~anycharge, gross, MSG["cond_item_requires_charge"])
        self._min_max(w & anyd)
        for p in L.payers_plans:
            d, pct, alg = (f"standard_charge | {p} | negotiated_dollar", f"standard_charge | {p} | negotiated_percentage",
                           f"standard_charge | {p} | negotiated_algorithm")
            pa_or = self.present(pct) | self.present(alg)
            if (2, 2, 0) <= v < (3, 0, 0):
                est = f"estimated_amount | {p}"
                self.emit("cond_estimated_amount_required", w & ~self.present(d) & pa_or & ~self.present(est), est,
                          MSG["cond_estimated_amount_required"])
            if v >= (3, 0, 0):
                self._v3_allowed(w, pa_or, f"count | {p}", f"median_amount | {p}", f"10th_percentile | {p}",
                                 f"90th_percentile | {p}", f"additional_payer_notes | {p}")

    def _min_max(self, need: np.ndarray) -> None:
        if not need.any():
            return
        lo, hi = "standard_charge | min", "standard_charge | max"
        mlo, mhi = ~self.present(lo), ~self.present(hi)
        self.emit("cond_dollar_needs_min_max", need & mlo, lo, MSG["cond_dollar_needs_min_max"])
        self.emit("cond_dollar_needs_min_max", need & ~mlo & mhi, hi, MSG["cond_dollar_needs_min_max"])

    def _v3_allowed(self, w, pa_or, count, median, p10, p90, notes) -> None:
        pc_ = self.present(count)
        self.emit("cond_count_required", w & pa_or & ~pc_, count, MSG["cond_count_required"])
        zero = self._eq(count, "0")
        need = w & pa_or & ~zero
        if need.any():
            for lab, fr in ((median, "Median Amount"), (p10, "10th Percentile"), (p90, "90th Percentile")):
                self.emit("cond_allowed_amounts_required", need & ~self.present(lab), lab, pct_msg(fr))
        self.emit("cond_count_zero_notes", w & zero & ~self.present(notes), notes,
                  notes_msg("count of allowed amounts", "0"))
