"""Robust streaming download of one MRF to a local file (change detection: ``..change_detection``).

Hospital MRF hosts are flaky: 5xx bursts, 429 rate limits, connections dropped half-way
through multi-GB files, redirect chains through CDNs, and HTML error pages served with
status 200 under a ``.csv`` name. :func:`download` therefore

* streams with httpx into a temporary file inside ``dest_dir`` while hashing (sha256) on the fly,
  so memory stays flat and the content address is known the moment the last byte lands;
* follows redirects itself (at most ``max_redirects``) so that every hop goes through
  :func:`~price_pipeline.lib.fetch.http.url_safety.check_url` (SSRF guard), and connects through
  :func:`~price_pipeline.lib.fetch.http.client.safe_client`, which applies the same address policy to
  the address each connection really uses (IDNA names, DNS rebinding);
* bounds each attempt -- redirects, headers and body -- by ``settings.download_deadline_seconds``
  and ends one that stays below ``settings.download_min_bytes_per_second`` over a window of the
  per-read timeout (:mod:`~price_pipeline.lib.fetch.http.budget`; reasons ``deadline_exceeded`` and
  ``too_slow``, permanent: another attempt right away would hold the worker just as long);
* retries transient failures (connection errors, timeouts, 408/425/429/5xx, truncated bodies)
  with exponential backoff + jitter, honouring ``Retry-After``, bounded by attempts *and* total time;
* resumes a dropped transfer with ``Range`` + ``If-Range`` when the server advertised byte ranges and
  a validator, and verifies ``206`` + ``Content-Range`` (anything else: start over);
* enforces ``settings.max_download_bytes`` on the announced Content-Length and while streaming;
* never reports a truncated file as good: the byte count must match Content-Length;
* sniffs the first bytes: HTML where data was expected fails with reason ``html_instead_of_data``
  (the bytes are kept at ``result.path`` as evidence; the caller decides what to do with them);
* decodes a ``Content-Encoding: gzip/deflate`` body (sent by servers that ignore our
  ``Accept-Encoding: identity``) on the fly, capped by ``max_download_bytes`` and by
  ``settings.max_decompression_ratio`` (reason ``decompression_bomb``); a ZIP whose members
  declare more than that ratio is rejected the same way (gzip *files* are capped when parsed);
* takes a slot of the per-host limiter (:mod:`~price_pipeline.lib.fetch.http.limits`) for each request.

On success the file is renamed to ``<dest_dir>/<sha256>.<ext>``; the caller moves it into the lake
(``layout.raw_key(result.sha256, result.extension)``). On failure no partial file is left behind,
except the HTML evidence described above.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from price_pipeline.lib.fetch.http.budget import (
    DeadlineExceeded,
    TransferBudget,
    TransferTooSlow,
    download_budget,
)
from price_pipeline.lib.fetch.http.client import safe_client
from price_pipeline.lib.fetch.http.limits import HostLimiter, limiter_for
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError, check_url
from price_pipeline.settings import Settings

ErrorKind = Literal["transient", "permanent"]

# Statuses worth retrying: the same request may succeed later.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
KNOWN_EXTENSIONS = ("csv", "json", "zip", "gz", "xlsx", "html", "bin")
SNIFF_BYTES = 4096
# The ratio cap only applies once this much was decoded (tiny, repetitive bodies compress well).
RATIO_CHECK_AFTER = 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Delays are ``base_delay * 2**n`` capped at ``max_delay``, +/- ``jitter`` fraction.

    ``max_total_seconds`` bounds the whole call (waits included): a retry whose wait would
    exceed it is not attempted. A ``Retry-After`` longer than ``max_retry_after`` is not honoured;
    the download fails as transient instead, so a scheduler can come back much later.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.25
    max_total_seconds: float = 3600.0
    max_retry_after: float = 300.0

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``retry_number`` (1-based), jittered so that workers spread out."""
        delay = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        spread = delay * self.jitter
        return max(0.0, delay + (rng or random).uniform(-spread, spread))


