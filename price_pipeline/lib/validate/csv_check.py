"""CSV (tall and wide) conformance checks: rows 1-3 in Python, data rows vectorised.

This module runs the checks; the jobs live beside it: :mod:`.csv_header` (rows 1-3 and the
column layout), :mod:`.csv_body` (streaming the data rows), :mod:`.csv_rows` (the vectorised row
rules), :mod:`.csv_line_endings` (lone-CR files read as the official validator reads them) and
:mod:`.csv_messages` (the official wording).

Rows 1-3 are located with the parser's quote-aware :func:`scan_records` and read with the
``csv`` module; the body is streamed by ``pyarrow.csv`` (all columns as strings) and each
record batch is checked with ``pyarrow.compute`` / numpy masks, one pass per rule, never a
Python loop over cells. Only the findings that are kept (the first N) are formatted.

Semantics follow the official validator (``@cmsgov/hpt-validator`` 2.4.0 ``CsvValidator``):
values are trimmed, header names are compared case-insensitively with spaces around ``|``
ignored, and when rows 1-3 have errors the data rows are not evaluated.
"""

from __future__ import annotations

import io

from price_pipeline.lib.parse.mrf.csv_reader import (
    RecordTooLong,
)

from .csv_body import body_input, check_body
from .csv_header import (
    CsvLayout,
    check_header,
    declared_version,
    format_label,
    header_alerts,
    ieq,
    read_head,
    sep_equal,
)
from .csv_line_endings import LfRecordReader, has_lf, has_lone_cr
from .report import ReportCollector
from .rules import (
    as_chooser,
    csv_cell,
)

BLOCK_SIZE = 1024**2  # Arrow reads ahead 32 blocks: this bounds the reader's memory
THREADS = True  # Arrow parses CSV blocks on all cores (restarted without for rows of the wrong width)


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
            res = check_body(body_input(stream, buf, body_at, plain_path, bom, layout), layout, rc, threads=THREADS,
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
                res = check_body(body_input(stream, buf, body_at, plain_path, bom, layout), layout, rc, threads=False,
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


def _validate_lf_view(open_stream, rc: ReportCollector, rv: str, info: dict) -> dict:
    """Validate a file with lone-CR record ends as the official validator reads it (records split
    on LF only), with a ``cr_line_endings`` alert that says so. The file facts (declared version,
    format) stay those of the CR-aware reading, which is how the parser reads the file."""
    why = ("The file's records end with a lone CR (classic Mac OS line endings). The CMS validator splits "
           "records on LF only")
    if not has_lf(open_stream):
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


def _column_alerts(layout: CsvLayout, rc: ReportCollector) -> None:
    if not layout.v3:
        return
    msg = ("The 'estimated amount' is no longer a required data element as of January 1, 2026. It has been "
           "replaced by the 10th percentile, median, 90th percentile, and count of allowed amounts.")
    cols = layout.columns
    targets = ["estimated_amount"] if layout.is_tall else [f"estimated_amount | {p}" for p in layout.payers_plans]
    for t in targets:
        idx = next((i for i, c in enumerate(cols) if (ieq(c, t) if layout.is_tall else sep_equal(c, t))), -1)
        if idx > -1:
            rc.add("estimated_amount_v3", f"Column {cols[idx]} found in column headers. {msg}", row=3,
                   column=cols[idx], cell=csv_cell(2, idx))
