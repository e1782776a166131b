"""``cms-hpt.txt``: the file CMS asks every hospital to put at its website's root.

Format (CMS, 45 CFR 180.50(d)(6)): blocks of ``key: value`` lines, one block per location::

    location-name: Example Hospital
    source-page-url: https://www.example.org/price-transparency
    mrf-url: https://www.example.org/files/12-3456789_example-hospital_standardcharges.csv
    contact-name: Jane Doe
    contact-email: jane.doe@example.org

Real files are messier, and :func:`parse_cms_hpt` tolerates: a UTF-8 BOM, UTF-16 (with or
without BOM), CRLF/CR line ends, prose and HTML around the blocks, keys in other cases or
with spaces/underscores, ``<`` ``>``/quotes around values, and URLs without ``https://``. A 403
or 404 is an answer ("no file"), not an error of the crawl.

:class:`CmsHptSource` crawls the websites of known hospitals (the website's own folder first,
then the domain root, each root fetched once per pass), in a thread pool under the per-host
limiter, and turns each block into a :class:`~price_pipeline.lib.discovery.sources.base.Claim`
anchored to the hospital whose website served it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from price_pipeline.lib.discovery.sources import CMS_HPT
from price_pipeline.lib.discovery.sources.base import Claim, ClaimFile, SourceResult
from price_pipeline.lib.fetch.http.fetch import make_client, request_small
from price_pipeline.lib.lake.text import TextFix, clean_text

SOURCE = CMS_HPT
KEYS = ("location-name", "source-page-url", "mrf-url", "contact-name", "contact-email")
MAX_BYTES = 2 * 1024 * 1024
_BLOCK_TAG_RE = re.compile(r"<\s*/?\s*(?:br|p|div|li|tr|td|h[1-6]|pre)\b[^<>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_LINE_RE = re.compile(r"^\s*[-*•]?\s*([A-Za-z][A-Za-z _-]{2,30}?)\s*[:=]\s*(.*?)\s*$")


@dataclass(frozen=True)
class HptEntry:
    location_name: str | None = None
    source_page_url: str | None = None
    mrf_url: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    # (key, NULs removed, lone surrogates replaced) per cleaned line; JSON-able, since entries are
    # stored in ``site_crawls.entries_json`` and read back.
    text_fixes: tuple[TextFix, ...] = ()


def decode_text(data: bytes) -> str:
    """Text of a cms-hpt.txt whatever its encoding: BOMs, UTF-16 without BOM, UTF-8, then cp1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    sample = data[:2000]
    if sample and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without BOM: NULs in every other byte; the odd/even position tells endianness.
        even_nuls = sample[0::2].count(b"\x00")
        odd_nuls = sample[1::2].count(b"\x00")
        return data.decode("utf-16-be" if even_nuls > odd_nuls else "utf-16-le", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def normalize_url(value: str | None) -> str | None:
    """An absolute http(s) URL from a cms-hpt value: strips ``<>``/quotes, adds a missing ``https://``."""
    if not value:
        return None
    text = value.strip().rstrip(".,;").strip("<>\"'`").strip().rstrip(".,;")
    # a markdown link "[text](url)" or "text <url>" keeps only the URL
    inner = re.search(r"\((https?://[^)\s]+)\)|<(https?://[^>\s]+)>", text)
    if inner:
        text = inner.group(1) or inner.group(2)
    if not text or " " in text:
        return None
    if text.startswith("//"):
        text = "https:" + text
    elif not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        if not re.match(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:\d+)?(/|$)", text):
            return None
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return text


def _key(raw: str) -> str | None:
    key = re.sub(r"[\s_]+", "-", raw.strip().lower())
    return key if key in KEYS else None


def parse_cms_hpt(data: bytes | str) -> list[HptEntry]:
    """Every location block with an ``mrf-url``; other lines (prose, HTML, unknown keys) are ignored."""
    text = decode_text(data) if isinstance(data, bytes) else data
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    # an HTML page pasted as the file: block-level tags end lines
    text = _BLOCK_TAG_RE.sub("\n", text)
    entries: list[HptEntry] = []
    current: dict[str, str] = {}
    fixes: list[TextFix] = []

    def flush() -> None:
        if current.get("mrf-url"):
            entries.append(
                HptEntry(
                    location_name=current.get("location-name"),
                    source_page_url=normalize_url(current.get("source-page-url")),
                    mrf_url=current["mrf-url"],
                    contact_name=current.get("contact-name"),
                    contact_email=current.get("contact-email"),
                    text_fixes=tuple(fixes),
                )
            )
        current.clear()
        fixes.clear()

    for line in text.split("\n"):
        # A NUL byte (or a lone surrogate in a str input) cannot be stored: drop it, note the key.
        line, nul, surrogates = clean_text(line)
        line = _TAG_RE.sub(" ", line) if "<" in line else line
        match = _LINE_RE.match(line)
        if not match:
            continue
        key = _key(match.group(1))
        if key is None:
            continue
        value = match.group(2).strip()
        if key == "mrf-url":
            value = normalize_url(value) or ""
            if not value:
                continue
        if key in current and (key == "location-name" or key == "mrf-url"):
            flush()  # a repeated key starts the next block even without a blank line
        current[key] = value
        if nul or surrogates:
            fixes.append(TextFix(key, nul, surrogates))
    flush()
    return entries


def hpt_urls(website: str) -> list[str]:
    """Where to look: ``<website folder>/cms-hpt.txt`` (when the website is not a root) then ``<root>/cms-hpt.txt``."""
    url = normalize_url(website)
    if not url:
        return []
    parts = urlsplit(url)
    root = urlunsplit((parts.scheme, parts.netloc, "/cms-hpt.txt", "", ""))
    path = parts.path.rstrip("/")
    if path:
        return [urlunsplit((parts.scheme, parts.netloc, f"{path}/cms-hpt.txt", "", "")), root]
    return [root]


@dataclass
class HptFetch:
    """The crawl of one website: ``status`` found | missing (403/404/410) | error | unsafe | none."""

    website: str
    url: str | None = None
    status: str = "none"
    entries: list[HptEntry] = field(default_factory=list)
    error: str | None = None


def fetch_cms_hpt(website: str, *, settings, client, root_cache: dict | None = None) -> HptFetch:
    """Find and parse the cms-hpt.txt of ``website``; never raises for HTTP trouble."""
    out = HptFetch(website=website)
    first_error: tuple[str | None, str | None] | None = None
    for url in hpt_urls(website):
        cached = root_cache.get(url) if root_cache is not None else None
        if cached is not None:
            response = cached
        else:
            response = request_small(url, settings=settings, client=client, max_bytes=MAX_BYTES)
            if root_cache is not None and urlsplit(url).path == "/cms-hpt.txt":
                root_cache[url] = response
        if response.reason == "unsafe_url":
            out.url, out.status, out.error = url, "unsafe", response.error
            return out
        if response.error or not (response.ok or response.status_code in (401, 403, 404, 410)):
            first_error = first_error or (url, response.error or f"HTTP {response.status_code}")
            continue
        entries = parse_cms_hpt(response.body) if response.ok else []
        if entries:
            out.url, out.status, out.entries, out.error = url, "found", entries, None
            return out
        out.url, out.status = out.url or url, "missing"  # 403/404, or a 200 without any block
    if first_error is not None:
        # Trouble somewhere and nothing found: the site's last good entries stand.
        out.url, out.error = first_error
        out.status = "error"
    return out


def _norm_name(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (name or "").lower()).strip()


def entries_to_claims(anchor: str, hospital_name: str | None, fetched: HptFetch) -> list[Claim]:
    """Claims of one website's blocks. A single block, or a block named like the hospital, is
    anchored to it; the other blocks of a system-wide file stand on their own identifiers."""
    claims = []
    single = len(fetched.entries) == 1
    for i, entry in enumerate(fetched.entries):
        mine = single or _norm_name(entry.location_name) == _norm_name(hospital_name)
        claims.append(
            Claim(
                source=SOURCE,
                source_id=f"{fetched.url}#{i}",
                name=entry.location_name,
                website=fetched.website,
                files=(ClaimFile(url=entry.mrf_url, source_page_url=entry.source_page_url),),
                anchor=anchor if mine else None,
                contact_name=entry.contact_name,
                contact_email=entry.contact_email,
                # entries read back from site_crawls hold the fixes as JSON lists
                text_fixes=tuple(TextFix(*fix) for fix in entry.text_fixes),
            )
        )
    return claims


class CmsHptSource:
    """Crawl ``(hospital_key, name, website)`` sites for their cms-hpt.txt, concurrently."""

    name = SOURCE

    def __init__(self, sites: Iterable[tuple[str, str | None, str]], *, settings, workers: int | None = None):
        self.sites = [s for s in sites if s[2]]
        self.settings = settings
        self.workers = workers or settings.discovery_workers
        self.fetches: dict[str, HptFetch] = {}

    def fetch(self) -> SourceResult:
        started = time.monotonic()
        result = SourceResult(source=SOURCE, complete=True)
        root_cache: dict = {}
        with (
            make_client(self.settings, pool=self.workers) as client,
            ThreadPoolExecutor(self.workers) as pool,
        ):
            fetched = list(
                pool.map(
                    lambda s: (
                        s,
                        fetch_cms_hpt(s[2], settings=self.settings, client=client, root_cache=root_cache),
                    ),
                    self.sites,
                )
            )
        counts: dict[str, int] = {}
        for (key, name, _website), f in fetched:
            self.fetches[key] = f
            counts[f.status] = counts.get(f.status, 0) + 1
            if f.status == "error":
                result.errors.append(f"{f.url}: {f.error}")
            result.claims.extend(entries_to_claims(key, name, f))
        result.stats = {"sites": len(self.sites), **counts, "seconds": round(time.monotonic() - started, 3)}
        return result
