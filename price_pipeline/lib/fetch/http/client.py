"""The one way price_pipeline makes HTTP clients: :func:`safe_client`.

Every httpx client of the pipeline (catalog API and its session endpoint, cms-hpt.txt crawl,
change probes, downloads, alert webhooks, the ops CLI) comes from here, so that the network
rules hold for every request and every redirect hop, whoever wrote the calling code:

* **Address pinning.** The connection pool's network backend (:class:`GuardedBackend`) resolves
  the exact host httpx connects to (the IDNA 2008 ASCII name), applies
  :func:`~price_pipeline.lib.fetch.http.url_safety.resolve_checked` (only public addresses unless the
  host is allow-listed) and connects to those same addresses. There is no second lookup, so an
  IDNA spelling difference or a DNS answer that changes between check and connect (rebinding)
  cannot reach an internal address. A refused connection raises
  :class:`~price_pipeline.lib.fetch.http.url_safety.UnsafeUrlError`.
* **Every hop checked.** A request hook refuses any scheme but http(s) on every request,
  redirects included, and each new connection of a redirect chain goes through the pinning
  above. Callers that follow redirects themselves also run ``check_url`` per hop.
* **Deadlines.** Every socket operation is bounded by the active
  :class:`~price_pipeline.lib.fetch.http.budget.TransferBudget` as well as by the per-read timeout.
* **No ambient configuration.** ``trust_env=False``: an ``HTTP(S)_PROXY`` variable would make a
  proxy resolve and connect on our behalf (bypassing the address check), and ``.netrc`` would add
  credentials to arbitrary hosts. TLS certificate variables (``SSL_CERT_FILE``/``SSL_CERT_DIR``)
  are still honoured.

``trusted_urls`` adds the host:port of operator-configured endpoints (the catalog API, a webhook,
the Dagster webserver) to the allow-list: configuration may point at a private address, but a
redirect from there to anywhere else is checked like hospital input.
"""

from __future__ import annotations

import ssl
import threading
import typing
from collections.abc import Iterable, Mapping

import httpcore
import httpx

from price_pipeline.lib.fetch.http.budget import DeadlineExceeded, active_budget
from price_pipeline.lib.fetch.http.url_safety import (
    ALLOWED_SCHEMES,
    Resolver,
    UnsafeUrlError,
    request_target,
    resolve_checked,
)
from price_pipeline.settings import environ

DEFAULT_USER_AGENT = "price_pipeline/0.1 (+https://github.com/price-pipeline)"


def _capped(timeout: float | None) -> float | None:
    budget = active_budget()
    return timeout if budget is None else budget.cap(timeout)


def _timed_out(exc: Exception) -> typing.NoReturn:
    """Re-raise a socket timeout as :class:`DeadlineExceeded` when it was the budget that ran out."""
    budget = active_budget()
    if budget is not None and budget.expired():
        raise DeadlineExceeded(budget.deadline_message()) from exc
    raise exc


class GuardedStream(httpcore.NetworkStream):
    """A connection whose every operation is bounded by the active budget (and counted for its
    minimum-speed rule)."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._inner.read(max_bytes, _capped(timeout))
        except httpcore.ReadTimeout as exc:
            _timed_out(exc)
        budget = active_budget()
        if budget is not None:
            budget.received(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._inner.write(buffer, _capped(timeout))
        except httpcore.WriteTimeout as exc:
            _timed_out(exc)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            return GuardedStream(self._inner.start_tls(ssl_context, server_hostname, _capped(timeout)))
        except httpcore.ConnectTimeout as exc:
            _timed_out(exc)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Resolves, checks and connects to the same addresses; wraps each connection in a
    :class:`GuardedStream`."""

    def __init__(self, allowed_private_hosts: Iterable[str] = (), resolver: Resolver | None = None):
        self.allowed_private_hosts = tuple(allowed_private_hosts)
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _capped(timeout)
        # The name httpx hands over is already the ASCII (IDNA 2008) form it would have resolved.
        infos = resolve_checked(host, port, self.allowed_private_hosts, resolver=self.resolver)
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        last_error: Exception | None = None
        for address in addresses:
            try:
                # An IP literal: the operating system does not look anything up again.
                stream = super().connect_tcp(address, port, _capped(timeout), local_address, socket_options)
            except httpcore.ConnectTimeout as exc:
                last_error = exc
                budget = active_budget()
                if budget is not None and budget.expired():
                    _timed_out(exc)
            except httpcore.ConnectError as exc:
                last_error = exc
            else:
                return GuardedStream(stream)
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover
        raise httpcore.ConnectError("unix sockets are not used by price_pipeline")


