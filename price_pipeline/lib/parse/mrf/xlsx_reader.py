"""Excel workbooks (not a CMS format, but published): first sheet read as the CSV template.

python-calamine loads the sheet (a workbook is not streamable anyway; real ones are small).
Cells are turned into the strings a CSV export would hold (``1200.0`` -> ``1200``), then the
CSV header logic and :class:`~.csv_reader.BatchBuilder` do the rest.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from .csv_reader import BatchBuilder
from .header import classify_columns, looks_like_column_row, parse_csv_header

BATCH = 50_000


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()[:10]
    return str(v)


def read_xlsx(path: str, *, sink, fc, sha, header_out: dict) -> dict:
    """Parse the first sheet of an xlsx workbook laid out like a CMS CSV template."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(path)
        rows = wb.get_sheet_by_index(0).to_python()
    except Exception as e:  # calamine raises its own error types for corrupt workbooks
        fc.add("not_an_mrf", "error", f"unreadable workbook: {e}")
        return {"format": None, "ok": False}
    rows = [[_cell(c) for c in r] for r in rows]
    col_row = next((k for k, r in enumerate(rows[:3]) if looks_like_column_row(r)), None)
    if col_row is None:
        fc.add("not_an_mrf", "error", "workbook's first sheet does not follow the CMS CSV template")
        return {"format": None, "ok": False}
    if col_row >= 1:
        header_out.update(parse_csv_header(rows[0], rows[1] if col_row == 2 else [], fc))
    layout = classify_columns(rows[col_row], fc)
    builder = BatchBuilder(layout, fc, sha)
    ncols = layout.ncols
    data = rows[col_row + 1 :]
    for start in range(0, len(data), BATCH):
        part = [(r + [""] * ncols)[:ncols] for r in data[start : start + BATCH]]
        src = np.arange(start, start + len(part), dtype=np.int64) + col_row + 2
        keep = [i for i, r in enumerate(part) if any(x.strip() for x in r)]
        part = [part[i] for i in keep]
        src = src[keep]
        if not part:
            continue
        cols = list(zip(*part, strict=True))
        sink.write(builder.build(lambda i, _c=cols: pa.array(_c[i], pa.string()), len(part), src))
    return {"format": layout.fmt, "ok": True}
