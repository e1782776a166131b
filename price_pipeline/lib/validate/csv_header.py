"""Rows 1-3 of a CSV MRF: read them, check the header rows, map the row-3 columns.

Rows 1-3 are located with the parser's quote-aware :func:`scan_records` and read with the ``csv``
module. Header names are compared the official way: case-insensitively, spaces around ``|``
ignored (:func:`sep_equal`).
"""

from __future__ import annotations

import csv
import io
import re

from price_pipeline.lib.parse.mrf.csv_reader import (
    scan_records,
)

from .csv_messages import allowed_msg, required_msg
from .report import ReportCollector
from .rules import (
    AFFIRMATION,
    ATTESTATION,
    STATE_CODES,
    csv_cell,
    header_columns,
    vkey,
)

_LICENSE_RE = re.compile(r"^license_number\s*\|\s*.{2}$")


def _split(col: str) -> list[str]:
    return [p.strip().upper() for p in col.split("|")]


def sep_equal(a: str, b: str) -> bool:
    """Official ``sepColumnsEqual``: pipe parts trimmed, case-insensitive."""
    return _split(a) == _split(b)


def ieq(a: str | None, b: str) -> bool:
    return (a or "").upper() == b.upper()


def is_valid_date(value: str) -> bool:
    """YYYY-MM-DD or M/D/YYYY (one or two digits), and a real calendar date."""
    import datetime as dt

    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", value)
    if m:
        mo, d, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value)
        if not m:
            return False
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        dt.date(y, mo, d)
    except ValueError:
        return False
    return True


