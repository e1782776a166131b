"""Hospital identity: merge the claims of every source into one record per hospital.

Claims are linked (union-find) on, in this order:

1. partition keys: an override's ``hospital_key``, the catalog's historic key, the hospital a
   cms-hpt.txt was served for (``anchor``), and the key an identifier was given before
   (``known`` = the registry's ``hospital_identifiers``), which keeps keys stable;
2. CCN (CMS Certification Number: one per hospital);
3. type-2 NPI (given, or parsed from ``<EIN>-<NPI>_<name>_standardcharges.<ext>``);
4. EIN *and* normalised name together: an EIN names a legal entity, and a health system files
   many hospitals under one EIN, so an EIN alone never merges two hospitals.

Two groups with different CCNs, or that already own different partition keys, are never merged
(the conflict is reported instead). Attributes come from the highest-precedence source that has
them (overrides > catalog_api > cms_hpt); files are the union of all claims (minus an override's
``drop_files``), each with the sources that list it. Keys match ``[a-z0-9_-]{1,64}``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from price_pipeline.lib.discovery.keys import files_fingerprint, normalize_key, slug
from price_pipeline.lib.discovery.sources import CATALOG_API, CMS_HPT, OVERRIDES
from price_pipeline.lib.discovery.sources.base import Claim

SOURCE_PRECEDENCE = {OVERRIDES: 0, CATALOG_API: 1, CMS_HPT: 2}
_ATTRS = ("name", "ccn", "ein", "npi", "address", "city", "state", "zip", "website")
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _norm_name(name: str | None) -> str:
    return " ".join(_SLUG_RE.sub(" ", (name or "").lower()).split())


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))
        self.ccns: list[set[str]] = [set() for _ in range(n)]
        self.keys: list[set[str]] = [set() for _ in range(n)]  # keys already owned (known/override)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> str | None:
        """Merge; returns a conflict description instead when the groups must stay apart."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        if self.ccns[ra] and self.ccns[rb] and not (self.ccns[ra] & self.ccns[rb]):
            return f"CCN {sorted(self.ccns[ra])} vs {sorted(self.ccns[rb])}"
        if self.keys[ra] and self.keys[rb] and not (self.keys[ra] & self.keys[rb]):
            return f"keys {sorted(self.keys[ra])} vs {sorted(self.keys[rb])}"
        self.parent[rb] = ra
        self.ccns[ra] |= self.ccns[rb]
        self.keys[ra] |= self.keys[rb]
        return None


