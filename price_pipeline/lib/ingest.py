"""Per-hospital ingestion steps, free of Dagster so the CLI, tests and assets share them.

Each step reads the previous step's output from the lake and publishes its own atomically:
a killed run leaves the previous version in place, and rerunning a step replaces its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from price_pipeline.lib import layout
from price_pipeline.lib.http.download import download
from price_pipeline.lib.mrf import parse_to_parquet
from price_pipeline.lib.normalize import normalize_to_prices
from price_pipeline.lib.registry import FileVersion, Registry
from price_pipeline.lib.storage import Lake
from price_pipeline.settings import Settings


@dataclass
class FileOutcome:
    """What happened to one listed file of a hospital in this run."""

    url: str
    status: str  # ok | failed | rejected (downloaded, but not a price file; bytes kept as evidence)
    sha256: str | None = None
    size: int | None = None
    raw_key: str | None = None
    extension: str | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    attempts: int = 0
    error: str | None = None
    error_kind: str | None = None
    stored_new_bytes: bool = False


@dataclass
class FilesManifest:
    hospital_key: str
    files: list[FileOutcome] = field(default_factory=list)
    fetched_at: float = field(default_factory=time.time)

    @property
    def ok_files(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "ok"]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> FilesManifest:
        raw = json.loads(data)
        return cls(
            hospital_key=raw["hospital_key"],
            files=[FileOutcome(**f) for f in raw["files"]],
            fetched_at=raw.get("fetched_at", 0.0),
        )


def fetch_hospital_files(
    hospital_key: str,
    urls: list[str],
    *,
    lake: Lake,
    registry: Registry,
    settings: Settings,
    scratch_dir: str | os.PathLike,
    log=None,
) -> FilesManifest:
    """Download each listed file, store its bytes by sha256 and record the version.

    Identical bytes are stored once; a new version never overwrites an old one. Downloads that
    are not price files (an HTML error page behind a .csv link) are kept too, marked rejected,
    so the evidence of what the hospital served is never lost.
    """
    manifest = FilesManifest(hospital_key=hospital_key)
    for url in urls:
        result = download(url, scratch_dir, settings=settings)
        outcome = FileOutcome(
            url=url,
            status="ok" if result.ok else "failed",
            sha256=result.sha256,
            size=result.size,
            extension=result.extension,
            content_type=result.content_type,
            etag=result.etag,
            last_modified=result.last_modified,
            attempts=result.attempts,
            error=result.error,
            error_kind=result.error_kind,
        )
        have_bytes = result.path is not None and result.sha256 and Path(result.path).exists()
        if have_bytes:
            if not result.ok:
                outcome.status = "rejected"
            key = layout.raw_key(result.sha256, result.extension or "bin")
            if not lake.exists(key):
                mover = getattr(lake, "move_file", lake.put_file)
                mover(result.path, key)
                outcome.stored_new_bytes = True
            outcome.raw_key = key
            Path(result.path).unlink(missing_ok=True)
        registry.record_file_version(
            FileVersion(
                hospital_key=hospital_key,
                url=url,
                sha256=outcome.sha256 if have_bytes else None,
                size=outcome.size,
                status=outcome.status,
                raw_key=outcome.raw_key,
                etag=outcome.etag,
                last_modified=outcome.last_modified,
                content_type=outcome.content_type,
                error=outcome.error,
                error_kind=outcome.error_kind,
            )
        )
        if log:
            log(f"{url}: {outcome.status} {outcome.sha256 or ''} {outcome.error or ''}".strip())
        manifest.files.append(outcome)
    lake.put_bytes(manifest.to_json(), layout.files_manifest_key(hospital_key))
    return manifest


@dataclass
class ParsedVersion:
    file_sha256: str
    url: str
    rows_key: str
    summary: dict[str, Any]


def parse_hospital_files(
    hospital_key: str, *, lake: Lake, scratch_dir: str | os.PathLike, max_findings: int = 1000
) -> list[ParsedVersion]:
    """Parse every current file of a hospital into source-faithful Parquet (one per version)."""
    manifest = FilesManifest.from_json(lake.get_bytes(layout.files_manifest_key(hospital_key)))
    parsed: list[ParsedVersion] = []
    for outcome in manifest.ok_files:
        prefix = layout.parsed_prefix(hospital_key, outcome.sha256)
        out = Path(scratch_dir) / f"{outcome.sha256}.rows.parquet"
        with lake.local_copy(outcome.raw_key) as raw_path:
            summary = parse_to_parquet(raw_path, out, file_sha256=outcome.sha256, max_findings=max_findings)
        summary_dict = summary.as_dict()
        summary_dict["source"] = outcome.url
        lake.put_file(out, f"{prefix}/rows.parquet")
        quarantine = out.parent / f"{out.stem}.quarantine.parquet"
        if quarantine.exists():
            lake.put_file(quarantine, f"{prefix}/quarantine.parquet")
        lake.put_bytes(json.dumps(summary_dict, indent=1, default=str).encode(), f"{prefix}/summary.json")
        parsed.append(ParsedVersion(outcome.sha256, outcome.url, f"{prefix}/rows.parquet", summary_dict))
    current = [asdict(p) for p in parsed]
    lake.put_bytes(json.dumps(current, indent=1, default=str).encode(), layout.parsed_current_key(hospital_key))
    return parsed


def current_parsed_versions(hospital_key: str, *, lake: Lake) -> list[ParsedVersion]:
    return [ParsedVersion(**p) for p in json.loads(lake.get_bytes(layout.parsed_current_key(hospital_key)))]


def build_hospital_prices(
    hospital_key: str, *, lake: Lake, scratch_dir: str | os.PathLike, memory_limit: str = "1GB"
) -> tuple[int, int]:
    """Normalise the hospital's current parsed files into the canonical prices table.

    Returns (rows, bytes). Files whose parse found no readable MRF are skipped.
    """
    versions = [v for v in current_parsed_versions(hospital_key, lake=lake) if v.summary.get("ok")]
    out = Path(scratch_dir) / "prices.parquet"
    with contextlib.ExitStack() as stack:
        inputs = [
            (stack.enter_context(lake.local_copy(v.rows_key)), v.summary.get("header", {}), v.file_sha256)
            for v in versions
        ]
        rows = normalize_to_prices(inputs, out, hospital_key=hospital_key, memory_limit=memory_limit)
    size = out.stat().st_size
    lake.put_file(out, layout.prices_key(hospital_key))
    return rows, size