@dataclass
class DownloadResult:
    """Outcome of :func:`download`. ``ok`` is True only for a complete, non-HTML file (or a 304)."""

    ok: bool
    url: str
    final_url: str | None = None
    path: Path | None = None
    sha256: str | None = None
    size: int = 0
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    status_code: int | None = None
    attempts: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None
    # Machine-readable failure code: unsafe_url, too_many_redirects, http_status, too_large,
    # truncated, connection, timeout, deadline_exceeded, too_slow, html_instead_of_data,
    # range_not_satisfiable, empty, decompression_bomb, unsupported_encoding.
    reason: str | None = None
    extension: str = "bin"
    not_modified: bool = False
    resumed: bool = False
    redirects: list[str] = field(default_factory=list)


class _Failure(Exception):
    """Internal: ends one attempt. ``kind`` decides whether another attempt is worth it."""

    def __init__(
        self,
        reason: str,
        message: str,
        kind: ErrorKind,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.reason = reason
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes of a body are an HTML document (error pages, login walls, CDN blocks)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(
        (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<title", b"<meta", b"<script")
    ):
        return True
    # XHTML or an XML prolog followed by <html>
    return text.startswith(b"<?xml") and b"<html" in text[:SNIFF_BYTES]


def _url_extension(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).lower()
    if name.endswith((".csv.gz", ".json.gz", ".gz", ".gzip")):
        return "gz"
    return name.rsplit(".", 1)[-1] if "." in name else ""


def guess_extension(
    head: bytes, url: str = "", content_type: str | None = None, path: str | os.PathLike | None = None
) -> str:
    """Best file extension from content (first bytes), then the URL, then the Content-Type.

    Returns one of csv/json/zip/gz/xlsx/html/bin. Content wins because hospitals mislabel files
    (a ZIP named .csv, JSON served as text/plain, HTML served as .csv). ``path`` lets a ZIP be
    told apart from an XLSX (which is a ZIP with an ``xl/`` folder).
    """
    url_ext = _url_extension(url)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if url_ext == "xlsx" or "spreadsheetml" in ctype:
            return "xlsx"
        if path is not None:
            try:
                with zipfile.ZipFile(path) as zf:
                    if any(n.startswith("xl/") for n in zf.namelist()):
                        return "xlsx"
            except (zipfile.BadZipFile, OSError):
                pass
        return "zip"
    if looks_like_html(head):
        return "html"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"{", b"[")):
        return "json"
    if b"\x00" in head[:1024]:
        return "bin"
    if url_ext in ("csv", "txt", "tsv") or "csv" in ctype:
        return "csv"
    first_line = text.split(b"\n", 1)[0]
    if b"," in first_line or b"|" in first_line or b"\t" in first_line:
        return "csv"
    if url_ext in KNOWN_EXTENSIONS:
        return url_ext
    return "bin"


def _make_client(settings: Settings) -> httpx.Client:
    return safe_client(settings, pool=4)


