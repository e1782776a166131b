"""The parse step of a hospital: every current file version into source-faithful Parquet.

Free of Dagster so the CLI, tests and assets share it. The step reads the fetch step's files
manifest from the lake and publishes its own outputs atomically: a killed run leaves the
previous version in place, and rerunning the step replaces its output.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import Lake
from price_pipeline.lib.parse.mrf import parse_to_parquet
from price_pipeline.settings import Settings

if TYPE_CHECKING:
    # Types only: the parser's package must import without the HTTP client and the registry
    # (the validate CLI and the fuzz workers import it).
    from price_pipeline.lib.registry import Registry


@dataclass
class ParsedVersion:
    file_sha256: str
    url: str
    rows_key: str
    summary: dict[str, Any]


# Bump when parse_to_parquet's output changes: stored parses of an older revision are redone.
PARSED_REVISION = 1


def _parse_one(raw_path: str, out: Path, sha256: str, *, max_findings: int, limits: dict[str, Any]) -> dict[str, Any]:
    """Parse one file; an unexpected failure of the parser becomes a not-ok summary with a
    ``parse_failed`` finding (and an empty rows file), so one file never stops the others."""
    try:
        return parse_to_parquet(raw_path, out, file_sha256=sha256, max_findings=max_findings, **limits).as_dict()
    except Exception as e:
        from price_pipeline.lib.parse.mrf.output import ParsedSink

        for stale in (out, out.parent / f"{out.stem}.quarantine.parquet"):
            stale.unlink(missing_ok=True)
        ParsedSink(out, sha256).close()  # the version's rows key always exists (empty)
        return {"source": raw_path, "ok": False, "format": None, "version": None, "encoding": None,
                "compression": None, "rows_parsed": 0, "rows_quarantined": 0, "header": {},
                "findings": [{"rule": "parse_failed", "severity": "error", "message": f"{type(e).__name__}: {e}",
                              "row": None, "column": None, "path": None}], "findings_total": 1}


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
        prefix = layout.parsed_prefix(hospital_key, outcome.sha256)
        stored = _stored_parse(lake, prefix, max_findings, limits) if reuse else None
        if stored is not None:
            parsed.append(ParsedVersion(outcome.sha256, outcome.url, f"{prefix}/rows.parquet",
                                        {**stored, "source": outcome.url}))
            continue
        out = Path(scratch_dir) / f"{outcome.sha256}.rows.parquet"
        with lake.local_copy(outcome.raw_key) as raw_path:
            summary_dict = _parse_one(raw_path, out, outcome.sha256, max_findings=max_findings, limits=limits)
        summary_dict.update(source=outcome.url, parsed_revision=PARSED_REVISION, max_findings=max_findings,
                            archive_limits=limits)
        lake.put_file(out, f"{prefix}/rows.parquet")
        quarantine = out.parent / f"{out.stem}.quarantine.parquet"
        if quarantine.exists():
            lake.put_file(quarantine, f"{prefix}/quarantine.parquet")
        lake.put_bytes(json.dumps(summary_dict, indent=1, default=str).encode(), f"{prefix}/summary.json")
        parsed.append(ParsedVersion(outcome.sha256, outcome.url, f"{prefix}/rows.parquet", summary_dict))
    current = [asdict(p) for p in parsed]
    lake.put_bytes(
        json.dumps(current, indent=1, default=str).encode(), layout.parsed_current_key(hospital_key)
    )
    return parsed


def _stored_parse(lake: Lake, prefix: str, max_findings: int, limits: dict[str, Any]) -> dict[str, Any] | None:
    """The stored summary of a parsed version when it can be reused (rows and summary present,
    same revision, findings cap and archive caps); ``summary.json`` is written after the rows, so
    it marks a complete parse. A parse that ended in an unexpected parser failure
    (``parse_failed``, perhaps a transient one such as memory) is never reused: it is tried again."""
    key = f"{prefix}/summary.json"
    if not lake.exists(key) or not lake.exists(f"{prefix}/rows.parquet"):
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
    return [ParsedVersion(**p) for p in json.loads(lake.get_bytes(layout.parsed_current_key(hospital_key)))]



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
        header = version.summary.get("header") or {}
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