@dataclass
class ReconcileResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    # (kind, value, hospital_key) to remember, so the key stays stable
    identifiers: list[tuple[str, str, str]] = field(default_factory=list)
    # (hospital_key, claim) pairs: which hospital each claim was attributed to
    attributed: list[tuple[str, Claim]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


def reconcile(claims: list[Claim], known: dict[tuple[str, str], str] | None = None) -> ReconcileResult:
    known = known or {}
    claims = sorted(claims, key=lambda c: (SOURCE_PRECEDENCE.get(c.source, 9), c.source, c.source_id))
    uf = _UnionFind(len(claims))
    ids = [c.identifiers() for c in claims]
    owned_keys: list[set[str]] = []
    for i, c in enumerate(claims):
        if c.ccn:
            uf.ccns[i].add(c.ccn)
        owned = {known[(k, v)] for k, v in ids[i].items() if (k, v) in known}
        if c.source == OVERRIDES and c.key_hint:
            owned.add(normalize_key(c.key_hint))
        uf.keys[i] |= owned
        owned_keys.append(owned)
    result = ReconcileResult()

    def link(tokens: dict[tuple[str, str], list[int]]) -> None:
        for token, members in tokens.items():
            for other in members[1:]:
                conflict = uf.union(members[0], other)
                if conflict:
                    result.conflicts.append(
                        f"not merged on {token[0]}={token[1]}: {claims[members[0]].source_id} / "
                        f"{claims[other].source_id} ({conflict})"
                    )

    def tokens_of(fn) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = {}
        for i, c in enumerate(claims):
            for token in fn(i, c):
                out.setdefault(token, []).append(i)
        return out

    link(
        tokens_of(
            lambda i, c: (
                [("key", k) for k in owned_keys[i]]
                + ([("key", normalize_key(c.key_hint))] if c.key_hint else [])
                + ([("key", normalize_key(c.anchor))] if c.anchor else [])
            )
        )
    )
    link(tokens_of(lambda i, c: [("ccn", ids[i]["ccn"])] if "ccn" in ids[i] else []))
    link(tokens_of(lambda i, c: [("npi", ids[i]["npi"])] if "npi" in ids[i] else []))
    link(
        tokens_of(
            lambda i, c: (
                [("ein+name", f"{ids[i]['ein']}|{_norm_name(c.name)}")] if "ein" in ids[i] and c.name else []
            )
        )
    )

    groups: dict[int, list[int]] = {}
    for i in range(len(claims)):
        groups.setdefault(uf.find(i), []).append(i)
    used: set[str] = set()
    for members in groups.values():
        group = [claims[i] for i in members]  # already in precedence order
        record: dict[str, Any] = {
            a: next((getattr(c, a) for c in group if getattr(c, a)), None) for a in _ATTRS
        }
        merged_ids: dict[str, str] = {}
        for i in members:
            for k, v in ids[i].items():
                merged_ids.setdefault(k, v)
        record["ein"] = record["ein"] or merged_ids.get("ein")
        record["npi"] = record["npi"] or merged_ids.get("npi")
        key = _choose_key(group, members, owned_keys, merged_ids, known)
        if key in used:
            key = normalize_key(f"{key[:50]}-{hashlib.sha256(group[0].source_id.encode()).hexdigest()[:8]}")
        used.add(key)
        if any(c.exclude for c in group):
            result.excluded.append(key)
            continue
        dropped = {u for c in group for u in c.drop_files}
        files: dict[str, dict[str, Any]] = {}
        for c in group:
            for f in c.files:
                if f.url in dropped:
                    continue
                entry = files.setdefault(f.url, {"url": f.url, "sources": []})
                if c.source not in entry["sources"]:
                    entry["sources"].append(c.source)
                for attr in ("format", "size", "sha256", "retrieved_at", "name", "source_page_url"):
                    if entry.get(attr) is None and getattr(f, attr) is not None:
                        entry[attr] = getattr(f, attr)
        file_list = list(files.values())
        record.update(
            hospital_key=key,
            name=record["name"] or (record["website"] or key),
            state=record["state"].upper() if record["state"] else None,
            files=file_list,
            files_fingerprint=files_fingerprint(file_list),
            files_json=json.dumps(file_list, sort_keys=True),
            sources=",".join(sorted({c.source for c in group}, key=lambda s: SOURCE_PRECEDENCE.get(s, 9))),
            claim_ids=[f"{c.source}:{c.source_id}" for c in group],
        )
        result.records.append(record)
        for kind in ("ccn", "npi"):
            if merged_ids.get(kind):
                result.identifiers.append((kind, merged_ids[kind], key))
        result.attributed.extend((key, c) for c in group)
    result.records.sort(key=lambda r: r["hospital_key"])
    return result


def _choose_key(group, members, owned_keys, merged_ids, known) -> str:
    # 1. an operator's explicit key
    for c in group:
        if c.source == OVERRIDES and c.key_hint:
            return normalize_key(c.key_hint)
    # 2. the key an identifier already has (stability), CCN before NPI
    for kind in ("ccn", "npi"):
        value = merged_ids.get(kind)
        if value and (kind, value) in known:
            return known[(kind, value)]
    for i in members:
        if owned_keys[i]:
            return sorted(owned_keys[i])[0]
    # 3. the catalog's own key (what existing partitions are called)
    for c in group:
        if c.key_hint:
            return normalize_key(c.key_hint)
    for c in group:
        if c.anchor:
            return normalize_key(c.anchor)
    # 4. a new key from the best identifier
    if merged_ids.get("ccn") and slug(merged_ids["ccn"]):
        return normalize_key(f"ccn-{slug(merged_ids['ccn'])}")
    if merged_ids.get("npi"):
        return normalize_key(f"npi-{merged_ids['npi']}")
    first = group[0]
    name = slug(first.name)
    if name:
        return normalize_key("-".join(p for p in (name, slug(first.state)) if p))
    if merged_ids.get("ein"):
        return normalize_key(f"ein-{merged_ids['ein']}")
    return normalize_key(f"src-{hashlib.sha256(first.source_id.encode()).hexdigest()[:16]}")
