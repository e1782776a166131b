"""The parse step of a hospital: every current file version into source-faithful Parquet.

Free of Dagster so the CLI, tests and assets share it. The step reads the fetch step's files
manifest from the lake and publishes its own outputs atomically: a killed run leaves the
previous version in place, and rerunning the step replaces its output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import Lake
from price_pipeline.lib.parse.mrf import Finding, ParseSummary, parse_to_parquet, quarantine_path
from price_pipeline.settings import Settings

if TYPE_CHECKING:
    # Types only: the parser's package must import without the HTTP client and the registry
    # (the validate CLI and the fuzz workers import it).
    from price_pipeline.lib.registry import Registry


# Bump when parse_to_parquet's output changes: stored parses of an older revision are redone.
PARSED_REVISION = 1


@dataclass(frozen=True)
class ParsedVersion:
    """One current file version as the parse step hands it on: where its rows are and its typed
    parse summary, with the parse settings the stored rows were made with.

    The hand-off to prices, checks and quarantine is ``parsed/hospital_key=<k>/current.json``
    (a list of :meth:`to_dict`), and each version's ``summary.json`` holds the same summary; both
    are written by :func:`parse_hospital_files` and read by :func:`current_parsed_versions` only.
    """

    file_sha256: str
    url: str
    rows_key: str
    summary: ParseSummary
    parsed_revision: int | None = None
    max_findings: int | None = None
    archive_limits: dict[str, Any] = field(default_factory=dict)

    def summary_dict(self) -> dict[str, Any]:
        """The JSON form of ``summary.json``: the parse summary and the settings it was made with."""
        return {**self.summary.as_dict(), "parsed_revision": self.parsed_revision,
                "max_findings": self.max_findings, "archive_limits": self.archive_limits}

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``current.json``."""
        return {"file_sha256": self.file_sha256, "url": self.url, "rows_key": self.rows_key,
                "summary": self.summary_dict()}

    @classmethod
    def from_summary(cls, file_sha256: str, url: str, rows_key: str, summary: dict[str, Any]) -> ParsedVersion:
        """The record of a stored summary (``summary.json`` or a ``current.json`` entry's)."""
        return cls(file_sha256, url, rows_key, ParseSummary.from_dict(summary),
                   parsed_revision=summary.get("parsed_revision"), max_findings=summary.get("max_findings"),
                   archive_limits=summary.get("archive_limits", {}))


def _parse_one(raw_path: str, out: Path, sha256: str, *, max_findings: int, limits: dict[str, Any]) -> ParseSummary:
    """Parse one file; an unexpected failure of the parser becomes a not-ok summary with a
    ``parse_failed`` finding (and an empty rows file), so one file never stops the others."""
    try:
        return parse_to_parquet(raw_path, out, file_sha256=sha256, max_findings=max_findings, **limits)
    except Exception as e:
        from price_pipeline.lib.parse.mrf.output import ParsedSink

        for stale in (out, Path(quarantine_path(out))):
            stale.unlink(missing_ok=True)
        ParsedSink(out, sha256).close()  # the version's rows key always exists (empty)
        return ParseSummary(source=raw_path, ok=False, format=None, version=None, encoding=None, compression=None,
                            rows_parsed=0, rows_quarantined=0, header={},
                            findings=[Finding("parse_failed", "error", f"{type(e).__name__}: {e}")], findings_total=1)


