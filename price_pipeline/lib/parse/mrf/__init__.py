"""Pure parsing library for hospital price-transparency machine-readable files (MRFs).

No Dagster in here: the assets and the ``price-pipeline parse`` CLI call
:func:`parse_to_parquet`, which streams one file (CSV tall, CSV wide, JSON; plain, zip or
gzip; even an xlsx workbook laid out like the CSV template) into a Parquet file with
``PARSED_SCHEMA`` and returns a :class:`ParseSummary`. Bad input never raises: it becomes
:class:`Finding` records (capped) and, for unreadable rows, a quarantine Parquet file.

Modules: ``sniff`` (compression/encoding/kind from content), ``header`` (rows 1-3, JSON top
level), ``csv_reader`` (Arrow streaming + vectorised cleaning/unpivot), ``json_reader``
(ijson streaming), ``values`` (numbers, placeholders, dates), ``findings``, ``output``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

from .csv_reader import EncodingRetry, RecordTooLong, read_csv
from .findings import Finding, FindingCollector
from .header import empty_header
from .json_reader import read_json
from .limits import InputLimit, guarded
from .output import ParsedSink, quarantine_path
from .sniff import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RATIO,
    RATIO_GRACE_BYTES,
    SAMPLE_BYTES,
    TranscodingReader,
    archive_error,
    detect_encoding,
    detect_kind,
    open_source,
)

__all__ = ["Finding", "ParseSummary", "parse_to_parquet", "quarantine_path"]


@dataclass
class ParseSummary:
    """Outcome of parsing one file."""

    source: str
    ok: bool
    format: str | None
    version: str | None
    encoding: str | None
    compression: str | None
    rows_parsed: int
    rows_quarantined: int
    header: dict
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0

    def as_dict(self) -> dict:
        """JSON-serialisable dict (findings as dicts)."""
        return {
            "source": self.source, "ok": self.ok, "format": self.format, "version": self.version,
            "encoding": self.encoding, "compression": self.compression, "rows_parsed": self.rows_parsed,
            "rows_quarantined": self.rows_quarantined, "header": self.header,
            "findings": [f.as_dict() for f in self.findings], "findings_total": self.findings_total,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ParseSummary:
        """The summary :meth:`as_dict` wrote (keys it does not know are ignored)."""
        return cls(
            source=data["source"], ok=bool(data["ok"]), format=data.get("format"), version=data.get("version"),
            encoding=data.get("encoding"), compression=data.get("compression"),
            rows_parsed=data.get("rows_parsed", 0), rows_quarantined=data.get("rows_quarantined", 0),
            header=data.get("header") or {}, findings=[Finding(**f) for f in data.get("findings", [])],
            findings_total=data.get("findings_total", 0),
        )


_KNOWN_VERSIONS = ("2.0.0", "2.1.0", "2.2.0", "2.2.1", "3.0.0")


def parse_to_parquet(src: str | os.PathLike, out_path: str | os.PathLike, *, file_sha256: str | None = None,
                     max_findings: int = 1000, max_decompressed_bytes: int = DEFAULT_MAX_BYTES,
                     max_ratio: float = DEFAULT_MAX_RATIO, ratio_grace_bytes: int = RATIO_GRACE_BYTES,
                     json_full_parse_below: int | None = None, json_parallel: bool = True,
                     json_chunk_bytes: int | None = None) -> ParseSummary:
    """Stream ``src`` (plain, .zip or .gz — detected from magic bytes, not extension) into a
    Parquet file at ``out_path`` with PARSED_SCHEMA (always written, empty when nothing parsed).

    Quarantined rows (unreadable) go to a sibling Parquet ``<out_path stem>.quarantine.parquet``
    with source_row, raw content and reason, written only when there are any. Never raises for
    bad input content; raises only for tool failures (e.g. ``out_path`` not writable, ``src``
    missing). ``max_decompressed_bytes`` / ``max_ratio`` cap zip and gzip payloads (the ratio
    is checked once ``ratio_grace_bytes`` have been produced). ``json_parallel`` /
    ``json_chunk_bytes``: JSON payloads of ``json_full_parse_below`` (8 MiB) or more are read in
    chunks of complete items by two threads (same rows as the sequential reader).
    """
    source = os.fspath(src)
    fc = FindingCollector(max_findings)
    sink = ParsedSink(out_path, file_sha256)  # opened first: an unwritable out_path raises here
    header = empty_header()
    result = {"format": None, "ok": False}
    encoding = None
    s = open_source(source, max_bytes=max_decompressed_bytes, max_ratio=max_ratio, ratio_grace=ratio_grace_bytes)
    for rule, sev, msg in s.notes:
        fc.add(rule, sev, msg)
    try:
        if s.container == "xlsx":
            from .xlsx_reader import read_xlsx

            fc.add("xlsx_not_cms_format", "warning", "Excel workbook instead of CSV/JSON; read its first sheet")
            result = read_xlsx(source, sink=sink, fc=fc, sha=file_sha256, header_out=header)
        elif s.container == "broken":
            result = {"format": None, "ok": False}
        else:
            with s.open() as f:
                sample = f.read(SAMPLE_BYTES)
            encoding, bom = detect_encoding(sample, complete=len(sample) < SAMPLE_BYTES)
            if encoding == "utf-8-sig":
                fc.add("utf8_bom", "info", "UTF-8 byte order mark at the start of the file")
            elif encoding.startswith("utf-16"):
                fc.add("utf16_encoding", "warning", f"file is {encoding}, not UTF-8")
            elif encoding != "utf-8":
                fc.add("non_utf8_encoding", "warning", f"file is not UTF-8; read as {encoding}")
            result = _parse_payload(s, sample, encoding, bom, sink, fc, file_sha256, header,
                                    json_full_parse_below, json_parallel, json_chunk_bytes)
            if result.pop("encoding", None):
                encoding = "cp1252"
    except InputLimit as e:
        fc.add(e.rule, "error", e.message)
        result = {"format": result.get("format"), "ok": False}
    except Exception as e:
        # A damaged archive fails wherever its bytes are read (the sample, a reader thread, a
        # retry): the file ends not ok with a finding naming the damage, never with the rows
        # read so far passed off as the file.
        what = archive_error(e)
        if what is None:
            raise
        fc.add(what[0], "error", what[1])
        result = {"format": result.get("format"), "ok": False}
    finally:
        sink.close()
    version = header.get("version")
    if result.get("ok") and version and version not in _KNOWN_VERSIONS:
        fc.add("unknown_version", "warning", f"version {version!r} is not a known CMS template version")
    elif result.get("ok") and not version:
        fc.add("unknown_version", "warning", "no template version declared")
    return ParseSummary(
        source=source, ok=bool(result.get("ok")), format=result.get("format"), version=version,
        encoding=encoding, compression=s.compression, rows_parsed=sink.rows,
        rows_quarantined=sink.quarantined, header=header, findings=fc.findings, findings_total=fc.total,
    )


def _utf8_stream(s, encoding: str, bom: int):
    """Fresh UTF-8 byte stream of the payload, BOM removed, transcoded when needed."""
    f = s.open()
    if encoding in ("utf-8", "utf-8-sig"):
        if bom:
            f.read(bom)
        return f
    if bom:
        f.read(bom)
    return io.BufferedReader(TranscodingReader(f, encoding.replace("-sig", "")), 1 << 22)


def _parse_payload(s, sample, encoding, bom, sink, fc, sha, header, json_full_parse_below, json_parallel,
                   json_chunk_bytes) -> dict:
    text_head = sample[bom : bom + 65536].decode(encoding.replace("-sig", ""), "replace")
    kind = detect_kind(text_head)
    if kind == "html":
        fc.add("html_instead_of_data", "error", "an HTML page was served instead of the MRF")
        return {"format": None, "ok": False}
    if kind == "empty":
        fc.add("empty_file", "error", "file is empty")
        return {"format": None, "ok": False}
    if kind in ("xml", "binary"):
        fc.add("not_an_mrf", "error", f"content is {kind}, not CSV or JSON")
        return {"format": None, "ok": False}
    if kind == "json":
        kw = {"parallel": json_parallel, "chunk_bytes": json_chunk_bytes}
        if json_full_parse_below is not None:
            kw["full_parse_below"] = json_full_parse_below
        return read_json(lambda: guarded(_utf8_stream(s, encoding, bom)), sink=sink, fc=fc, sha=sha, header_out=header, **kw)
    state = fc.snapshot()
    plain = s.path if (s.compression is None and encoding in ("utf-8", "utf-8-sig")) else None
    try:
        return _read_csv_payload(s, encoding, bom, plain, sink, fc, sha, header, state)
    except EncodingRetry as e:
        # Invalid UTF-8 after the sampled first MiB: start again as cp1252 (no data is lost:
        # every byte decodes), dropping what was written and found so far.
        _restart(fc, state, sink, header)
        fc.add("non_utf8_encoding", "warning", f"invalid UTF-8 after the first MiB ({e}); re-read as cp1252")
        res = _read_csv_payload(s, "cp1252", bom, None, sink, fc, sha, header, fc.snapshot())
        res["encoding"] = "cp1252"
        return res


def _restart(fc, state, sink, header) -> None:
    """Forget what a parse attempt wrote and found, before reading the payload again."""
    fc.rollback(state)
    sink.reset()
    header.clear()
    header.update(empty_header())


def _read_csv_payload(s, encoding, bom, plain, sink, fc, sha, header, state) -> dict:
    """``read_csv`` of the payload, again with bigger Arrow blocks while a record does not fit."""
    block_size = None
    while True:
        try:
            with _utf8_stream(s, encoding, bom) as f:
                return read_csv(f, encoding=encoding, plain_path=plain, body_offset_base=bom if plain else 0,
                                sink=sink, fc=fc, sha=sha, header_out=header, block_size=block_size)
        except RecordTooLong as e:
            _restart(fc, state, sink, header)
            block_size = e.block_size
            fc.add("long_record", "info",
                   f"a CSV record is longer than the parse block; re-read with {block_size // 1024**2} MiB blocks")
