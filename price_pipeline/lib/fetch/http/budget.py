"""Overall deadlines (and a minimum speed) for HTTP transfers, on top of httpx's per-read timeout.

``httpx.Timeout`` bounds each socket operation, not a request: a server that sends one byte every
1.9 s never trips a 2 s read timeout and can hold a worker until the size cap (20 GiB) is
reached, and one that trickles its *headers* never even lets the caller see a response. A
:class:`TransferBudget` bounds the whole thing: while it is active (``with budget.active():``),
every connect, TLS handshake, read and write of a connection made by
:func:`price_pipeline.lib.fetch.http.client.safe_client` gets at most the budget's remaining time as its
timeout, and fails with :class:`DeadlineExceeded` once none is left -- whatever phase the request
is in. Optionally the budget also ends a transfer that stays below ``min_bytes_per_second`` over
a whole ``window_seconds`` (:class:`TransferTooSlow`), so a trickle fails in about a minute rather
than at the deadline.

Only time spent inside ``active()`` counts: a redirect chain (one ``active()`` per hop) shares one
budget, and time spent waiting for a per-host limiter slot between hops does not use it up.
The active budget lives in a :class:`contextvars.ContextVar`: each thread (and each task) sees
its own, so a shared connection pool serves requests with different budgets.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

import httpx


class DeadlineExceeded(httpx.TimeoutException):
    """The transfer used up its overall time budget (the remote end is too slow or stalls)."""


class TransferTooSlow(httpx.TimeoutException):
    """The transfer stayed below the minimum speed for a whole measuring window."""


_ACTIVE: contextvars.ContextVar[TransferBudget | None] = contextvars.ContextVar(
    "price_pipeline_http_budget", default=None
)


class TransferBudget:
    """At most ``deadline_seconds`` of network time, and (when ``min_bytes_per_second`` > 0) at
    least that average speed over every ``window_seconds``. ``what`` names the transfer in errors."""

    def __init__(
        self,
        deadline_seconds: float | None,
        *,
        min_bytes_per_second: float = 0.0,
        window_seconds: float = 60.0,
        what: str = "request",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.deadline_seconds = deadline_seconds if deadline_seconds and deadline_seconds > 0 else None
        self.min_bytes_per_second = max(0.0, min_bytes_per_second or 0.0)
        self.window_seconds = max(0.001, window_seconds)
        self.what = what
        self.clock = clock
        self.spent = 0.0  # network time of finished active() blocks
        self._entered: float | None = None
        self._parent: TransferBudget | None = None
        self._window_start = 0.0
        self._window_bytes = 0

    # -- scope ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def active(self) -> Iterator[TransferBudget]:
        """Make this the budget of every connection operation in this thread/context."""
        if self._entered is not None:  # re-entered (nested use of the same budget): already counting
            yield self
            return
        self._parent = _ACTIVE.get()
        self._entered = self._window_start = self.clock()
        self._window_bytes = 0
        token = _ACTIVE.set(self)
        try:
            self.check()
            yield self
        finally:
            _ACTIVE.reset(token)
            self.spent += self.clock() - self._entered
            self._entered = None
            self._parent = None

    # -- queries used by the guarded network stream --------------------------------------------
    def remaining(self) -> float | None:
        """Seconds left (None: no deadline), the parent's limit included."""
        own = None
        if self.deadline_seconds is not None:
            running = self.clock() - self._entered if self._entered is not None else 0.0
            own = self.deadline_seconds - self.spent - running
        parent = self._parent.remaining() if self._parent is not None else None
        if own is None:
            return parent
        return own if parent is None else min(own, parent)

    def check(self) -> None:
        """Raise :class:`DeadlineExceeded` when no time is left."""
        left = self.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded(self.deadline_message())

    def deadline_message(self) -> str:
        limit = self.deadline_seconds
        if limit is None and self._parent is not None:
            return self._parent.deadline_message()
        return f"{self.what} deadline of {limit:g} s exceeded"

    def cap(self, timeout: float | None) -> float | None:
        """``timeout`` shortened to the time left; raises when none is left."""
        self.check()
        left = self.remaining()
        if left is None:
            return timeout
        return left if timeout is None else min(timeout, left)

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def received(self, n: int) -> None:
        """Count ``n`` bytes read; raise :class:`TransferTooSlow` after a window below the minimum speed."""
        if self._parent is not None:
            self._parent.received(n)
        if not self.min_bytes_per_second:
            return
        self._window_bytes += n
        now = self.clock()
        elapsed = now - self._window_start
        if elapsed >= self.window_seconds:
            if self._window_bytes < self.min_bytes_per_second * elapsed:
                raise TransferTooSlow(
                    f"{self.what} too slow: {self._window_bytes} bytes in {elapsed:.1f} s "
                    f"(minimum {self.min_bytes_per_second:g} bytes/s)"
                )
            self._window_start, self._window_bytes = now, 0


def active_budget() -> TransferBudget | None:
    """The budget active in this thread/context, if any."""
    return _ACTIVE.get()


def request_budget(settings, what: str = "request") -> TransferBudget:
    """The budget of one small request (catalog page, cms-hpt.txt, probe), redirects included."""
    return TransferBudget(settings.request_deadline_seconds, what=what)


def download_budget(settings) -> TransferBudget:
    """The budget of one download attempt (redirects, headers and body): the overall deadline plus
    the minimum speed measured over windows as long as the per-read timeout."""
    return TransferBudget(
        settings.download_deadline_seconds,
        min_bytes_per_second=settings.download_min_bytes_per_second,
        window_seconds=settings.http_timeout_seconds,
        what="download attempt",
    )
