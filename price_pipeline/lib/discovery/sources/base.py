"""What every discovery source produces: claims about hospitals and their files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

from price_pipeline.lib.discovery.catalog import parse_ein_npi_from_filename
from price_pipeline.lib.lake.text import TextFix


@dataclass(frozen=True)
class ClaimFile:
    """One MRF a source says a hospital publishes."""

    url: str
    format: str | None = None
    size: int | None = None
    sha256: str | None = None
    retrieved_at: str | None = None
    name: str | None = None
    source_page_url: str | None = None

    @property
    def ein_npi(self) -> tuple[str | None, str | None]:
        return parse_ein_npi_from_filename(self.name or self.url)


@dataclass(frozen=True)
class Claim:
    """One source's statement about one hospital: identity, address, website and files.

    ``source_id`` identifies the statement inside its source (catalog id, cms-hpt.txt URL and
    block number, override entry). ``key_hint`` is a partition key the source proposes (the
    catalog's historic key; an override's explicit key); ``anchor`` is the key of a hospital the
    claim is known to belong to (the hospital whose website served a cms-hpt.txt).
    """

    source: str
    source_id: str
    name: str | None = None
    ccn: str | None = None
    ein: str | None = None
    npi: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    website: str | None = None
    files: tuple[ClaimFile, ...] = ()
    key_hint: str | None = None
    anchor: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    # overrides only
    exclude: bool = False
    drop_files: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # Text the source had to clean (NUL characters, lone surrogates): recorded as findings by
    # the discovery pass; not part of the payload (the claim's digest stays as it was).
    text_fixes: tuple[TextFix, ...] = field(default=(), compare=False, hash=False)

    def identifiers(self) -> dict[str, str]:
        """``{ccn|ein|npi: value}``, with EIN/NPI parsed from CMS-convention file names when absent."""
        ids = {"ccn": self.ccn, "ein": self.ein, "npi": self.npi}
        for f in self.files:
            ein, npi = f.ein_npi
            ids["ein"] = ids["ein"] or ein
            ids["npi"] = ids["npi"] or npi
        return {k: v for k, v in ids.items() if v}

    def payload(self) -> dict[str, Any]:
        """A JSON-able dict of the claim (shallow and fast: it runs for every claim of a pass)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "text_fixes"}
        out["files"] = [{k: v for k, v in vars(f).items() if v is not None} for f in self.files]
        out["drop_files"] = list(self.drop_files)
        return out


@dataclass
class SourceResult:
    """Outcome of one source for one discovery pass. ``complete`` False: the claims are partial
    (never used to mark anything removed)."""

    source: str
    claims: list[Claim] = field(default_factory=list)
    complete: bool = True
    errors: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


class DiscoverySource(Protocol):
    """A pluggable source: ``fetch()`` returns its claims (raising when it cannot be trusted at all)."""

    name: str

    def fetch(self) -> SourceResult: ...