class CsvLayout:
    """Row-3 column mapping (official ``validateColumns``)."""

    def __init__(self, columns: list[str], version: str):
        self.columns = columns
        self.version = version
        self.v3 = vkey(version) >= (3, 0, 0)
        self.is_tall = all(any(ieq(c, t) for c in columns) for t in ("payer_name", "plan_name"))
        self.payers_plans = self._payers_plans()
        self.code_count = self._code_count()
        self.label_index: dict[str, int] = {}  # normalized label -> column index
        self.data_columns: list[str | None] = [None] * len(columns)

    def _payers_plans(self) -> list[str]:
        out: dict[str, None] = {}
        for column in self.columns:
            s = [p.strip() for p in column.split("|")]
            if len(s) == 4:
                if ieq(s[0], "standard_charge") and any(
                        ieq(s[3], p) for p in ("negotiated_dollar", "negotiated_percentage",
                                                "negotiated_algorithm", "methodology")):
                    out[" | ".join(s[1:3]).lower()] = None
            elif len(s) == 3:
                other = ["additional_payer_notes"]
                if (2, 2, 0) <= vkey(self.version) < (3, 0, 0):
                    other.append("estimated_amount")
                elif self.v3:
                    other += ["median_amount", "10th_percentile", "90th_percentile", "count"]
                if any(ieq(s[0], p) for p in other):
                    out[" | ".join(s[1:3]).lower()] = None
        return list(out)

    def _code_count(self) -> int:
        best = 0
        for c in self.columns:
            s = [v.strip() for v in c.split("|") if v.strip()]
            if s and ieq(s[0], "code") and (len(s) == 2 or (len(s) == 3 and ieq(s[2], "type"))):
                digits = re.sub(r"[^0-9]", "", s[1])
                # a hostile header (code | 999…9) must not expand into millions of expected columns
                # (nor reach Python's 4,300-digit int limit): more than 4 digits counts as 9999
                best = max(best, (int(digits) if len(digits) <= 4 else 9999) if digits else 0)
        return best

    def expected(self) -> list[str]:
        cols = ["description", "setting", "standard_charge | gross", "standard_charge | discounted_cash",
                "standard_charge | min", "standard_charge | max", "additional_generic_notes"]
        for i in range(1, max(1, self.code_count) + 1):
            cols += [f"code | {i}", f"code | {i} | type"]
        pp = self.payers_plans
        if pp:
            for p in pp:
                cols += [f"standard_charge | {p} | negotiated_dollar", f"standard_charge | {p} | negotiated_percentage",
                         f"standard_charge | {p} | negotiated_algorithm", f"standard_charge | {p} | methodology",
                         f"additional_payer_notes | {p}"]
        else:
            cols += ["payer_name", "plan_name", "standard_charge | negotiated_dollar",
                     "standard_charge | negotiated_percentage", "standard_charge | negotiated_algorithm",
                     "standard_charge | methodology"]
        v = vkey(self.version)
        if v >= (2, 2, 0):
            cols += ["drug_unit_of_measurement", "drug_type_of_measurement", "modifiers"]
        if (2, 2, 0) <= v < (3, 0, 0):
            cols += [f"estimated_amount | {p}" for p in pp] if pp else ["estimated_amount"]
        if self.v3:
            if pp:
                for p in pp:
                    cols += [f"median_amount | {p}", f"10th_percentile | {p}", f"90th_percentile | {p}", f"count | {p}"]
            else:
                cols += ["median_amount", "10th_percentile", "90th_percentile", "count"]
        return cols

    def check(self, rc: ReportCollector) -> None:
        """Row-3 errors (placeholders, ambiguity, missing/duplicate columns)."""
        cols = self.columns
        if self.v3:
            for idx, column in enumerate(cols):
                s = [p.strip() for p in column.split("|")]
                bad = False
                if len(s) == 4:
                    bad = (ieq(s[0], "standard_charge") and any(ieq(s[3], p) for p in (
                        "negotiated_dollar", "negotiated_percentage", "negotiated_algorithm", "methodology"))
                        and (ieq(s[1], "[payer_name]") or ieq(s[2], "[plan_name]")))
                elif len(s) == 3:
                    bad = (any(ieq(s[0], p) for p in ("additional_payer_notes", "median_amount", "10th_percentile",
                                                       "90th_percentile", "count"))
                           and ieq(s[1], "[payer_name]") and ieq(s[2], "[plan_name]"))
                if bad:
                    self._placeholder(rc, column, idx)
            self.payers_plans = [p for p in self.payers_plans
                                 if not (ieq(p.split(" | ")[0], "[payer_name]")
                                         or ieq(p.split(" | ")[1], "[plan_name]"))]
            for idx, column in enumerate(cols):
                s = [v.strip() for v in column.split("|") if v.strip()]
                if ((len(s) == 2 and ieq(s[0], "code")) or (len(s) == 3 and ieq(s[0], "code")
                                                              and ieq(s[2], "type"))) and ieq(s[1], "[i]"):
                    self._placeholder(rc, column, idx)
        if self.is_tall == (len(self.payers_plans) > 0):
            rc.add("ambiguous_format",
                   'Required payer-specific information data element headers are missing or miscoded from the MRF '
                   'that does not follow the specifications for the CSV "Tall" or CSV "Wide" format.',
                   row=3, cell=csv_cell(2, -1))
            return
        remaining = self.expected()
        remaining_keys = [_split(x) for x in remaining]
        seen: list[list[str]] = []
        for idx, column in enumerate(cols):
            key = _split(column)
            try:
                j = remaining_keys.index(key)
            except ValueError:
                j = -1
            if j > -1:
                self.data_columns[idx] = column
                label = " | ".join(p.strip() for p in remaining[j].split("|"))
                self.label_index.setdefault(label, idx)
                del remaining[j], remaining_keys[j]
                seen.append(key)
            elif key in seen:
                rc.add("column_duplicate",
                       f"Column {column} duplicated in header. You must review and revise your column headers so "
                       "that each header appears only once in the third row.", row=3, column=column,
                       cell=csv_cell(2, idx))
            else:
                self.data_columns[idx] = column
                seen.append(key)
        for label in remaining:
            rc.add("column_missing",
                   f"Column {label} is miscoded or missing from row 3. You must include this column and confirm "
                   "that it is encoded as specified in the data dictionary.", row=3, column=label,
                   cell=csv_cell(2, -1))

    @staticmethod
    def _placeholder(rc, column, idx):
        rc.add("placeholder_in_header",
               f"Column header {column} contains a placeholder. All placeholders must be removed from column headers.",
               row=3, column=column, cell=csv_cell(2, idx))


