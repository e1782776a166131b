"""Manual overrides: an operator's corrections, the highest-precedence discovery source.

A TOML or JSON file (``PRICE_PIPELINE_DISCOVERY_OVERRIDES``) with a list of ``hospital``
entries. Each entry is a claim: it identifies a hospital by ``hospital_key``, ``ccn``, ``npi``
or ``ein`` (the reconciler merges it with the other claims on those), and may set any
attribute, add files, drop files or exclude the hospital::

    [[hospital]]
    ccn = "050901"
    name = "West Mercy Hospital"          # wins over the catalog's spelling
    files = ["https://west-mercy.example.org/951234567_west-mercy_standardcharges.csv"]
    drop_files = ["https://west-mercy.example.org/old.csv"]

    [[hospital]]
    hospital_key = "ccn-990099"
    exclude = true                        # never ingest (e.g. a duplicate listing)

JSON: ``{"hospital": [{...}, ...]}``. A malformed file fails the discovery pass loudly.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from price_pipeline.lib.discovery.sources import OVERRIDES
from price_pipeline.lib.discovery.sources.base import Claim, ClaimFile, SourceResult
from price_pipeline.lib.lake.text import clean_json

SOURCE = OVERRIDES
_FIELDS = ("name", "ccn", "ein", "npi", "address", "city", "state", "zip", "website")


class OverridesError(ValueError):
    """The overrides file cannot be read; nothing is applied."""


def parse_overrides(doc: dict[str, Any], where: str = "overrides") -> list[Claim]:
    entries = doc.get("hospital", doc.get("hospitals", []))
    if not isinstance(entries, list):
        raise OverridesError(f"{where}: 'hospital' must be a list of tables")
    claims = []
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise OverridesError(f"{where}: entry {i} is not a table")
        # JSON "\u0000" / "\ud800" (or TOML's "\u0000") cannot be stored: cleaned, and recorded.
        raw, text_fixes = clean_json(raw)
        unknown = set(raw) - {*_FIELDS, "hospital_key", "files", "drop_files", "exclude", "note"}
        if unknown:
            raise OverridesError(f"{where}: entry {i} has unknown keys {sorted(unknown)}")
        if not any(raw.get(k) for k in ("hospital_key", "ccn", "npi", "ein")):
            raise OverridesError(f"{where}: entry {i} needs hospital_key, ccn, npi or ein")
        files = []
        for f in raw.get("files", []):
            url = f if isinstance(f, str) else (f.get("url") if isinstance(f, dict) else None)
            if not url:
                raise OverridesError(f"{where}: entry {i} has a file without url")
            files.append(ClaimFile(url=url, name=f.get("name") if isinstance(f, dict) else None))
        values = {k: (str(raw[k]).strip() if raw.get(k) is not None else None) for k in _FIELDS}
        if values["ein"]:
            values["ein"] = values["ein"].replace("-", "")
        claims.append(
            Claim(
                source=SOURCE,
                source_id=f"{where}#{i}",
                **values,
                files=tuple(files),
                key_hint=raw.get("hospital_key"),
                anchor=raw.get("hospital_key"),
                exclude=bool(raw.get("exclude", False)),
                drop_files=tuple(raw.get("drop_files", [])),
                extra={"note": raw["note"]} if raw.get("note") else {},
                text_fixes=tuple(text_fixes),
            )
        )
    return claims


def load_overrides(path: str | Path) -> list[Claim]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise OverridesError(f"cannot read overrides {path}: {exc}") from exc
    return parse_overrides(doc, path.name)


class OverridesSource:
    name = SOURCE

    def __init__(self, path: str | Path | None):
        self.path = path

    def fetch(self) -> SourceResult:
        if not self.path:
            return SourceResult(source=SOURCE, stats={"entries": 0, "configured": False})
        claims = load_overrides(self.path)
        return SourceResult(source=SOURCE, claims=claims, stats={"entries": len(claims)})