def parse_hospital_files(
    hospital_key: str, *, lake: Lake, scratch_dir: str | os.PathLike, max_findings: int = 1000,
    settings: Settings | None = None, reuse: bool = True,
) -> list[ParsedVersion]:
    """Parse every current file of a hospital into source-faithful Parquet (one per version).

    Each file on its own: a file that cannot be parsed is recorded not ok with its findings and
    the others are still parsed. ``settings``: the zip/gzip caps (``Settings.archive_limits``;
    the parser's defaults without). A version already parsed (its ``summary.json`` of this
    :data:`PARSED_REVISION` and the same ``max_findings`` beside its rows) is reused, not parsed
    again: the bytes are the same."""
    from price_pipeline.lib.fetch.files import FilesManifest

    limits = settings.archive_limits() if settings is not None else {}
    manifest = FilesManifest.from_json(lake.get_bytes(layout.files_manifest_key(hospital_key)))
    parsed: list[ParsedVersion] = []
    for outcome in manifest.ok_files:
        rows_key = layout.parsed_rows_key(hospital_key, outcome.sha256)
        stored = _stored_parse(lake, hospital_key, outcome.sha256, max_findings, limits) if reuse else None
        if stored is not None:
            parsed.append(ParsedVersion.from_summary(outcome.sha256, outcome.url, rows_key,
                                                     {**stored, "source": outcome.url}))
            continue
        out = Path(scratch_dir) / f"{outcome.sha256}.rows.parquet"
        with lake.local_copy(outcome.raw_key) as raw_path:
            summary = _parse_one(raw_path, out, outcome.sha256, max_findings=max_findings, limits=limits)
        version = ParsedVersion(outcome.sha256, outcome.url, rows_key, dataclasses.replace(summary, source=outcome.url),
                                parsed_revision=PARSED_REVISION, max_findings=max_findings, archive_limits=limits)
        # Moved, not copied: the scratch files are not read again, and a local lake's scratch
        # folder is on its filesystem (a rename instead of rewriting the rows; S3 uploads either way).
        quarantine = Path(quarantine_path(out))
        lake.move_file(out, rows_key)
        if quarantine.exists():
            lake.move_file(quarantine, layout.parsed_quarantine_key(hospital_key, outcome.sha256))
        # written after the rows: a summary marks a complete parse (see _stored_parse)
        lake.put_bytes(_json(version.summary_dict()), layout.parsed_summary_key(hospital_key, outcome.sha256))
        parsed.append(version)
    lake.put_bytes(_json([p.to_dict() for p in parsed]), layout.parsed_current_key(hospital_key))
    return parsed


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, default=str).encode()


def _stored_parse(
    lake: Lake, hospital_key: str, file_sha256: str, max_findings: int, limits: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored summary of a parsed version when it can be reused (rows and summary present,
    same revision, findings cap and archive caps); ``summary.json`` is written after the rows, so
    it marks a complete parse. A parse that ended in an unexpected parser failure
    (``parse_failed``, perhaps a transient one such as memory) is never reused: it is tried again."""
    key = layout.parsed_summary_key(hospital_key, file_sha256)
    if not lake.exists(key) or not lake.exists(layout.parsed_rows_key(hospital_key, file_sha256)):
        return None
    summary = json.loads(lake.get_bytes(key))
    if summary.get("parsed_revision") != PARSED_REVISION or summary.get("max_findings") != max_findings:
        return None
    if summary.get("archive_limits", {}) != json.loads(json.dumps(limits, default=str)):
        return None
    if any(f.get("rule") == "parse_failed" for f in summary.get("findings", [])):
        return None
    return summary


def current_parsed_versions(hospital_key: str, *, lake: Lake) -> list[ParsedVersion]:
    """The hospital's current parsed versions, as :func:`parse_hospital_files` last published them."""
    return [
        ParsedVersion.from_summary(p["file_sha256"], p["url"], p["rows_key"], p["summary"])
        for p in json.loads(lake.get_bytes(layout.parsed_current_key(hospital_key)))
    ]


HEADER_CLAIM_SOURCE = "mrf_header"
_NPI = re.compile(r"^\d{10}$")


def record_header_claims(hospital_key: str, versions: list[ParsedVersion], *, registry: Registry) -> int:
    """Record what each parsed file says about its hospital (name, NPIs, license, addresses).

    The MRF header is the hospital's own statement of identity, so its type-2 NPIs join the
    identifiers discovery reconciles on (an NPI keeps the key it was first seen with), and the
    header is kept as a claim beside the catalog's, with its source and timestamps.
    Returns the number of NPIs recorded.
    """
    claims, identifiers = [], []
    for version in versions:
        header = version.summary.header or {}
        npis = [n.strip() for n in header.get("type_2_npi") or [] if n and _NPI.match(n.strip())]
        identifiers.extend(("npi", npi, hospital_key) for npi in npis)
        claims.append(
            (
                hospital_key,
                {
                    "file_sha256": version.file_sha256,
                    "url": version.url,
                    "hospital_name": header.get("hospital_name"),
                    "type_2_npi": npis,
                    "license_number": header.get("license_number"),
                    "license_state": header.get("license_state"),
                    "location_name": header.get("location_name"),
                    "hospital_address": header.get("hospital_address"),
                    "last_updated_on": header.get("last_updated_on"),
                },
            )
        )
    if claims:
        registry.record_claims(HEADER_CLAIM_SOURCE, claims)
    registry.record_identifiers(identifiers)
    return len(set(identifiers))
