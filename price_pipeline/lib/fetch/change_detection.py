"""Has a hospital's file changed? The cheapest signal that works for its server.

Per file, in order, each only when the host has not proven it untrustworthy:

1. **conditional GET** (``If-None-Match`` / ``If-Modified-Since``): 304 = unchanged; a 200 whose
   ETag/Last-Modified equals the stored one = unchanged (server ignores conditionals), else changed;
2. **HEAD size**: a Content-Length different from the stored size = changed (equal proves nothing);
3. **range fingerprint**: sha256 over three small byte ranges (start, middle, end) compared
   with the one computed at download: different = changed, equal = unchanged (probabilistic: an
   edit that keeps the size and misses all three ranges goes unnoticed until the weekly full
   re-scan, which downloads everything);
4. otherwise **unknown**: download and compare the full sha256.

Per host, the registry counts how often each signal was confirmed or contradicted by a full
download (``host_profiles``); a signal contradicted more than 1 in 20 times is no longer used
for that host. Per file, the last validators, size, fingerprint and check time live in
``file_states`` -- sensors keep only a watermark. :func:`conditional_check` is the one-URL
form of signal 1 (a single conditional GET, following redirects), for callers without a state row.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from price_pipeline.lib.fetch.http.budget import request_budget
from price_pipeline.lib.fetch.http.download import REDIRECT_STATUSES
from price_pipeline.lib.fetch.http.fetch import make_client, request_small
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError, check_url

if TYPE_CHECKING:
    from price_pipeline.settings import Settings

RANGE_SPAN = 16 * 1024
TRUST_RATIO = 20


def range_spec(size: int) -> list[tuple[int, int]]:
    """The inclusive byte ranges fingerprinted for a file of ``size`` bytes."""
    if size <= 0:
        return []
    if size <= 3 * RANGE_SPAN:
        return [(0, size - 1)]
    middle = size // 2 - RANGE_SPAN // 2
    return [(0, RANGE_SPAN - 1), (middle, middle + RANGE_SPAN - 1), (size - RANGE_SPAN, size - 1)]


def fingerprint_file(path: str | os.PathLike, size: int | None = None) -> str | None:
    """The range fingerprint of a local file (what :func:`probe` compares a server against)."""
    size = os.path.getsize(path) if size is None else size
    spec = range_spec(size)
    if not spec:
        return None
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        for start, end in spec:
            fh.seek(start)
            h.update(fh.read(end - start + 1))
    return h.hexdigest()


def trusts(profile: dict[str, Any] | None, signal: str) -> bool:
    """A host trusts a signal until it was contradicted more than once per ``TRUST_RATIO`` confirmations."""
    if not profile:
        return True
    bad = profile.get(f"{signal}_bad") or 0
    ok = profile.get(f"{signal}_ok") or 0
    return bad == 0 or ok >= TRUST_RATIO * bad


@dataclass
class ProbeResult:
    hospital_key: str
    url: str
    verdict: str  # changed | unchanged | unknown | failed
    signal: str  # conditional | head | range | none | never_downloaded
    etag: str | None = None
    last_modified: str | None = None
    size: int | None = None
    error: str | None = None
    # (host, signal, confirmed) learned while probing (HEAD or Range not supported)
    observations: list[tuple[str, str, bool]] = field(default_factory=list)


def _ranges_fingerprint(url, size, *, settings, client) -> tuple[str | None, str | None]:
    """(fingerprint, problem): problem is set when the server does not serve byte ranges properly."""
    h = hashlib.sha256(str(size).encode())
    for start, end in range_spec(size):
        r = request_small(
            url,
            settings=settings,
            client=client,
            headers={"Range": f"bytes={start}-{end}"},
            max_bytes=end - start + 1,
        )
        if r.error and r.reason != "too_large":
            return None, r.error
        if r.status_code != 206 or len(r.body) != end - start + 1:
            return None, f"range request answered {r.status_code} with {len(r.body)} bytes"
        h.update(r.body)
    return h.hexdigest(), None


def probe(state: dict[str, Any], *, settings, client, profile: dict[str, Any] | None = None) -> ProbeResult:
    """Decide whether the file of ``state`` (a ``file_states`` row) changed, without downloading it."""
    url, key = state["url"], state["hospital_key"]
    host = urlsplit(url).hostname or ""
    out = ProbeResult(
        key, url, "unknown", "none", state.get("etag"), state.get("last_modified"), state.get("size")
    )
    if not state.get("sha256"):
        out.signal = "never_downloaded"
        return out
    etag, last_modified = state.get("etag"), state.get("last_modified")
    if (etag or last_modified) and trusts(profile, "conditional"):
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        r = request_small(url, settings=settings, client=client, headers=headers, read_body=False)
        if r.error:
            out.verdict, out.error = "failed", r.error
            return out
        new_etag, new_lm = r.headers.get("etag"), r.headers.get("last-modified")
        if r.status_code == 304:
            out.verdict, out.signal = "unchanged", "conditional"
            out.etag, out.last_modified = new_etag or etag, new_lm or last_modified
            return out
        if r.status_code == 200:
            length = r.headers.get("content-length")
            out.size = int(length) if length and length.isdigit() else out.size
            if etag and new_etag:
                same = new_etag.removeprefix("W/") == etag.removeprefix("W/")
            elif last_modified and new_lm:
                same = new_lm == last_modified
            else:
                same = None
            if same is not None:
                out.verdict, out.signal = ("unchanged" if same else "changed"), "conditional"
                out.etag, out.last_modified = new_etag, new_lm
                return out
        elif r.status_code in (404, 410):
            out.verdict, out.error = "failed", f"HTTP {r.status_code}"
            return out
    if trusts(profile, "head"):
        r = request_small(url, settings=settings, client=client, method="HEAD")
        length = r.headers.get("content-length") if r.ok else None
        if r.ok and length and length.isdigit():
            if state.get("size") is not None and int(length) != state["size"]:
                out.verdict, out.signal, out.size = "changed", "head", int(length)
                return out
        elif r.status_code in (400, 403, 405, 501) or (r.ok and not length):
            out.observations.append((host, "head", False))
    if state.get("range_fingerprint") and state.get("size") and trusts(profile, "range"):
        fingerprint, problem = _ranges_fingerprint(url, state["size"], settings=settings, client=client)
        if problem:
            out.observations.append((host, "range", False))
        else:
            out.verdict = "unchanged" if fingerprint == state["range_fingerprint"] else "changed"
            out.signal = "range"
            return out
    return out


@dataclass
class SweepResult:
    results: list[ProbeResult]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    @property
    def changed_hospitals(self) -> list[str]:
        return sorted({r.hospital_key for r in self.results if r.verdict == "changed"})


def sweep(
    states: Iterable[dict[str, Any]],
    *,
    settings,
    profiles: dict[str, dict] | None = None,
    workers: int | None = None,
) -> SweepResult:
    """Probe many files concurrently (shared connection pool, per-host limiter)."""
    started = time.monotonic()
    states = list(states)
    profiles = profiles or {}
    workers = workers or settings.discovery_workers
    with make_client(settings, pool=workers) as client, ThreadPoolExecutor(workers) as pool:
        results = list(
            pool.map(
                lambda s: probe(
                    s, settings=settings, client=client, profile=profiles.get(urlsplit(s["url"]).hostname)
                ),
                states,
            )
        )
    return SweepResult(results, time.monotonic() - started)


def record_sweep(registry, sweep_result: SweepResult) -> None:
    """Write the probe outcomes to ``file_states`` (changed files become ``changed``: the next
    ingestion downloads them without probing) and the host observations to ``host_profiles``."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    rows = []
    for r in sweep_result.results:
        row = {
            "hospital_key": r.hospital_key,
            "url": r.url,
            "last_checked_at": now,
            "last_signal": r.signal,
        }
        if r.verdict == "changed":
            row["status"] = "changed"
        elif r.verdict == "failed":
            row["error"] = r.error
        rows.append(row)
    registry.upsert_file_states(rows)
    registry.record_host_signals(o for r in sweep_result.results for o in r.observations)


