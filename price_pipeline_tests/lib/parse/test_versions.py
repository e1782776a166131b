"""The parse step's hand-off (``current.json``, ``summary.json``): typed, written and read in one place."""

from __future__ import annotations

import hashlib
import json

from price_pipeline.lib.fetch import FileOutcome, FilesManifest
from price_pipeline.lib.lake import LocalLake, layout
from price_pipeline.lib.parse import (
    ParsedVersion,
    ParseSummary,
    current_parsed_versions,
    parse_hospital_files,
)
from price_pipeline.lib.parse.versions import PARSED_REVISION

from ..conftest import CMS

TALL = CMS / "V2.0.0_Tall_CSV_Format_Example.csv"


def _publish(lake: LocalLake, files: dict[str, bytes]) -> None:
    outcomes = []
    for url, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        lake.put_bytes(data, layout.raw_key(sha, "csv"))
        outcomes.append(FileOutcome(url=url, status="ok", sha256=sha, size=len(data), raw_key=layout.raw_key(sha, "csv")))
    lake.put_bytes(FilesManifest("h1", outcomes).to_json(), layout.files_manifest_key("h1"))


def test_current_json_round_trips_as_typed_records_in_the_stored_format(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _publish(lake, {"https://h.example/a.csv": TALL.read_bytes(), "https://h.example/b.csv": b"<html>oops</html>"})
    written = parse_hospital_files("h1", lake=lake, scratch_dir=scratch)
    read = current_parsed_versions("h1", lake=lake)
    assert read == [v for v in written]  # the same records, typed, whoever reads them
    assert all(isinstance(v, ParsedVersion) and isinstance(v.summary, ParseSummary) for v in read)
    good, bad = read
    assert good.summary.ok and good.summary.rows_parsed > 0 and good.summary.source == "https://h.example/a.csv"
    assert not bad.summary.ok and {f.rule for f in bad.summary.findings} == {"html_instead_of_data"}
    assert good.rows_key == layout.parsed_rows_key("h1", good.file_sha256)
    # The stored JSON keeps the layout older lakes hold (and older readers expect): one entry per
    # version with the parse summary's fields, then the settings the rows were parsed with.
    stored = json.loads(lake.get_bytes(layout.parsed_current_key("h1")))
    assert [list(entry) for entry in stored] == [["file_sha256", "url", "rows_key", "summary"]] * 2
    assert list(stored[0]["summary"]) == [
        "source", "ok", "format", "version", "encoding", "compression", "rows_parsed", "rows_quarantined",
        "header", "findings", "findings_total", "parsed_revision", "max_findings", "archive_limits",
    ]
    assert stored[0]["summary"]["parsed_revision"] == PARSED_REVISION and stored[0]["summary"]["max_findings"] == 1000
    assert json.loads(lake.get_bytes(layout.parsed_summary_key("h1", good.file_sha256))) == stored[0]["summary"]
    assert lake.get_bytes(layout.parsed_current_key("h1")) == json.dumps(
        [v.to_dict() for v in read], indent=1, default=str
    ).encode()
    # A rerun reuses both parses and publishes the same hand-off, byte for byte.
    before = lake.get_bytes(layout.parsed_current_key("h1"))
    assert parse_hospital_files("h1", lake=lake, scratch_dir=scratch) == read
    assert lake.get_bytes(layout.parsed_current_key("h1")) == before
