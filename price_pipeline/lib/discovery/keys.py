"""A hospital's partition key and its files fingerprint: the one normaliser every source uses.

Dagster does not validate dynamic partition keys, so every key is normalised here to
``[a-z0-9_-]{1,64}`` (:data:`VALID_KEY`). The catalog's rule (:func:`price_pipeline.lib.
discovery.catalog.hospital_key`: ``ccn-<ccn>``, else ``<name>-<state>``, else ``id-<id>``) builds
its candidate from :func:`slug` parts and then calls :func:`normalize_key`, as reconciliation does
for every other source, so a long key is cut the same way whichever source named it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

KEY_MAX_LENGTH = 64
VALID_KEY = re.compile(r"^[a-z0-9_-]{1,64}$")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_NOT_KEY_RE = re.compile(r"[^a-z0-9_-]+")


def slug(text: str | None) -> str:
    """Lower-case letters and digits, every other run of characters one ``-``, none at the ends."""
    return _SLUG_RE.sub("-", (text or "").lower()).strip("-")


def normalize_key(raw: str) -> str:
    """Any text -> a partition key ``[a-z0-9_-]{1,64}``.

    A key longer than 64 characters keeps its first 55 (without trailing ``-``/``_``) and ends
    with ``-`` and 8 hex characters of the full key's sha256, so two long names that share a
    prefix still map to different keys; text with nothing usable becomes ``h-<12 hex>``."""
    key = _NOT_KEY_RE.sub("-", raw.lower()).strip("-_") or "h-" + hashlib.sha256(raw.encode()).hexdigest()[:12]
    if len(key) > KEY_MAX_LENGTH:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        key = f"{key[: KEY_MAX_LENGTH - 9].rstrip('-_')}-{digest}"
    return key


def files_fingerprint(files: Iterable[Mapping[str, Any]]) -> str:
    """16 hex chars over (url, size, retrieved_at, sha256) of the files; order-insensitive.

    Used as a sensor run key: it changes when a file is added, removed, moved, re-sized,
    re-crawled or re-hashed, and is identical for an unchanged listing."""
    entries = sorted([f["url"], f.get("size"), f.get("retrieved_at"), f.get("sha256")] for f in files)
    return hashlib.sha256(json.dumps(entries, separators=(",", ":"), default=str).encode()).hexdigest()[:16]
