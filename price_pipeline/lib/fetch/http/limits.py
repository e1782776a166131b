"""Client-side per-host limits: at most N requests in flight and R requests per second per host.

Dagster's run-level tag limits (``price_pipeline/host`` in ``dagster.yaml``) keep too many runs
from hitting one hospital web server at once; this limiter is the second half, inside one run
worker or sensor process, where the change sweep and the cms-hpt.txt crawl use thread pools.
One limiter is shared per process and per (concurrency, rate) setting (:func:`shared_limiter`),
so threads of one process share the budget; separate processes each have their own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from price_pipeline.lib.fetch.http.url_safety import ascii_host


class _HostBudget:
    def __init__(self, concurrency: int, rate: float):
        self.semaphore = threading.BoundedSemaphore(max(1, concurrency))
        self.rate = rate
        self.capacity = max(1.0, rate)  # burst: one second's worth of requests
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take_token(self) -> None:
        if self.rate <= 0:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


class HostLimiter:
    """``with limiter.slot(url): ...`` waits for a concurrency slot and a rate token of the URL's host."""

    def __init__(self, max_concurrency: int = 4, max_requests_per_second: float = 10.0):
        self.max_concurrency = max_concurrency
        self.max_requests_per_second = max_requests_per_second
        self._hosts: dict[str, _HostBudget] = {}
        self._lock = threading.Lock()

    def _budget(self, host: str) -> _HostBudget:
        with self._lock:
            budget = self._hosts.get(host)
            if budget is None:
                budget = self._hosts[host] = _HostBudget(self.max_concurrency, self.max_requests_per_second)
            return budget

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        parts = urlsplit(url)
        # one budget per host however it is spelled (straße.example = xn--strae-oqa.example)
        host = f"{ascii_host(parts.hostname or '')}:{parts.port or ''}"
        budget = self._budget(host)
        budget.semaphore.acquire()
        try:
            budget.take_token()
            yield
        finally:
            budget.semaphore.release()


_SHARED: dict[tuple[int, float], HostLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(max_concurrency: int, max_requests_per_second: float) -> HostLimiter:
    """The process-wide limiter for these limits (created on first use)."""
    key = (int(max_concurrency), float(max_requests_per_second))
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            limiter = _SHARED[key] = HostLimiter(*key)
        return limiter


def limiter_for(settings) -> HostLimiter:
    return shared_limiter(settings.host_max_concurrency, settings.host_max_requests_per_second)
