"""Client for a PRA-style hospital catalog: which hospitals exist and where their MRFs are.

The catalog (Patient Rights Advocate's API, or the bundled demo server) is paginated JSON::

    GET <catalog_url>?page=1&per_page=100[&state=CA]
    -> {"page", "per_page", "total", "total_pages", "hospitals": [{"id", "ccn", "name", ...,
        "files": [{"url", "format", "size", "retrieved_at", "sha256"?}]}]}

:func:`fetch_catalog` walks every page and returns the complete list or raises
:class:`CatalogError`. It never returns a partial or empty list: downstream, a hospital missing
from the catalog may be treated as "removed", so an outage must not look like a mass removal.

:func:`hospital_key` gives the stable partition key of a hospital, :func:`files_fingerprint`
a short hash that changes when its published files change (a sensor's run_key), and
:func:`parse_ein_npi_from_filename` reads the CMS file naming convention.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from price_pipeline.lib.discovery import keys
from price_pipeline.lib.discovery.keys import normalize_key, slug
from price_pipeline.lib.fetch.http.budget import TransferBudget
from price_pipeline.lib.fetch.http.client import safe_client
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError
from price_pipeline.lib.lake.text import TextFix, clean_json

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# A catalog page of 500 hospitals is ~1 MB; anything near this is not a catalog page.
MAX_PAGE_BYTES = 64 * 1024 * 1024
DEFAULT_REQUEST_DEADLINE_SECONDS = 120.0


class CatalogError(RuntimeError):
    """The catalog could not be read completely and correctly; do not act on a partial view."""


@dataclass(frozen=True)
class CatalogFile:
    """One published MRF of a hospital. Unknown JSON fields are kept in ``extra``."""

    url: str
    format: str | None = None
    size: int | None = None
    retrieved_at: str | None = None
    sha256: str | None = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def filename(self) -> str:
        """The file name: ``name`` when given, else the last path segment of the URL."""
        return self.name or unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class CatalogHospital:
    """One hospital of the catalog. Unknown JSON fields are kept in ``extra``."""

    id: str
    name: str
    ccn: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    website: str | None = None
    files: tuple[CatalogFile, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # NUL characters / lone surrogates removed from the entry's text (see lib/lake/text.py).
    text_fixes: tuple[TextFix, ...] = field(default=(), compare=False, hash=False)


_HOSPITAL_FIELDS = ("id", "name", "ccn", "address", "city", "state", "zip", "website", "files")
_FILE_FIELDS = ("url", "format", "size", "retrieved_at", "sha256", "name")


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _parse_file(raw: Any, where: str) -> CatalogFile:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw["url"].strip():
        raise CatalogError(f"{where}: file entry without a url: {raw!r:.200}")
    size = raw.get("size")
    if size is not None:
        try:
            size = int(size)
        except (TypeError, ValueError):
            size = None  # a bad size is not worth failing the catalog for; the download measures it
    return CatalogFile(
        url=raw["url"].strip(),
        format=_opt_str(raw.get("format")),
        size=size,
        retrieved_at=_opt_str(raw.get("retrieved_at")),
        sha256=_opt_str(raw.get("sha256")),
        name=_opt_str(raw.get("name")),
        extra={k: v for k, v in raw.items() if k not in _FILE_FIELDS},
    )


def parse_hospital(raw: Any, where: str = "catalog") -> CatalogHospital:
    """One catalog JSON object -> :class:`CatalogHospital` (raises :class:`CatalogError` if unusable)."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: hospital entry is not an object: {raw!r:.200}")
    # A NUL or lone surrogate ("\u0000", "\ud800") cannot be stored; clean the whole entry first
    # and keep what was fixed, so discovery records it as a finding.
    raw, text_fixes = clean_json(raw)
    hid, name = _opt_str(raw.get("id")), _opt_str(raw.get("name"))
    if hid is None or name is None:
        raise CatalogError(f"{where}: hospital entry without id or name: {raw!r:.200}")
    files = raw.get("files") or []
    if not isinstance(files, list):
        raise CatalogError(f"{where}: hospital {hid}: 'files' is not a list")
    state = _opt_str(raw.get("state"))
    return CatalogHospital(
        id=hid,
        name=name,
        ccn=_opt_str(raw.get("ccn")),
        address=_opt_str(raw.get("address")),
        city=_opt_str(raw.get("city")),
        state=state.upper() if state else None,
        zip=_opt_str(raw.get("zip")),
        website=_opt_str(raw.get("website")),
        files=tuple(_parse_file(f, f"{where}: hospital {hid}") for f in files),
        extra={k: v for k, v in raw.items() if k not in _HOSPITAL_FIELDS},
        text_fixes=tuple(text_fixes),
    )


