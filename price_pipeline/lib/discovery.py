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