ChangeStatus = Literal["changed", "unchanged", "unknown"]


def conditional_check(
    url: str,
    etag: str | None = None,
    last_modified: str | None = None,
    *,
    settings: Settings,
    client: httpx.Client | None = None,
    max_redirects: int = 5,
) -> ChangeStatus:
    """Has ``url`` changed since we saw ``etag`` / ``last_modified``? One conditional GET, body not read.

    * ``"unchanged"``: 304, or a 200 carrying the same ETag / Last-Modified (server ignores conditionals);
    * ``"changed"``: a 200 with a different validator;
    * ``"unknown"``: no validator to compare, a 200 without validators, an error, or an unsafe URL.
    "unknown" means "download and compare hashes"; it is never taken as "unchanged".
    """
    if not etag and not last_modified:
        return "unknown"
    own_client = client is None
    http = client or make_client(settings, pool=4)
    headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    budget = request_budget(settings, "change check")
    try:
        for _hop in range(max_redirects + 1):
            check_url(current, settings.allowed_private_hosts)
            with (
                budget.active(),
                http.stream("GET", current, headers=headers, follow_redirects=False) as response,
            ):
                if response.status_code in REDIRECT_STATUSES and response.headers.get("Location"):
                    current = urljoin(current, response.headers["Location"])
                    continue
                if response.status_code == 304:
                    return "unchanged"
                if response.status_code != 200:
                    return "unknown"
                new_etag = response.headers.get("ETag")
                new_lm = response.headers.get("Last-Modified")
                if etag and new_etag:
                    return (
                        "unchanged" if new_etag.removeprefix("W/") == etag.removeprefix("W/") else "changed"
                    )
                if last_modified and new_lm:
                    return "unchanged" if new_lm == last_modified else "changed"
                return "unknown"
        return "unknown"
    except (UnsafeUrlError, httpx.HTTPError):
        return "unknown"
    finally:
        if own_client:
            http.close()