_ssl_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
_ssl_contexts_lock = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """The verifying TLS context httpx would build for a client (``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` honoured, else certifi's bundle), built once per process and CA setting.

    Loading the CA bundle costs ~30 ms of CPU, and every client built it again: two per
    hospital's fetch (the probe client and the download client), ~60 ms of a small hospital's
    ~250 ms of library work. Sharing one context between clients and threads is safe: it holds
    the CA store and the verification settings, which nothing here changes after it is made.
    """
    env = environ()  # the variables httpx and ssl read themselves: the context is keyed on them
    key = (env.get("SSL_CERT_FILE") or None, env.get("SSL_CERT_DIR") or None)
    with _ssl_contexts_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            context = _ssl_contexts[key] = httpx.create_ssl_context(verify=True, trust_env=True)
        return context


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport with its connection pool rebuilt on a :class:`GuardedBackend`."""

    def __init__(
        self,
        *,
        allowed_private_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        limits: httpx.Limits | None = None,
    ):
        limits = limits or httpx.Limits(max_connections=32, max_keepalive_connections=32)
        # The TLS context honours SSL_CERT_FILE / SSL_CERT_DIR (shared_ssl_context); proxies are
        # a client setting, switched off in safe_client.
        super().__init__(verify=shared_ssl_context(), limits=limits, trust_env=True)
        if type(self._pool) is not httpcore.ConnectionPool:  # pragma: no cover - an httpx change
            raise RuntimeError("httpx.HTTPTransport no longer keeps an httpcore.ConnectionPool in _pool")
        ssl_context = self._pool._ssl_context
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed_private_hosts, resolver),
        )

    @property
    def backend(self) -> GuardedBackend:
        return self._pool._network_backend


def _refuse_bad_scheme(request: httpx.Request) -> None:
    """Request hook: runs for the first request and every redirect httpx follows."""
    if request.url.scheme not in ALLOWED_SCHEMES or not request.url.raw_host:
        raise UnsafeUrlError(f"scheme {request.url.scheme!r} or host not allowed in {request.url}")


def trusted_host_entries(urls: Iterable[str | None]) -> tuple[str, ...]:
    """``host:port`` allow-list entries of operator-configured endpoints."""
    out = []
    for url in urls:
        if not url:
            continue
        try:
            _scheme, host, port = request_target(url)
        except UnsafeUrlError:
            continue
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return tuple(out)


def safe_client(
    settings=None,
    *,
    trusted_urls: Iterable[str | None] = (),
    allowed_private_hosts: Iterable[str] | None = None,
    timeout: float | None = None,
    user_agent: str | None = None,
    headers: Mapping[str, str] | None = None,
    pool: int = 32,
    follow_redirects: bool = False,
    max_redirects: int = 5,
    resolver: Resolver | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` that can only reach public addresses (plus the allow-list), pinned.

    ``settings`` (a :class:`~price_pipeline.settings.Settings`) supplies the allow-list
    (``allowed_private_hosts``), the per-read timeout and the User-Agent; the keyword arguments
    override them. ``trusted_urls`` allow-lists the host:port of configured endpoints.
    ``resolver`` replaces :func:`socket.getaddrinfo` (tests). Redirects are not followed unless
    ``follow_redirects`` (each hop is still checked).
    """
    allowed = tuple(
        allowed_private_hosts
        if allowed_private_hosts is not None
        else (getattr(settings, "allowed_private_hosts", ()) or ())
    ) + trusted_host_entries(trusted_urls)
    seconds = timeout if timeout is not None else getattr(settings, "http_timeout_seconds", 60.0)
    agent = user_agent or getattr(settings, "user_agent", None) or DEFAULT_USER_AGENT
    transport = GuardedTransport(
        allowed_private_hosts=allowed,
        resolver=resolver,
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
    )
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(seconds, connect=min(30.0, seconds)),
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        headers={"User-Agent": agent, **(headers or {})},
        trust_env=False,
        event_hooks={"request": [_refuse_bad_scheme]},
    )