def _read_page(
    http: httpx.Client, catalog_url: str, params: dict[str, Any], deadline: float
) -> tuple[httpx.Response, bytes]:
    """One GET (redirects followed by the client, each hop checked) under an overall deadline:
    the response and its body, read up to :data:`MAX_PAGE_BYTES`."""
    with (
        TransferBudget(deadline, what="catalog page request").active(),
        http.stream("GET", catalog_url, params=params) as response,
    ):
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_PAGE_BYTES:
                raise CatalogError(f"catalog page {params.get('page')} is larger than {MAX_PAGE_BYTES} bytes")
            chunks.append(chunk)
    return response, b"".join(chunks)


def _get_page(
    http: httpx.Client,
    catalog_url: str,
    params: dict[str, Any],
    *,
    max_attempts: int,
    base_delay: float,
    sleep: Callable[[float], None],
    deadline: float = DEFAULT_REQUEST_DEADLINE_SECONDS,
) -> dict:
    """GET one page with retries on transient trouble; the decoded JSON object."""
    last_error = ""
    for attempt in range(1, max_attempts + 1):
        retry_after: float | None = None
        try:
            response, body = _read_page(http, catalog_url, params, deadline)
        except UnsafeUrlError as exc:  # a redirect (or the URL) leads to a refused address
            raise CatalogError(f"catalog page {params.get('page')} refused: {exc}") from exc
        except httpx.TooManyRedirects as exc:
            raise CatalogError(f"catalog page {params.get('page')}: {exc}") from exc
        except httpx.TransportError as exc:  # connection refused/reset, timeouts, the deadline
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                try:
                    payload = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise CatalogError(f"catalog page {params.get('page')} is not JSON: {exc}") from exc
                if not isinstance(payload, dict):
                    raise CatalogError(f"catalog page {params.get('page')} is not a JSON object")
                return payload
            if response.status_code not in RETRYABLE_STATUSES:
                raise CatalogError(f"catalog {response.url} answered HTTP {response.status_code}")
            last_error = f"HTTP {response.status_code}"
            value = response.headers.get("Retry-After", "")
            retry_after = float(value) if value.strip().isdigit() else None
        if attempt < max_attempts:
            delay = retry_after if retry_after is not None else base_delay * 2 ** (attempt - 1)
            sleep(min(delay, 60.0) * random.uniform(0.9, 1.1))
    raise CatalogError(
        f"catalog {catalog_url} page {params.get('page')} failed after {max_attempts} attempts: {last_error}"
    )


def _int_field(payload: dict, name: str, page: int) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CatalogError(f"catalog page {page}: {name!r} missing or not a non-negative integer: {value!r}")
    return value