class _Partial:
    """The temp file being filled, its running hash, and what we know to resume it."""

    def __init__(self, dest_dir: Path):
        fd, name = tempfile.mkstemp(prefix=".dl-", suffix=".part", dir=dest_dir)
        self.path = Path(name)
        self.fh = os.fdopen(fd, "w+b")
        self.hasher = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.total: int | None = None
        self.validator: str | None = None  # strong ETag or Last-Modified of the partial body
        self.accept_ranges = False
        self.wire_bytes = 0  # bytes received before any Content-Encoding was decoded

    def restart(self) -> None:
        self.fh.seek(0)
        self.fh.truncate()
        self.hasher = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.total = None
        self.validator = None
        self.accept_ranges = False
        self.wire_bytes = 0

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.hasher.update(chunk)
        self.size += len(chunk)
        if len(self.head) < SNIFF_BYTES:
            self.head = (self.head + chunk)[:SNIFF_BYTES]

    @property
    def resumable(self) -> bool:
        return self.size > 0 and self.accept_ranges and self.validator is not None and self.total is not None

    def discard(self) -> None:
        self.fh.close()
        self.path.unlink(missing_ok=True)


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes a-b/total`` -> (a, b, total|None)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[len("bytes ") :].partition("/")
    first, _, last = span.partition("-")
    try:
        return int(first), int(last), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def download(
    url: str,
    dest_dir: str | os.PathLike,
    *,
    settings: Settings,
    client: httpx.Client | None = None,
    expected_etag: str | None = None,
    expected_last_modified: str | None = None,
    retry: RetryPolicy | None = None,
    max_redirects: int = 5,
    allow_html: bool = False,
    chunk_size: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    limiter: HostLimiter | None = None,
) -> DownloadResult:
    """Download ``url`` into ``dest_dir`` and return a :class:`DownloadResult` (never raises for HTTP trouble).

    ``expected_etag`` / ``expected_last_modified`` (from the previous successful download) make
    the request conditional: a 304 returns ``ok=True, not_modified=True, path=None``.
    ``retry``, ``sleep`` and ``clock`` are injectable so tests run with millisecond delays.
    A ``client`` passed in is used as is (its own redirect following is bypassed per request)
    and is not closed; only a client from :func:`~price_pipeline.lib.fetch.http.client.safe_client`
    pins the checked address and enforces the deadline inside a request.
    """
    policy = retry or RetryPolicy()
    limiter = limiter or limiter_for(settings)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    own_client = client is None
    http = client or _make_client(settings)
    result = DownloadResult(ok=False, url=url)
    partial = _Partial(dest)
    started = clock()
    rng = random.Random()
    try:
        while True:
            result.attempts += 1
            try:
                outcome = _attempt(
                    url,
                    partial,
                    result,
                    http,
                    settings,
                    expected_etag,
                    expected_last_modified,
                    max_redirects,
                    chunk_size,
                    limiter,
                )
            except _Failure as failure:
                result.error, result.reason, result.error_kind = str(failure), failure.reason, failure.kind
                if failure.status is not None:
                    result.status_code = failure.status
                if failure.kind == "permanent" or result.attempts >= policy.max_attempts:
                    return result
                if failure.retry_after is not None:
                    if failure.retry_after > policy.max_retry_after:
                        result.error += f" (Retry-After {failure.retry_after:.0f}s exceeds the policy)"
                        return result
                    delay = failure.retry_after
                else:
                    delay = policy.backoff(result.attempts, rng)
                if clock() - started + delay > policy.max_total_seconds:
                    result.error += " (time budget exhausted)"
                    return result
                if not partial.resumable:
                    partial.restart()
                sleep(delay)
                continue
            if outcome == "not_modified":
                result.ok, result.not_modified = True, True
                result.error = result.reason = result.error_kind = None
                return result
            return _finish(partial, result, allow_html, settings)
    finally:
        if not partial.fh.closed:
            partial.fh.close()
        if not (result.path and result.path.exists()):
            partial.path.unlink(missing_ok=True)
        if own_client:
            http.close()