def check_header(row1: list[str], row2: list[str], version: str, rc: ReportCollector) -> list:
    """Row 1 names and row 2 values (official validateHeaderColumns + validateHeaderRow).

    Returns the discovered header list (index -> header or None)."""
    remaining = header_columns(version)
    discovered: list[str | None] = [None] * len(row1)
    for index, column in enumerate(row1):
        match = -1
        for k, req in enumerate(remaining):
            if req == "license_number | [state]":
                parts = [v.strip() for v in column.split("|")]
                if len(parts) != 2 or not sep_equal(parts[0], "license_number"):
                    continue
                if parts[1].upper() in STATE_CODES:
                    match = k
                    break
                rc.add("invalid_state_code",
                       f"{parts[1]} is not an allowed value for state abbreviation. You must fill in the state or "
                       "territory abbreviation even if there is no license number to encode. See the table found "
                       "here for the list of valid values for state and territory abbreviations "
                       "https://github.com/CMSgov/hospital-price-transparency/blob/master/documentation/CSV/"
                       "state_codes.md", row=1, column=column, cell=csv_cell(0, index))
            elif sep_equal(column, req):
                match = k
                break
        if match > -1:
            discovered[index] = column
            del remaining[match]
        elif any(d is not None and sep_equal(d, column) for d in discovered):
            rc.add("header_column_duplicate",
                   f"Column {column} duplicated in header. You must review and revise your column headers so that "
                   "each header appears only once in the first row.", row=1, column=column, cell=csv_cell(0, index))
    for req in remaining:
        rc.add("header_column_missing",
               f'Header column "{req}" is miscoded or missing. You must include this header and confirm that it is '
               "encoded as specified in the data dictionary.", row=1, column=req, cell=csv_cell(0, -1))
    for index, header in enumerate(discovered):
        if header is None or _LICENSE_RE.match(header):
            continue
        value = row2[index] if index < len(row2) else ""
        if not value:
            rc.add("header_value_required", required_msg(header), row=2, column=header, cell=csv_cell(1, index))
        elif sep_equal(header, "last_updated_on") and not is_valid_date(value):
            rc.add("invalid_date",
                   f'"{header}" value "{value}" is not in a valid format. You must encode the date using the ISO '
                   "8601 format: YYYY-MM-DD or the month/day/year format: MM/DD/YYYY, M/D/YYYY",
                   row=2, column=header, cell=csv_cell(1, index))
        elif (sep_equal(header, AFFIRMATION) or sep_equal(header, ATTESTATION)) and value.lower() not in (
                "true", "false"):
            rc.add("header_allowed_value", allowed_msg(header, value, ["true", "false"]), row=2, column=header,
                   cell=csv_cell(1, index))
    return discovered


def header_alerts(discovered: list, row2: list[str], version: str, rc: ReportCollector) -> None:
    """Version mismatch and false attestation/affirmation (official alertHeaderRow)."""
    v = vkey(version)
    expected = ["3.0.0"] if v[:2] == (3, 0) else ["2.0.0"] if v[:2] in ((2, 2), (2, 1)) else []
    vi = next((i for i, h in enumerate(discovered) if ieq(h, "version")), -1)
    if expected and vi > -1:
        val = row2[vi] if vi < len(row2) else ""
        if val not in expected:
            exp = (f'the expected template version "{expected[0]}"' if len(expected) == 1 else
                   "an expected template version " + ", ".join(f'"{e}"' for e in expected))
            rc.add("version_mismatch", f"The value in this MRF's version data element \"{val}\" does not match "
                   f"{exp} for the data dictionary requirements selected for validation.", row=2,
                   column=discovered[vi], cell=csv_cell(2, vi))
    text, word = (ATTESTATION, "Attestation") if v >= (3, 0, 0) else (AFFIRMATION, "Affirmation")
    si = next((i for i, h in enumerate(discovered) if ieq(h, text)), -1)
    if si > -1 and si < len(row2) and row2[si].lower() == "false":
        rc.add("false_attestation", f"{word} value is false.", row=2, column=discovered[si][:40] + "...",
               cell=csv_cell(2, si))


def declared_version(row1: list[str], row2: list[str]) -> str | None:
    for i, h in enumerate(row1):
        if ieq(h.strip(), "version"):
            return row2[i].strip() if i < len(row2) else None
    return None


class UnterminatedField(Exception):
    """The payload ends inside a quoted field: its last record is cut off."""


def read_head(stream) -> tuple[list[list[str]], bytes, int]:
    """First three CSV records (trimmed values), the buffer read so far and the body offset."""
    scan: dict = {}
    buf, ends, _eof = scan_records(stream, 3, state=scan)
    if scan.get("open_quote"):
        raise UnterminatedField("the file ends inside a quoted field of rows 1-3 (a quote never closes)")
    if not ends:
        return [], buf, len(buf)
    text = buf[: ends[-1]].decode("utf-8", "replace")
    rows = [[v.strip() for v in r] for r in csv.reader(io.StringIO(text, newline=""))]
    return rows[:3], buf, ends[min(len(ends), 3) - 1]


def format_label(rows: list[list[str]]) -> str | None:
    """``csv_tall`` / ``csv_wide`` as the parser labels the file (:mod:`price_pipeline.lib.parse.mrf.header`:
    the first of rows 1-3 that is a column header row, classified by its payer columns), so that the
    conformance report and the parse summary never disagree. None when no row is a column header.
    (Which rules apply is still decided the official way, by :class:`CsvLayout`.)"""
    from price_pipeline.lib.parse.mrf.findings import FindingCollector
    from price_pipeline.lib.parse.mrf.header import classify_columns, looks_like_column_row

    k = next((i for i, r in enumerate(rows[:3]) if looks_like_column_row(r)), None)
    return None if k is None else classify_columns(rows[k], FindingCollector(0)).fmt