def fetch_catalog(
    catalog_url: str,
    *,
    settings=None,
    client: httpx.Client | None = None,
    per_page: int = 100,
    state: str | None = None,
    max_attempts: int = 4,
    base_delay: float = 1.0,
    timeout: float = 30.0,
    user_agent: str = "price_pipeline/0.1 (+https://github.com/price-pipeline)",
    sleep: Callable[[float], None] = time.sleep,
    max_pages: int = 10_000,
) -> list[CatalogHospital]:
    """Every hospital of the catalog (optionally one ``state``), in catalog order, de-duplicated by id.

    Raises :class:`CatalogError` on HTTP errors (after ``max_attempts`` for transient ones),
    non-JSON or malformed pages, an empty catalog (``total == 0``, or ``total > 0`` but page 1
    lists nothing), or fewer hospitals collected than ``total`` announced. The catalog URL is
    configuration, not hospital input: its own host:port is trusted even on a private address,
    but every redirect away from it is checked like hospital input (a refused hop raises at
    once). Each page request, redirects included, has ``settings.request_deadline_seconds``
    (120 s without settings); ``settings`` also supplies the allow-list and the per-read timeout.
    """
    own_client = client is None
    http = client or safe_client(
        settings,
        trusted_urls=[catalog_url],
        timeout=settings.http_timeout_seconds if settings is not None else timeout,
        user_agent=settings.user_agent if settings is not None else user_agent,
        follow_redirects=True,
        pool=2,
    )
    deadline = settings.request_deadline_seconds if settings is not None else DEFAULT_REQUEST_DEADLINE_SECONDS
    try:
        params: dict[str, Any] = {"page": 1, "per_page": per_page}
        if state:
            params["state"] = state
        by_id: dict[str, CatalogHospital] = {}
        total = total_pages = None
        page = 1
        while True:
            params["page"] = page
            payload = _get_page(
                http,
                catalog_url,
                params,
                max_attempts=max_attempts,
                base_delay=base_delay,
                sleep=sleep,
                deadline=deadline,
            )
            items = payload.get("hospitals")
            if not isinstance(items, list):
                raise CatalogError(f"catalog page {page}: 'hospitals' missing or not a list")
            page_total = _int_field(payload, "total", page)
            if page == 1:
                total = page_total
                total_pages = payload.get("total_pages")
                if total == 0:
                    raise CatalogError(
                        f"catalog {catalog_url} reports 0 hospitals"
                        + (f" for state {state!r}" if state else "")
                        + "; refusing to treat that as 'every hospital was removed'"
                    )
                if not items:
                    raise CatalogError(f"catalog reports total={total} but page 1 lists no hospital")
            for i, raw in enumerate(items):
                hospital = parse_hospital(raw, f"catalog page {page} item {i}")
                by_id.setdefault(hospital.id, hospital)
            assert total is not None
            if len(by_id) >= total or not items:
                break
            if isinstance(total_pages, int) and page >= total_pages:
                break
            page += 1
            if page > max_pages:
                raise CatalogError(f"catalog has more than {max_pages} pages; giving up")
        if len(by_id) < total:
            # Pages shifted while we walked them, or the server under-reports: a partial list
            # would look like removals downstream.
            raise CatalogError(f"catalog announced {total} hospitals but only {len(by_id)} were listed")
        return list(by_id.values())
    finally:
        if own_client:
            http.close()


def hospital_key(h: CatalogHospital) -> str:
    """Stable partition key for a hospital, matching ``[a-z0-9_-]{1,64}``.

    Choice: the CMS Certification Number identifies a hospital across catalogs and years,
    whereas the catalog ``id`` is specific to one catalog provider and names get re-branded.
    So: ``ccn-<ccn>`` when a CCN is present; otherwise ``<slug(name)>-<state>``; otherwise
    ``id-<slug(id)>``. Long keys are cut by the one normaliser (:func:`.keys.normalize_key`).
    """
    if h.ccn and slug(h.ccn):
        key = f"ccn-{slug(h.ccn)}"
    elif slug(h.name):
        key = "-".join(part for part in (slug(h.name), slug(h.state or "")) if part)
    else:
        key = f"id-{slug(h.id) or hashlib.sha256(h.id.encode()).hexdigest()[:12]}"
    return normalize_key(key)


def files_fingerprint(h: CatalogHospital) -> str:
    """16-hex-char hash of the hospital's files (url, size, retrieved_at, sha256); order-insensitive
    (:func:`.keys.files_fingerprint`, the same digest reconciliation gives a hospital's files)."""
    return keys.files_fingerprint(
        {"url": f.url, "size": f.size, "retrieved_at": f.retrieved_at, "sha256": f.sha256} for f in h.files
    )


# <EIN>[-<NPI>]_<hospital-name>_standardcharges.<ext> (CMS 45 CFR 180.50(d)(5) naming convention).
# Lenient on purpose: EIN with or without its dash, case-insensitive, any extension (csv.gz too).
_FILENAME_RE = re.compile(
    r"^(?P<ein>\d{2}-?\d{7})(?:-(?P<npi>\d{10}))?_(?P<name>.+?)_standardcharges(?:[._-].*)?$",
    re.IGNORECASE,
)


def parse_ein_npi_from_filename(name: str) -> tuple[str | None, str | None]:
    """``(ein, npi)`` from a CMS-convention file name or URL; ``None`` for what is absent.

    ``951234567_west-mercy_standardcharges.csv`` -> ``("951234567", None)``;
    ``316123456-1234567893_riverbend_standardcharges.json`` -> ``("316123456", "1234567893")``.
    The EIN is returned as 9 digits (dash removed).
    """
    base = unquote(urlsplit(name).path if "://" in name else name).replace("\\", "/").rsplit("/", 1)[-1]
    match = _FILENAME_RE.match(base.strip())
    if not match:
        return None, None
    return match["ein"].replace("-", ""), match["npi"]