def _attempt(
    url: str,
    partial: _Partial,
    result: DownloadResult,
    http: httpx.Client,
    settings: Settings,
    expected_etag: str | None,
    expected_last_modified: str | None,
    max_redirects: int,
    chunk_size: int | None,
    limiter: HostLimiter,
) -> str:
    """One request chain (redirects included). Returns "done" or "not_modified"; raises _Failure."""
    current = url
    result.redirects = []
    budget = download_budget(settings)
    for _hop in range(max_redirects + 1):
        try:
            check_url(current, settings.allowed_private_hosts)
        except UnsafeUrlError as exc:
            raise _Failure("unsafe_url", str(exc), "permanent") from exc
        # identity: we store the exact bytes the hospital publishes and compare against Content-Length.
        headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "identity"}
        resuming = partial.resumable
        if resuming:
            headers["Range"] = f"bytes={partial.size}-"
            headers["If-Range"] = partial.validator or ""
        elif partial.size == 0:
            if expected_etag:
                headers["If-None-Match"] = expected_etag
            if expected_last_modified:
                headers["If-Modified-Since"] = expected_last_modified
        try:
            with (
                limiter.slot(current),
                budget.active(),
                http.stream("GET", current, headers=headers, follow_redirects=False) as response,
            ):
                result.status_code = response.status_code
                result.final_url = str(response.url)
                status = response.status_code
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise _Failure(
                            "http_status",
                            f"HTTP {status} without Location from {current}",
                            "permanent",
                            status=status,
                        )
                    current = urljoin(current, location)
                    result.redirects.append(current)
                    continue
                if status == 304:
                    if "If-None-Match" in headers or "If-Modified-Since" in headers:
                        result.etag = response.headers.get("ETag") or expected_etag
                        result.last_modified = response.headers.get("Last-Modified") or expected_last_modified
                        return "not_modified"
                    raise _Failure(
                        "http_status", f"unexpected 304 from {current}", "permanent", status=status
                    )
                if status in RETRYABLE_STATUSES:
                    raise _Failure(
                        "http_status",
                        f"HTTP {status} from {current}",
                        "transient",
                        status=status,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
                if status == 416 and resuming:
                    # Our offset no longer fits the resource: start over rather than trust the partial.
                    partial.restart()
                    raise _Failure(
                        "range_not_satisfiable", f"HTTP 416 resuming {current}", "transient", status=status
                    )
                if status not in (200, 206):
                    raise _Failure("http_status", f"HTTP {status} from {current}", "permanent", status=status)
                _receive(response, partial, result, settings, resuming, chunk_size, budget)
                return "done"
        except UnsafeUrlError as exc:  # refused when connecting (the address actually resolved)
            raise _Failure("unsafe_url", str(exc), "permanent") from exc
        except DeadlineExceeded as exc:
            raise _Failure(
                "deadline_exceeded", f"{exc} fetching {current} ({partial.size} bytes received)", "permanent"
            ) from exc
        except TransferTooSlow as exc:
            raise _Failure("too_slow", f"{exc} fetching {current}", "permanent") from exc
        except httpx.TimeoutException as exc:
            raise _Failure("timeout", f"timeout fetching {current}: {exc!r}", "transient") from exc
        except httpx.TransportError as exc:
            # ConnectError, ReadError (reset), RemoteProtocolError (peer closed mid-body), ...
            reason = (
                "truncated" if partial.total is not None and partial.size < partial.total else "connection"
            )
            raise _Failure(reason, f"{type(exc).__name__} fetching {current}: {exc}", "transient") from exc
    raise _Failure(
        "too_many_redirects", f"more than {max_redirects} redirects starting at {url}", "permanent"
    )


def _receive(
    response: httpx.Response,
    partial: _Partial,
    result: DownloadResult,
    settings: Settings,
    resuming: bool,
    chunk_size: int | None,
    budget: TransferBudget | None = None,
) -> None:
    """Validate headers, then stream the body into the partial file. Raises _Failure."""
    status = response.status_code
    length_header = response.headers.get("Content-Length")
    try:
        length = int(length_header) if length_header is not None else None
    except ValueError:
        length = None
    if status == 206:
        content_range = _parse_content_range(response.headers.get("Content-Range"))
        if (
            not resuming
            or content_range is None
            or content_range[0] != partial.size
            or (content_range[2] is not None and content_range[2] != partial.total)
        ):
            # A range we did not ask for, or not the one we asked for: the partial cannot be trusted.
            partial.restart()
            raise _Failure(
                "truncated",
                "unexpected 206 / Content-Range; restarting from byte 0",
                "transient",
                status=status,
            )
        result.resumed = True
    else:
        if partial.size:
            # 200 to a Range request: the server ignored it (or If-Range failed): start over.
            partial.restart()
        partial.total = length
    if partial.total is not None and partial.total > settings.max_download_bytes:
        raise _Failure(
            "too_large",
            f"Content-Length {partial.total} exceeds max_download_bytes {settings.max_download_bytes}",
            "permanent",
            status=status,
        )
    result.content_type = response.headers.get("Content-Type")
    if status == 200:
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        result.etag, result.last_modified = etag, last_modified
        # If-Range needs a strong validator: weak ETags may not be used for byte ranges.
        partial.validator = etag if etag and not etag.startswith("W/") else last_modified
        partial.accept_ranges = response.headers.get("Accept-Ranges", "").lower() == "bytes"
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decoder = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        # The server ignored Accept-Encoding: identity. Store the decoded bytes (what the hospital
        # publishes); Content-Length counts encoded bytes; no resume (offsets are encoded ones).
        decoder = zlib.decompressobj(47)  # gzip or zlib header, auto-detected
        partial.accept_ranges = False
        if resuming:
            partial.restart()
    elif encoding not in ("", "identity"):
        raise _Failure(
            "unsupported_encoding", f"Content-Encoding {encoding!r} not supported", "permanent", status=status
        )
    # chunk_size None: write what the socket delivers. A fixed size would make httpx buffer up to it,
    # and whatever sits in that buffer is lost when the connection drops (nothing left to resume).
    for chunk in response.iter_raw(chunk_size):
        partial.wire_bytes += len(chunk)
        if decoder is None:
            partial.write(chunk)
        else:
            _write_decoded(decoder, chunk, partial, settings, status)
        if partial.size > settings.max_download_bytes:
            raise _Failure(
                "too_large",
                f"body exceeds max_download_bytes {settings.max_download_bytes}",
                "permanent",
                status=status,
            )
        if budget is not None:
            budget.check()  # also with a client whose sockets do not know the budget
    if decoder is not None:
        _write_decoded(decoder, b"", partial, settings, status, final=True)
    partial.fh.flush()
    received = partial.wire_bytes if decoder is not None else partial.size
    if partial.total is not None and received != partial.total:
        if received > partial.total:
            partial.restart()
        raise _Failure(
            "truncated", f"received {received} of {partial.total} bytes", "transient", status=status
        )


def _write_decoded(
    decoder, chunk: bytes, partial: _Partial, settings: Settings, status: int, final: bool = False
) -> None:
    """Inflate ``chunk`` in bounded pieces, enforcing the size and ratio caps as output grows."""
    data = chunk
    while True:
        try:
            out = decoder.decompress(data, 1024 * 1024) if data or not final else decoder.flush()
        except zlib.error as exc:
            raise _Failure(
                "truncated", f"corrupt compressed body: {exc}", "transient", status=status
            ) from exc
        if out:
            partial.write(out)
        if partial.size > settings.max_download_bytes:
            raise _Failure(
                "too_large",
                f"decoded body exceeds max_download_bytes {settings.max_download_bytes}",
                "permanent",
                status=status,
            )
        if partial.size > RATIO_CHECK_AFTER and partial.size > settings.max_decompression_ratio * max(
            partial.wire_bytes, 1
        ):
            raise _Failure(
                "decompression_bomb",
                f"Content-Encoding body inflates more than {settings.max_decompression_ratio}x "
                f"({partial.wire_bytes} -> {partial.size}+ bytes)",
                "permanent",
                status=status,
            )
        data = decoder.unconsumed_tail
        if not data and (not final or not out):
            return


def zip_bomb_reason(path: str | os.PathLike, compressed_size: int, max_ratio: int) -> str | None:
    """Why a ZIP looks like a bomb (declared sizes above ``max_ratio`` x its size), or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None  # not a readable ZIP: the parser reports it
    if declared > RATIO_CHECK_AFTER and declared > max_ratio * max(compressed_size, 1):
        return f"ZIP members declare {declared} bytes from {compressed_size} ({declared // max(compressed_size, 1)}x)"
    return None


def _finish(
    partial: _Partial, result: DownloadResult, allow_html: bool, settings: Settings | None = None
) -> DownloadResult:
    """Name the complete file by its hash, classify it, and fill the result."""
    partial.fh.close()
    result.sha256 = partial.hasher.hexdigest()
    result.size = partial.size
    result.extension = guess_extension(
        partial.head, result.final_url or result.url, result.content_type, path=partial.path
    )
    final = partial.path.with_name(f"{result.sha256}.{result.extension}")
    os.replace(partial.path, final)
    result.path = final
    if result.size == 0:
        result.ok, result.reason, result.error_kind = False, "empty", "permanent"
        result.error = "the server sent an empty body"
        return result
    if result.extension in ("zip", "xlsx") and settings is not None:
        bomb = zip_bomb_reason(final, result.size, settings.max_decompression_ratio)
        if bomb:
            final.unlink(missing_ok=True)
            result.path = None
            result.ok, result.reason, result.error_kind, result.error = (
                False,
                "decompression_bomb",
                "permanent",
                bomb,
            )
            return result
    if result.extension == "html" and not allow_html:
        result.ok = False
        result.reason = "html_instead_of_data"
        result.error_kind = "permanent"
        result.error = (
            f"got an HTML page ({result.size} bytes, Content-Type {result.content_type!r}) "
            f"where a data file was expected; bytes kept at {final}"
        )
        return result
    result.ok = True
    result.error = result.reason = result.error_kind = None
    return result
