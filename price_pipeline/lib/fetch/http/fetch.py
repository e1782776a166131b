"""Small, SSRF-checked HTTP requests for discovery and change probes (``cms-hpt.txt``, HEAD, ranges).

Unlike :func:`~price_pipeline.lib.fetch.http.download.download` these read at most ``max_bytes`` into
memory. Every hop of a redirect chain goes through :func:`check_url` (and, with a client from
:func:`make_client`, through the connection-time address pinning of
:mod:`~price_pipeline.lib.fetch.http.client`), every request takes a slot of the per-host limiter, and
the whole chain has ``settings.request_deadline_seconds``. Errors are returned, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from price_pipeline.lib.fetch.http.budget import DeadlineExceeded, TransferTooSlow, request_budget
from price_pipeline.lib.fetch.http.client import safe_client
from price_pipeline.lib.fetch.http.limits import HostLimiter, limiter_for
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError, check_url

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass
class SmallResponse:
    url: str
    final_url: str | None = None
    status_code: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    # unsafe_url, too_many_redirects, connection, timeout, deadline_exceeded, too_large
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def make_client(settings, *, pool: int = 32) -> httpx.Client:
    """A shared client for many small requests (:func:`~price_pipeline.lib.fetch.http.client.safe_client`)."""
    return safe_client(settings, pool=pool)


def request_small(
    url: str,
    *,
    settings,
    client: httpx.Client,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    max_bytes: int = 1024 * 1024,
    read_body: bool = True,
    max_redirects: int = 5,
    limiter: HostLimiter | None = None,
) -> SmallResponse:
    """One request (redirects followed and re-checked); the body is read up to ``max_bytes``."""
    limiter = limiter or limiter_for(settings)
    result = SmallResponse(url=url)
    current = url
    send_headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "identity", **(headers or {})}
    budget = request_budget(settings)
    for _hop in range(max_redirects + 1):
        try:
            check_url(current, settings.allowed_private_hosts)
        except UnsafeUrlError as exc:
            result.error, result.reason = str(exc), "unsafe_url"
            return result
        try:
            with (
                limiter.slot(current),
                budget.active(),
                client.stream(method, current, headers=send_headers, follow_redirects=False) as response,
            ):
                result.status_code = response.status_code
                result.final_url = str(response.url)
                result.headers = {k.lower(): v for k, v in response.headers.items()}
                if response.status_code in REDIRECT_STATUSES and response.headers.get("Location"):
                    current = urljoin(current, response.headers["Location"])
                    continue
                if read_body and method != "HEAD":
                    chunks, size = [], 0
                    for chunk in response.iter_raw():
                        size += len(chunk)
                        if size > max_bytes:
                            result.error, result.reason = f"body larger than {max_bytes} bytes", "too_large"
                            return result
                        chunks.append(chunk)
                    result.body = b"".join(chunks)
                return result
        except UnsafeUrlError as exc:  # refused when connecting (the address actually resolved)
            result.error, result.reason = str(exc), "unsafe_url"
            return result
        except (DeadlineExceeded, TransferTooSlow) as exc:
            result.error, result.reason = f"{exc} fetching {current}", "deadline_exceeded"
            return result
        except httpx.TimeoutException as exc:
            result.error, result.reason = f"timeout: {exc!r}", "timeout"
            return result
        except httpx.HTTPError as exc:
            result.error, result.reason = f"{type(exc).__name__}: {exc}", "connection"
            return result
    result.error, result.reason = f"more than {max_redirects} redirects from {url}", "too_many_redirects"
    return result
