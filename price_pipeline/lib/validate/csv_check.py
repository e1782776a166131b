"""CSV (tall and wide) conformance checks: rows 1-3 in Python, data rows vectorised.

Rows 1-3 are located with the parser's quote-aware :func:`scan_records` and read with the
``csv`` module; the body is streamed by ``pyarrow.csv`` (all columns as strings) and each
record batch is checked with ``pyarrow.compute`` / numpy masks, one pass per rule, never a
Python loop over cells. Only the findings that are kept (the first N) are formatted.

Semantics follow the official validator (``@cmsgov/hpt-validator`` 2.4.0 ``CsvValidator``):
values are trimmed, header names are compared case-insensitively with spaces around ``|``
ignored, and when rows 1-3 have errors the data rows are not evaluated.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..mrf.csv_reader import (
    BLOCK_GROWTH,
    MAX_BLOCK_SIZE,
    MAX_RECORD_BYTES,
    PrefixedReader,
    RecordTooLarge,
    RecordTooLong,
    arrow_input,
    check_record_sizes,
    end_record,
    is_end_record,
    scan_records,
)
from .report import ReportCollector
from .rules import (
    AFFIRMATION,
    ATTESTATION,
    BILLING_CODE_TYPES_V2,
    BILLING_CODE_TYPES_V3,
    DRUG_UNITS,
    METHODOLOGIES,
    SETTINGS,
    STATE_CODES,
    as_chooser,
    csv_cell,
    header_columns,
    vkey,
)

BLOCK_SIZE = 1024**2  # Arrow reads ahead 32 blocks: this bounds the reader's memory
GROUP_BYTES = 8 * 1024**2  # batches checked together
THREADS = True  # Arrow parses CSV blocks on all cores (restarted without for rows of the wrong width)
_NUM_RE = r"^(?:\d+(?:\.\d*)?|\.\d+)$"
_COUNT_RE = r"^(1[1-9]|[2-9]\d+|[1-9]\d{2,})$"
_NINES_RE = r"^\+?0*999999999(?:\.0*)?$"
_LICENSE_RE = re.compile(r"^license_number\s*\|\s*.{2}$")
PAYER_SUFFIX = (" when a payer specific negotiated charge is encoded as a dollar amount, percentage, or algorithm")

MSG = {
    "cond_code_pair_missing": (
        "If a standard charge is encoded, there must be a corresponding code and code type pairing. The code and "
        "code type pairing do not need to be in the first code and code type columns (i.e., code|1 and code|1|type)."
    ),
    "cond_item_requires_charge": (
        'If an item or service is encoded, a corresponding valid value must be encoded for at least one of the '
        'following: "Gross Charge", "Discounted Cash Price", "Payer-Specific Negotiated Charge: Dollar Amount", '
        '"Payer-Specific Negotiated Charge: Percentage", "Payer-Specific Negotiated Charge: Algorithm".'
    ),
    "cond_dollar_needs_min_max": (
        'If there is a "payer specific negotiated charge" encoded as a dollar amount, there must be a corresponding '
        "valid value encoded for the deidentified minimum and deidentified maximum negotiated charge data."
    ),
    "cond_ndc_drug_info": (
        "If code type is NDC, then the corresponding drug unit of measure and drug type of measure data element "
        "must be encoded."
    ),
    "cond_modifier_info": (
        "If a modifier is encoded without an item or service, then a description and one of the following is the "
        "minimum information required: additional_payer_notes, standard_charge | negotiated_dollar, "
        "standard_charge | negotiated_percentage, or standard_charge | negotiated_algorithm."
    ),
    "cond_estimated_amount_required": (
        'If a "payer specific negotiated charge" can only be expressed as a percentage or algorithm, then a '
        'corresponding "Estimated Allowed Amount" must also be encoded.'
    ),
    "cond_count_required": (
        'If a "payer specific negotiated charge" is expressed as a percentage or algorithm, then a corresponding '
        '"Count of Allowed Amounts" must also be encoded.'
    ),
    "cond_charge_with_payer_plan": (
        "If a payer name and plan name are encoded, a payer-specific charge must also be encoded."
    ),
}


def _notes_msg(element: str, value: str) -> str:
    return (f'If the "{element}" encoded value is "{value}", there must be a corresponding explanation found in '
            'the "additional notes" for the associated payer-specific negotiated charge.')


def _pct_msg(field: str) -> str:
    return (f'If a "payer specific negotiated charge" is expressed as a percentage or algorithm, and count of '
            f'allowed amounts is not zero, then a corresponding "{field}" must also be encoded.')


def _required_msg(col: str, suffix: str = "") -> str:
    return f'A value is required for "{col}"{suffix}. You must encode the missing information.'


def _allowed_msg(col: str, value: str, allowed) -> str:
    return (f'"{col}" value "{value}" is not one of the allowed valid values. You must encode one of these valid '
            f"values: {', '.join(allowed)}")


def _split(col: str) -> list[str]:
    return [p.strip().upper() for p in col.split("|")]


def sep_equal(a: str, b: str) -> bool:
    """Official ``sepColumnsEqual``: pipe parts trimmed, case-insensitive."""
    return _split(a) == _split(b)


def _ieq(a: str | None, b: str) -> bool:
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
        self.is_tall = all(any(_ieq(c, t) for c in columns) for t in ("payer_name", "plan_name"))
        self.payers_plans = self._payers_plans()
        self.code_count = self._code_count()
        self.label_index: dict[str, int] = {}  # normalized label -> column index
        self.data_columns: list[str | None] = [None] * len(columns)

    def _payers_plans(self) -> list[str]:
        out: dict[str, None] = {}
        for column in self.columns:
            s = [p.strip() for p in column.split("|")]
            if len(s) == 4:
                if _ieq(s[0], "standard_charge") and any(
                        _ieq(s[3], p) for p in ("negotiated_dollar", "negotiated_percentage",
                                                "negotiated_algorithm", "methodology")):
                    out[" | ".join(s[1:3]).lower()] = None
            elif len(s) == 3:
                other = ["additional_payer_notes"]
                if (2, 2, 0) <= vkey(self.version) < (3, 0, 0):
                    other.append("estimated_amount")
                elif self.v3:
                    other += ["median_amount", "10th_percentile", "90th_percentile", "count"]
                if any(_ieq(s[0], p) for p in other):
                    out[" | ".join(s[1:3]).lower()] = None
        return list(out)

    def _code_count(self) -> int:
        best = 0
        for c in self.columns:
            s = [v.strip() for v in c.split("|") if v.strip()]
            if s and _ieq(s[0], "code") and (len(s) == 2 or (len(s) == 3 and _ieq(s[2], "type"))):
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
                    bad = (_ieq(s[0], "standard_charge") and any(_ieq(s[3], p) for p in (
                        "negotiated_dollar", "negotiated_percentage", "negotiated_algorithm", "methodology"))
                        and (_ieq(s[1], "[payer_name]") or _ieq(s[2], "[plan_name]")))
                elif len(s) == 3:
                    bad = (any(_ieq(s[0], p) for p in ("additional_payer_notes", "median_amount", "10th_percentile",
                                                       "90th_percentile", "count"))
                           and _ieq(s[1], "[payer_name]") and _ieq(s[2], "[plan_name]"))
                if bad:
                    self._placeholder(rc, column, idx)
            self.payers_plans = [p for p in self.payers_plans
                                 if not (_ieq(p.split(" | ")[0], "[payer_name]")
                                         or _ieq(p.split(" | ")[1], "[plan_name]"))]
            for idx, column in enumerate(cols):
                s = [v.strip() for v in column.split("|") if v.strip()]
                if ((len(s) == 2 and _ieq(s[0], "code")) or (len(s) == 3 and _ieq(s[0], "code")
                                                              and _ieq(s[2], "type"))) and _ieq(s[1], "[i]"):
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
            rc.add("header_value_required", _required_msg(header), row=2, column=header, cell=csv_cell(1, index))
        elif sep_equal(header, "last_updated_on") and not is_valid_date(value):
            rc.add("invalid_date",
                   f'"{header}" value "{value}" is not in a valid format. You must encode the date using the ISO '
                   "8601 format: YYYY-MM-DD or the month/day/year format: MM/DD/YYYY, M/D/YYYY",
                   row=2, column=header, cell=csv_cell(1, index))
        elif (sep_equal(header, AFFIRMATION) or sep_equal(header, ATTESTATION)) and value.lower() not in (
                "true", "false"):
            rc.add("header_allowed_value", _allowed_msg(header, value, ["true", "false"]), row=2, column=header,
                   cell=csv_cell(1, index))
    return discovered


def header_alerts(discovered: list, row2: list[str], version: str, rc: ReportCollector) -> None:
    """Version mismatch and false attestation/affirmation (official alertHeaderRow)."""
    v = vkey(version)
    expected = ["3.0.0"] if v[:2] == (3, 0) else ["2.0.0"] if v[:2] in ((2, 2), (2, 1)) else []
    vi = next((i for i, h in enumerate(discovered) if _ieq(h, "version")), -1)
    if expected and vi > -1:
        val = row2[vi] if vi < len(row2) else ""
        if val not in expected:
            exp = (f'the expected template version "{expected[0]}"' if len(expected) == 1 else
                   "an expected template version " + ", ".join(f'"{e}"' for e in expected))
            rc.add("version_mismatch", f"The value in this MRF's version data element \"{val}\" does not match "
                   f"{exp} for the data dictionary requirements selected for validation.", row=2,
                   column=discovered[vi], cell=csv_cell(2, vi))
    text, word = (ATTESTATION, "Attestation") if v >= (3, 0, 0) else (AFFIRMATION, "Affirmation")
    si = next((i for i, h in enumerate(discovered) if _ieq(h, text)), -1)
    if si > -1 and si < len(row2) and row2[si].lower() == "false":
        rc.add("false_attestation", f"{word} value is false.", row=2, column=discovered[si][:40] + "...",
               cell=csv_cell(2, si))


def declared_version(row1: list[str], row2: list[str]) -> str | None:
    for i, h in enumerate(row1):
        if _ieq(h.strip(), "version"):
            return row2[i].strip() if i < len(row2) else None
    return None


class UnterminatedField(Exception):
    """The payload ends inside a quoted field: its last record is cut off."""


class UnreadableBody(Exception):
    """Arrow stopped reading the data rows (the message says why)."""


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


def validate_csv(open_stream, rc: ReportCollector, version=None, plain_path: str | None = None,
                 bom: int = 0, lf_records: bool = False) -> dict:
    """Validate a UTF-8 CSV byte stream. ``open_stream()`` returns a fresh stream (BOM removed).

    ``version``: the rule set, or a ``declared version -> rule set`` function (default: the
    declared major version's rules, :func:`~.rules.major_rules`).
    ``plain_path``: the payload is this uncompressed UTF-8 file (with a ``bom``-byte BOM): Arrow
    then reads the body from the file itself (native I/O, no Python in the loop).
    ``lf_records``: the stream already splits records on LF only (see :func:`_validate_lf_view`)."""
    info = {"format": None, "version": None, "rules_version": None, "rows_checked": 0}
    with open_stream() as stream:
        rows, buf, body_at = read_head(stream)
        row1 = rows[0] if rows else []
        row2 = rows[1] if len(rows) > 1 else []
        row3 = rows[2] if len(rows) > 2 else []
        info["version"] = declared_version(row1, row2)
        rv = as_chooser(version)(info["version"])
        info["rules_version"] = rv
        info["format"] = format_label(rows)
        if not lf_records and has_lone_cr(buf):
            return _validate_lf_view(open_stream, rc, rv, info)
        if not any(row1):
            rc.add("header_blank_row", "Required headers must be defined on rows 1 and 3. Row 1 is blank", row=1,
                   cell=csv_cell(0, 0))
            return info
        if len(rows) < 3:
            # the official validator stops with MinRowsError when the file ends before any data row
            n_before = rc.errors
            discovered = check_header(row1, row2, rv, rc)
            if len(rows) == 2 and rc.errors == n_before:
                header_alerts(discovered, row2, rv, rc)
            rc.reset_errors()
            rc.add("min_rows", "At least one row must be present", row=1, cell=csv_cell(0, 0))
            return info
        n_before = rc.errors
        discovered = check_header(row1, row2, rv, rc)
        header_ok = rc.errors == n_before
        if header_ok:
            header_alerts(discovered, row2, rv, rc)
        if not any(row3):
            rc.reset_errors()
            rc.add("header_blank_row", "Required headers must be defined on rows 1 and 3. Row 3 is blank", row=3,
                   cell=csv_cell(2, 0))
            return info
        layout = CsvLayout(row3, rv)  # its tall/wide decision is the official one, for the rules only
        layout.check(rc)
        if rc.errors:
            rc.add("rows_not_evaluated", "Errors were found in the headers or values in rows 1 through 3, so the "
                   "remaining rows were not evaluated.", row=1, cell=csv_cell(0, 0))
            return info
        _column_alerts(layout, rc)
        saved = rc.snapshot()
        block = BLOCK_SIZE
        try:
            res = _check_body(_body(stream, buf, body_at, plain_path, bom, layout), layout, rc, threads=THREADS,
                              block_size=block)
        except RecordTooLong as e:
            res, block = None, e.block_size
    # Again without threads when rows with a wrong field count need their numbers, or with bigger
    # blocks (up to the record size limit) when a record does not fit in one.
    while res is None:
        rc.restore(saved)
        with open_stream() as stream:
            _rows, buf, body_at = read_head(stream)
            try:
                res = _check_body(_body(stream, buf, body_at, plain_path, bom, layout), layout, rc, threads=False,
                                  block_size=block)
            except RecordTooLong as e:
                block = e.block_size
    checked, records = res
    info["rows_checked"] = checked
    if records < 1:
        rc.reset_errors()
        rc.add("min_rows", "At least one row must be present", row=1, cell=csv_cell(0, 0))
    elif checked == 0:
        # the official validator counts blank lines toward its one-row minimum and accepts the file
        rc.add("no_data_rows", f"Header present, no data rows: the {records} record(s) after row 3 are blank. The "
               "CMS validator counts blank lines as rows and accepts the file.", row=4, cell=csv_cell(3, -1))
    return info


def format_label(rows: list[list[str]]) -> str | None:
    """``csv_tall`` / ``csv_wide`` as the parser labels the file (:mod:`price_pipeline.lib.mrf.header`:
    the first of rows 1-3 that is a column header row, classified by its payer columns), so that the
    conformance report and the parse summary never disagree. None when no row is a column header.
    (Which rules apply is still decided the official way, by :class:`CsvLayout`.)"""
    from ..mrf.findings import FindingCollector
    from ..mrf.header import classify_columns, looks_like_column_row

    k = next((i for i, r in enumerate(rows[:3]) if looks_like_column_row(r)), None)
    return None if k is None else classify_columns(rows[k], FindingCollector(0)).fmt


# --- lone-CR line endings: checked as the official validator reads them -----------------------
# Papa Parse is called with newline "\n": a record ends at LF only, and a lone CR (classic Mac OS
# line endings) is part of a field. A CR-only file is therefore one record to the official
# validator (MinRowsError), while this package's readers split records on CR too.
_LONE_CR = re.compile(rb"\r(?!\n)")
_VT = b"\x0b"  # replaces a lone CR: whitespace to trimming (like the CR), but not a line break to Arrow


def has_lone_cr(buf: bytes) -> bool:
    """A CR that is not followed by LF, outside quotes, in ``buf`` (a CR as its last byte is
    not counted: its LF may be in the next read)."""
    parts = buf[:-1].split(b'"') if buf.endswith(b"\r") else buf.split(b'"')
    return any(_LONE_CR.search(p) for p in parts[0::2])


class LfRecordReader(io.RawIOBase):
    """``inner`` with every lone CR outside quotes replaced by VT: records then end at LF only,
    as the official validator splits them, and a CR inside a field is trimmed like whitespace."""

    def __init__(self, inner):
        self.inner = inner
        self.in_quotes = False
        self.hold = b""
        self.out = b""

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.inner.close()
        super().close()

    def _convert(self, data: bytes, final: bool) -> bytes:
        if not final and data.endswith(b"\r"):  # its LF may come with the next read
            data, self.hold = data[:-1], b"\r"
        else:
            self.hold = b""
        parts = data.split(b'"')
        first_outside = 1 if self.in_quotes else 0
        for i in range(first_outside, len(parts), 2):
            if b"\r" in parts[i]:
                parts[i] = _LONE_CR.sub(_VT, parts[i])
        self.in_quotes ^= (len(parts) - 1) % 2 == 1
        return b'"'.join(parts)

    def readinto(self, b) -> int:
        while not self.out:
            data = self.inner.read(1 << 20)
            if not data:
                if not self.hold:
                    return 0
                self.out = self._convert(self.hold, final=True)
                break
            self.out = self._convert(self.hold + data, final=False)
        n = min(len(b), len(self.out))
        b[:n] = self.out[:n]
        self.out = self.out[n:]
        return n


def _has_lf(open_stream) -> bool:
    with open_stream() as s:
        while chunk := s.read(1 << 22):
            if b"\n" in chunk:
                return True
    return False


def _validate_lf_view(open_stream, rc: ReportCollector, rv: str, info: dict) -> dict:
    """Validate a file with lone-CR record ends as the official validator reads it (records split
    on LF only), with a ``cr_line_endings`` alert that says so. The file facts (declared version,
    format) stay those of the CR-aware reading, which is how the parser reads the file."""
    why = ("The file's records end with a lone CR (classic Mac OS line endings). The CMS validator splits "
           "records on LF only")
    if not _has_lf(open_stream):
        rc.add("min_rows", "At least one row must be present: the CMS validator reads this file, which has no LF, "
               "as a single record.", row=1, cell=csv_cell(0, 0))
        rc.add("cr_line_endings", f"{why}, so it reads the whole file as one record (MinRowsError). The price "
               "parser reads the records normally.", row=1, cell=csv_cell(0, -1))
        return info
    inner = validate_csv(lambda: io.BufferedReader(LfRecordReader(open_stream()), 1 << 22), rc, rv,
                         lf_records=True)
    info["rows_checked"] = inner["rows_checked"]
    rc.add("cr_line_endings", f"{why}, so records separated by a lone CR are one record to it; this report "
           "follows that reading. The price parser reads the records normally.", row=1, cell=csv_cell(0, -1))
    return info


def _body(stream, buf: bytes, body_at: int, plain_path: str | None, bom: int, layout: CsvLayout):
    """``(Arrow input, source to release)`` positioned at the first data record, with the parser's
    end record after the payload (it shows whether the payload ends inside a quoted field)."""
    suffix = end_record(len(layout.columns))
    if plain_path is not None:
        raw = open(plain_path, "rb")  # noqa: SIM115 - closed by ArrowSource.release
        raw.seek(bom + body_at)
        return arrow_input(PrefixedReader(b"", raw, suffix))  # (unbuffered: see the parser's read_csv)
    return arrow_input(PrefixedReader(buf[body_at:], stream, suffix))


def _column_alerts(layout: CsvLayout, rc: ReportCollector) -> None:
    if not layout.v3:
        return
    msg = ("The 'estimated amount' is no longer a required data element as of January 1, 2026. It has been "
           "replaced by the 10th percentile, median, 90th percentile, and count of allowed amounts.")
    cols = layout.columns
    targets = ["estimated_amount"] if layout.is_tall else [f"estimated_amount | {p}" for p in layout.payers_plans]
    for t in targets:
        idx = next((i for i, c in enumerate(cols) if (_ieq(c, t) if layout.is_tall else sep_equal(c, t))), -1)
        if idx > -1:
            rc.add("estimated_amount_v3", f"Column {cols[idx]} found in column headers. {msg}", row=3,
                   column=cols[idx], cell=csv_cell(2, idx))


def _check_body(body_source, layout: CsvLayout, rc: ReportCollector, threads: bool = False,
                block_size: int | None = None) -> tuple[int, int] | None:
    """Stream the data rows through the vectorised checks. Returns (rows checked, records seen).

    ``threads``: Arrow parses blocks on all cores; it does not number invalid rows (wrong field
    count) then, so at the first one this returns None and the caller starts over without.
    """
    ncols = len(layout.columns)
    names = [f"c{i}" for i in range(ncols)]
    skipped: list[int] = []
    recovered: list[tuple[int, list[str]]] = []
    unnumbered = []
    end_seen = []
    too_large = []

    def on_invalid(row) -> str:
        if is_end_record(row.text):
            end_seen.append(True)
            return "skip"
        if len(row.text) > MAX_RECORD_BYTES:
            too_large.append(True)  # (an exception here would be swallowed by pyarrow)
            return "skip"
        num = row.number
        if num is None:
            unnumbered.append(1)
            return "skip"
        skipped.append(num)
        try:
            fields = next(csv.reader(io.StringIO(row.text, newline="")), [])
        except csv.Error:
            fields = []
        fields = (fields + [""] * ncols)[:ncols]
        recovered.append((num, fields))
        return "skip"

    block_size = block_size or BLOCK_SIZE
    read_opts = pacsv.ReadOptions(use_threads=threads, block_size=block_size, column_names=names)
    parse_opts = pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                    newlines_in_values=True, ignore_empty_lines=False,
                                    invalid_row_handler=on_invalid)
    conv_opts = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                     quoted_strings_can_be_null=False)
    checker = RowChecker(layout, rc)
    returned = 0
    checked = 0
    def stopped(e: pa.ArrowInvalid) -> None:
        if "straddl" not in str(e):
            raise UnreadableBody(str(e)) from e
        if block_size < MAX_BLOCK_SIZE:
            raise RecordTooLong(min(block_size * BLOCK_GROWTH, MAX_BLOCK_SIZE)) from e
        raise RecordTooLarge("a CSV record") from e

    body, source = body_source
    try:
        reader = pacsv.open_csv(body, read_options=read_opts, parse_options=parse_opts, convert_options=conv_opts)
    except pa.ArrowInvalid as e:
        source.release()
        stopped(e)
    # Small Arrow blocks keep the reader's read-ahead (32 blocks) small; the checks run on groups
    # of batches (GROUP_BYTES) so that their per-call overhead stays small. Findings come out in
    # the same order as batch by batch: the rows of a group are in file order.
    pending: list = []
    pending_rows: list = []
    pending_bytes = 0

    def check_pending() -> int:
        nonlocal pending_bytes
        if not pending:
            return 0
        if len(pending) == 1:
            cols = [pending[0].column(j) for j in range(ncols)]
        else:
            cols = [pa.concat_arrays([b.column(j) for b in pending]) for j in range(ncols)]
        rows = np.concatenate(pending_rows)
        pending.clear()
        pending_rows.clear()
        pending_bytes = 0
        return checker.check(cols, rows)

    def run() -> tuple[int, int] | None:
        nonlocal returned, checked, pending_bytes
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as e:
                stopped(e)
            if unnumbered:
                return None
            n = batch.num_rows
            if too_large:
                raise RecordTooLarge("a CSV record")
            check_record_sizes(batch)
            if n:
                r = np.arange(returned + 1, returned + n + 1, dtype=np.int64)
                if skipped:
                    s = np.array(sorted(skipped), dtype=np.int64)
                    s = s - np.arange(len(s))
                    r = r + np.searchsorted(s, r, side="right")
                returned += n
                pending.append(batch)
                pending_rows.append(r + 3)
                pending_bytes += batch.nbytes
            if recovered or pending_bytes >= GROUP_BYTES:
                checked += check_pending()
            if recovered:
                checked += _flush_recovered(recovered, checker, ncols)
        if unnumbered:
            return None
        checked += check_pending()
        if recovered:
            checked += _flush_recovered(recovered, checker, ncols)
        records = returned + len(skipped)
        if too_large:
            raise RecordTooLarge("a CSV record")
        if not end_seen:
            raise UnterminatedField(f"the file ends inside a quoted field (a quote never closes) after record "
                                    f"{records + 3}: the last record is cut off")
        return checked, records

    try:
        return run()
    finally:
        reader.close()
        source.release()  # no read-ahead call may outlive the reader (see ArrowSource)


def _flush_recovered(recovered, checker, ncols) -> int:
    items = sorted(recovered, key=lambda x: x[0])
    recovered.clear()
    cols = list(zip(*[f for _, f in items], strict=True))
    rows = np.array([num for num, _ in items], dtype=np.int64) + 3
    return checker.check([pa.array(cols[i], pa.string()) for i in range(ncols)], rows)


def _nonempty(a) -> np.ndarray:
    return pc.greater(pc.binary_length(a), 0).to_numpy(zero_copy_only=False)


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
            ok = pc.less_equal(pc.count_substring(a, "."), 1).to_numpy(zero_copy_only=False)
            lens = offs[1:] - offs[:-1]
            ne = lens > 0
            first = np.zeros(len(a), dtype=np.uint8)
            first[ne] = data[offs[:-1][ne]]
            zeroish = np.flatnonzero(ne & ((first == 0x30) | (first == 0x2E)))
            if len(zeroish):  # leading zero or dot: is there a non-zero digit?
                sub = a.take(pa.array(zeroish))
                nz = pc.greater(pc.binary_length(pc.utf8_ltrim(sub, characters="0.")), 0)
                ok[zeroish] &= nz.to_numpy(zero_copy_only=False)
            return ok & ne
    ok = pc.and_(pc.match_substring_regex(a, _NUM_RE), pc.match_substring_regex(a, "[1-9]"))
    return ok.to_numpy(zero_copy_only=False)


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
            sets = self._sets[allowed] = (pa.array(low, pa.string()),
                                          pa.array(sorted(set(low) | set(allowed)), pa.string()))
        r = self._cache_in.get(key)
        if r is None:
            r = pc.is_in(a, value_set=sets[1]).to_numpy(zero_copy_only=False)
            if not r.all():
                r = pc.is_in(self._lower(label), value_set=sets[0]).to_numpy(zero_copy_only=False)
            self._cache_in[key] = r
        return r

    def _eq(self, label, text) -> np.ndarray:
        a = self._arr(label)
        if a is None:
            return np.zeros(self.n, dtype=bool)
        return pc.equal(a, text).to_numpy(zero_copy_only=False)

    def _ieq(self, label, text) -> np.ndarray:
        a = self._arr(label)
        if a is None:
            return np.zeros(self.n, dtype=bool)
        # only values of the right length can match: lower-case just those when there are any
        cand = pc.equal(pc.binary_length(a), len(text.encode()))
        if not pc.any(cand).as_py():
            return np.zeros(self.n, dtype=bool)
        return pc.equal(self._lower(label), text.lower()).to_numpy(zero_copy_only=False)

    # -- rule families ----------------------------------------------------------------------
    def required(self, rule, label, suffix="", where=None):
        miss = ~self.present(label)
        if where is not None:
            miss &= where
        self.emit(rule, miss, label, _required_msg(self.col_name(label), suffix))

    def enum(self, label, allowed, where=None, required_rule=None, suffix=""):
        p = self.present(label)
        if required_rule is not None:
            miss = ~p if where is None else (~p & where)
            self.emit(required_rule, miss, label, _required_msg(self.col_name(label), suffix))
        bad = p & ~self._lower_in(label, allowed)
        if where is not None:
            bad &= where
        name = self.col_name(label)
        self.emit("allowed_value", bad, label, lambda i: _allowed_msg(name, self.value(label, i), allowed))

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
        ok = pc.or_(pc.is_in(pc.utf8_lower(a), value_set=pa.array(["0", "1 through 10"])),
                    pc.match_substring_regex(a, _COUNT_RE)).to_numpy(zero_copy_only=False)
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
        m = pc.match_substring_regex(a, _NINES_RE).to_numpy(zero_copy_only=False)
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
            take = pa.array(idx)
            blank = np.ones(len(idx), dtype=bool)
            for c in cols:
                blank &= ~_nonempty(trim(c.take(take)))
            if blank.any():
                nonblank = np.ones(n, dtype=bool)
                nonblank[idx[blank]] = False
                keep = pa.array(nonblank)
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
                      "additional_generic_notes", _notes_msg("standard charge methodology", "other"))
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
                      _notes_msg("standard charge methodology", "other"))
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
                self.emit("cond_allowed_amounts_required", need & ~self.present(lab), lab, _pct_msg(fr))
        self.emit("cond_count_zero_notes", w & zero & ~self.present(notes), notes,
                  _notes_msg("count of allowed amounts", "0"))
