"""Decisions about a freshly fetched catalog, kept pure so the sensor and assets share them.

A catalog that suddenly lists far fewer hospitals is much more likely to be a broken source
(an expired session answering 200 with an empty list, a half-deployed API) than a wave of
hospital closures, so it changes nothing until an operator confirms it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


class CatalogShrinkError(RuntimeError):
    """The catalog shrank beyond the allowed fraction; nothing is changed until confirmed."""


@dataclass(frozen=True)
class CatalogDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def guard_against_shrink(previous_count: int, new_count: int, *, max_drop_fraction: float = 0.5) -> None:
    """Refuse an empty catalog, and one that lost more than ``max_drop_fraction`` of its hospitals."""
    if new_count == 0:
        raise CatalogShrinkError(
            f"the catalog returned no hospitals (previously {previous_count}); treating it as a source "
            "failure, not as every hospital being removed"
        )
    if previous_count and new_count < previous_count * (1 - max_drop_fraction):
        raise CatalogShrinkError(
            f"the catalog shrank from {previous_count} to {new_count} hospitals "
            f"(more than {max_drop_fraction:.0%}); confirm with allow_shrink before anything is removed"
        )


def diff_catalog(previous: dict[str, str], current: dict[str, str]) -> CatalogDiff:
    """Compare ``{hospital_key: files_fingerprint}`` maps of two catalog states."""
    added = sorted(set(current) - set(previous))
    removed = sorted(set(previous) - set(current))
    both = set(current) & set(previous)
    changed = sorted(k for k in both if current[k] != previous[k])
    unchanged = sorted(k for k in both if current[k] == previous[k])
    return CatalogDiff(added=added, removed=removed, changed=changed, unchanged=unchanged)


def catalog_digest(fingerprints: dict[str, str]) -> str:
    """One short digest of a whole catalog state: the sensor cursor stores this, not the map."""
    text = json.dumps(sorted(fingerprints.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the discovery pass: every source -> reconciled hospitals ----------------------------------


@dataclass
class DiscoveryResult:
    """One discovery pass: reconciled hospital records plus what each source did."""

    records: list[dict] = field(default_factory=list)
    identifiers: list[tuple[str, str, str]] = field(default_factory=list)
    claims_by_source: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)
    site_crawls: list[dict] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    # text a source had to clean (rule text_cleaned), as discovery_findings rows
    findings: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def fingerprints(self) -> dict[str, str]:
        return {r["hospital_key"]: r["files_fingerprint"] for r in self.records}


def _due_sites(sites, crawls: dict, *, recheck_hours: float, limit: int, now) -> list[tuple[str, str, str]]:
    """Websites to crawl this pass: never crawled first, then the oldest crawl beyond the recheck age."""
    import datetime as dt

    cutoff = now - dt.timedelta(hours=recheck_hours)
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    candidates = []
    for anchor, name, website in sites:
        crawl = crawls.get(website)
        crawled_at = crawl["crawled_at"] if crawl else None
        if crawled_at is not None and crawled_at.tzinfo is None:
            crawled_at = crawled_at.replace(tzinfo=dt.UTC)
        if crawled_at is None or crawled_at <= cutoff:
            candidates.append((crawled_at or oldest, anchor, name, website))
    candidates.sort(key=lambda c: c[0])
    return [(anchor, name, website) for _, anchor, name, website in candidates[: max(0, limit)]]


def discover(settings, registry, *, max_sites: int | None = None, catalog_source=None) -> DiscoveryResult:
    """Run every configured source and reconcile their claims (nothing is written here).

    Raises :class:`~price_pipeline.lib.discovery.catalog.CatalogError` when the catalog cannot be read
    completely, and :class:`~price_pipeline.lib.discovery.sources.overrides.OverridesError` for a
    broken overrides file. cms-hpt.txt trouble never raises: a site that errors keeps the
    entries of its last good crawl; sites not due this pass use their stored entries. At most
    ``settings.cms_hpt_max_sites_per_tick`` websites are crawled per pass (oldest crawl first).
    """
    import datetime as dt
    import time

    from price_pipeline.lib.discovery.geo import enrich
    from price_pipeline.lib.discovery.reconcile import normalize_key, reconcile
    from price_pipeline.lib.discovery.sources import CATALOG_API, CMS_HPT, OVERRIDES
    from price_pipeline.lib.discovery.sources import cms_hpt as hpt
    from price_pipeline.lib.discovery.sources.catalog_api import CatalogApiSource
    from price_pipeline.lib.discovery.sources.overrides import OverridesSource

    started = time.monotonic()
    out = DiscoveryResult()
    sources = set(settings.discovery_sources)
    claims = []
    if CATALOG_API in sources:
        res = (catalog_source or CatalogApiSource.from_settings(settings)).fetch()
        claims.extend(res.claims)
        out.stats[CATALOG_API] = res.stats
    if OVERRIDES in sources:
        res = OverridesSource(settings.overrides_path).fetch()
        claims.extend(res.claims)
        out.stats[OVERRIDES] = res.stats
    if CMS_HPT in sources:
        # Each website's blocks are anchored to the claim that named the website (its key hint
        # links them to that hospital in the reconciliation).
        sites: dict[str, tuple[str, str, str]] = {}
        for c in claims:
            hint = c.key_hint or c.anchor
            if c.website and hint and c.website not in sites:
                sites[c.website] = (normalize_key(hint), c.name or "", c.website)
        now = dt.datetime.now(dt.UTC)
        crawls = registry.site_crawls()
        limit = settings.cms_hpt_max_sites_per_tick if max_sites is None else max_sites
        due = _due_sites(sites.values(), crawls, recheck_hours=settings.cms_hpt_recheck_hours, limit=limit, now=now)
        source = hpt.CmsHptSource(due, settings=settings)
        res = source.fetch()
        claims.extend(res.claims)
        crawled = set()
        for anchor, name, website in due:
            f = source.fetches[anchor]
            crawled.add(website)
            out.site_crawls.append(
                {
                    "website": website,
                    "hospital_key": anchor,
                    "url": f.url,
                    "status": f.status,
                    "entries_json": json.dumps([vars(e) for e in f.entries]) if f.status != "error" else None,
                    "error": f.error,
                }
            )
            if f.status == "error" and crawls.get(website, {}).get("entries_json"):
                # keep what the site said last time
                f.entries = [hpt.HptEntry(**e) for e in json.loads(crawls[website]["entries_json"])]
                claims.extend(hpt.entries_to_claims(anchor, name, f))
        # Sites not crawled this pass: their last known entries still stand.
        for website, (anchor, name, _w) in sites.items():
            crawl = crawls.get(website)
            if website in crawled or not crawl or not crawl.get("entries_json"):
                continue
            stored = hpt.HptFetch(
                website=website,
                url=crawl.get("url"),
                status="found",
                entries=[hpt.HptEntry(**e) for e in json.loads(crawl["entries_json"])],
            )
            claims.extend(hpt.entries_to_claims(anchor, name, stored))
        out.stats[CMS_HPT] = {**res.stats, "due": len(due), "websites": len(sites)}
    final = reconcile(claims, registry.identifiers())
    for record in final.records:
        enrich(record)
    out.records = final.records
    out.identifiers = final.identifiers
    out.conflicts = final.conflicts
    out.excluded = final.excluded
    for key, claim in final.attributed:
        out.claims_by_source.setdefault(claim.source, []).append((key, claim.payload()))
    out.findings = text_findings(claims, final.attributed)
    out.stats["hospitals"] = len(out.records)
    out.stats["files"] = sum(len(r["files"]) for r in out.records)
    out.stats["seconds"] = round(time.monotonic() - started, 3)
    return out


def text_findings(claims, attributed) -> list[dict]:
    """One ``text_cleaned`` finding per field a source cleaned of NULs / lone surrogates,
    with the hospital the claim was reconciled into (None for an excluded hospital)."""
    key_of = {id(claim): key for key, claim in attributed}
    return [
        {
            "source": claim.source,
            "source_id": claim.source_id,
            "hospital_key": key_of.get(id(claim)),
            "field": fix.field,
            "rule": "text_cleaned",
            "severity": "warning",
            "message": fix.describe(),
        }
        for claim in claims
        for fix in claim.text_fixes
    ]


def apply_discovery(registry, result: DiscoveryResult) -> dict[str, int]:
    """Write a (guarded) discovery pass: claims per source, reconciled hospitals, identifiers,
    cms-hpt crawl outcomes, pending file states for newly listed files, and the findings.

    A record the database refuses is left out without rolling back the others; each becomes a
    ``registry_rejected`` finding (listed in ``result.findings`` too). Counts: ``new``, ``seen``,
    ``rejected`` (hospitals), ``new_files``, ``records_rejected`` (any table), ``text_cleaned``.
    """
    rejected = []
    for source, claims in result.claims_by_source.items():
        registry.record_claims(source, claims, rejected=rejected)
    counts = registry.upsert_hospitals(
        [{k: v for k, v in r.items() if k not in ("files", "claim_ids")} for r in result.records],
        source=None,
        rejected=rejected,
    )
    registry.record_identifiers(result.identifiers, rejected=rejected)
    registry.record_site_crawls(result.site_crawls, rejected=rejected)
    counts["new_files"] = registry.ensure_file_states(
        ((r["hospital_key"], f["url"]) for r in result.records for f in r["files"]), rejected=rejected
    )
    result.findings.extend(
        {
            "source": "registry",
            "source_id": f"{refused.table}: {refused.record}",
            "hospital_key": refused.hospital_key,
            "field": refused.table,
            "rule": "registry_rejected",
            "severity": "error",
            "message": f"not stored: {refused.error}",
        }
        for refused in rejected
    )
    registry.record_discovery_findings(result.findings)
    counts["records_rejected"] = len(rejected)
    counts["text_cleaned"] = sum(1 for f in result.findings if f["rule"] == "text_cleaned")
    return counts
