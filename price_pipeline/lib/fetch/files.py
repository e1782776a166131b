"""The fetch step of a hospital: download each listed file that changed, store it by sha256.

Free of Dagster so the CLI, tests and assets share it. The step publishes the hospital's files
manifest (:class:`FilesManifest`, ``manifests/hospital_key=<k>/mrf_files.json``) atomically: a
killed run leaves the previous manifest in place, and rerunning the step replaces it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from price_pipeline.lib.fetch.http.download import download
from price_pipeline.lib.lake import layout
from price_pipeline.lib.lake.storage import Lake
from price_pipeline.lib.registry import FileVersion, Registry
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
    # change detection: True when a probe proved the stored version current (nothing downloaded)
    unchanged: bool = False
    signal: str | None = None


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
    force: bool = False,
) -> FilesManifest:
    """Download each listed file that changed, store its bytes by sha256 and record the version.

    A file with a stored version is first probed (:mod:`price_pipeline.lib.fetch.change_detection`:
    conditional GET -> HEAD size -> range fingerprint); when the probe proves it unchanged,
    nothing is downloaded and the version's ``last_seen_at`` is bumped. ``force`` downloads
    everything (the weekly re-scan) and uses the outcome to confirm or distrust each host's
    signals. Identical bytes are stored once; a new version never overwrites an old one.
    Downloads that are not price files (an HTML error page behind a .csv link) are kept too,
    marked rejected, so the evidence of what the hospital served is never lost.
    """
    import datetime as dt
    from urllib.parse import urlsplit

    from price_pipeline.lib.fetch import change_detection as cd
    from price_pipeline.lib.fetch.http.fetch import make_client

    manifest = FilesManifest(hospital_key=hospital_key)
    states = registry.file_states([hospital_key])
    profiles = registry.host_profiles()
    observations: list[tuple[str, str, bool]] = []
    with make_client(settings, pool=4) as probe_client:
        for url in urls:
            host = urlsplit(url).hostname or ""
            state = states.get((hospital_key, url))
            previous = registry.latest_ok_version(hospital_key, url)
            probed = None
            if (
                state is not None
                and state.get("sha256")
                and state.get("status") == "ok"
                and previous is not None
                and previous.get("raw_key")
                and previous["sha256"] == state["sha256"]
                and lake.exists(previous["raw_key"])
            ):
                probed = cd.probe(state, settings=settings, client=probe_client, profile=profiles.get(host))
                observations.extend(probed.observations)
                if probed.verdict == "unchanged" and not force:
                    outcome = _unchanged_outcome(url, previous, probed)
                    registry.record_file_version(_file_version(hospital_key, outcome, sha256=outcome.sha256))
                    registry.upsert_file_states(
                        [
                            {
                                "hospital_key": hospital_key,
                                "url": url,
                                "status": "ok",
                                "last_signal": probed.signal,
                                "last_checked_at": dt.datetime.now(dt.UTC),
                                "error": None,
                                "consecutive_failures": 0,
                                "etag": outcome.etag,
                                "last_modified": outcome.last_modified,
                            }
                        ]
                    )
                    if log:
                        log(f"{url}: unchanged ({probed.signal}), not downloaded")
                    manifest.files.append(outcome)
                    continue
            outcome = _download_one(
                hospital_key,
                url,
                lake=lake,
                registry=registry,
                settings=settings,
                scratch_dir=scratch_dir,
                state=state,
            )
            if probed is not None and outcome.status == "ok" and probed.signal in cd_signals():
                # The full sha256 is the truth: did the cheap signal tell it right?
                really_changed = outcome.sha256 != state["sha256"]
                said_changed = probed.verdict == "changed"
                if probed.verdict in ("changed", "unchanged"):
                    observations.append((host, probed.signal, really_changed == said_changed))
            outcome.signal = probed.signal if probed is not None else None
            if log:
                log(f"{url}: {outcome.status} {outcome.sha256 or ''} {outcome.error or ''}".strip())
            manifest.files.append(outcome)
    registry.record_host_signals(observations)
    lake.put_bytes(manifest.to_json(), layout.files_manifest_key(hospital_key))
    return manifest


def cd_signals() -> tuple[str, ...]:
    return ("conditional", "head", "range")


def _file_version(hospital_key: str, outcome: FileOutcome, *, sha256: str | None) -> FileVersion:
    """The registry row for an outcome; ``sha256`` only when its bytes are really stored."""
    return FileVersion(
        hospital_key=hospital_key,
        url=outcome.url,
        sha256=sha256,
        size=outcome.size,
        status=outcome.status,
        raw_key=outcome.raw_key,
        etag=outcome.etag,
        last_modified=outcome.last_modified,
        content_type=outcome.content_type,
        error=outcome.error,
        error_kind=outcome.error_kind,
    )


def _unchanged_outcome(url: str, previous: dict[str, Any], probed) -> FileOutcome:
    raw_key = previous["raw_key"]
    return FileOutcome(
        url=url,
        status="ok",
        sha256=previous["sha256"],
        size=previous["size"],
        raw_key=raw_key,
        extension=raw_key.rsplit(".", 1)[-1] if "." in raw_key else "bin",
        content_type=previous.get("content_type"),
        etag=probed.etag or previous.get("etag"),
        last_modified=probed.last_modified or previous.get("last_modified"),
        unchanged=True,
        signal=probed.signal,
    )


def _download_one(
    hospital_key: str,
    url: str,
    *,
    lake: Lake,
    registry: Registry,
    settings: Settings,
    scratch_dir: str | os.PathLike,
    state: dict[str, Any] | None,
) -> FileOutcome:
    import datetime as dt

    from price_pipeline.lib.fetch.change_detection import fingerprint_file

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
    fingerprint = None
    if have_bytes:
        if not result.ok:
            outcome.status = "rejected"
        else:
            fingerprint = fingerprint_file(result.path, result.size)
        key = layout.raw_key(result.sha256, result.extension or "bin")
        if not lake.exists(key):
            lake.move_file(result.path, key)
            outcome.stored_new_bytes = True
        outcome.raw_key = key
        Path(result.path).unlink(missing_ok=True)
    registry.record_file_version(_file_version(hospital_key, outcome, sha256=outcome.sha256 if have_bytes else None))
    now = dt.datetime.now(dt.UTC)
    row: dict[str, Any] = {"hospital_key": hospital_key, "url": url, "last_checked_at": now}
    if outcome.status == "ok":
        changed = state is None or state.get("sha256") != outcome.sha256
        row.update(
            status="ok",
            etag=outcome.etag,
            last_modified=outcome.last_modified,
            size=outcome.size,
            sha256=outcome.sha256,
            range_fingerprint=fingerprint,
            error=None,
            consecutive_failures=0,
            last_downloaded_at=now,
            last_changed_at=now if changed else (state or {}).get("last_changed_at"),
            last_signal="sha256",
        )
    else:
        # Keep the last good validators and hash: the next run compares against them.
        row.update(
            status="failed" if not (state or {}).get("sha256") else (state or {}).get("status") or "ok",
            error=outcome.error,
            consecutive_failures=((state or {}).get("consecutive_failures") or 0) + 1,
        )
    registry.upsert_file_states([row])
    return outcome
