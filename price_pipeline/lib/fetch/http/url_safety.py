"""SSRF guard: only fetch http(s) URLs whose host resolves exclusively to public addresses.

Hospital websites and catalog entries are untrusted input. Without this check a catalog
entry such as ``http://169.254.169.254/latest/meta-data/`` or ``http://localhost:5432/`` would
make the pipeline probe cloud metadata or internal services.

The host checked is the exact ASCII host the HTTP client (httpx) connects to: internationalised
names are encoded the way httpx encodes them (IDNA 2008 with the ``idna`` package), never with
Python's ``"idna"`` codec (IDNA 2003), which spells ``straße.example`` as ``strasse.example`` --
a different domain that its owner can point elsewhere. The address policy itself
(:func:`resolve_checked`) is applied when a connection is opened, to the addresses the connection then
uses (:mod:`price_pipeline.lib.fetch.http.client` pins them), so neither a spelling difference nor a
second DNS answer (DNS rebinding) can lead somewhere unchecked. :func:`check_url` is the same
policy applied ahead of a request, for a clean ``unsafe_url`` verdict before anything is sent.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
from collections.abc import Callable, Iterable

import httpx

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# NAT64 well-known prefix: 64:ff9b::a.b.c.d reaches IPv4 a.b.c.d through a translator.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Not "private" in Python < 3.12's tables but never legitimately a hospital web server.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b:1::/48", "2001::/23", "fc00::/7")
)


class UnsafeUrlError(ValueError):
    """The URL must not be fetched (bad scheme, no host, or a non-public address)."""


Resolver = Callable[..., list]


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when ``address`` is a globally routable unicast address.

    Blocks loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254 cloud
    metadata), multicast, reserved, unspecified, CGNAT and benchmarking ranges, and applies the
    same rules to IPv4 embedded in IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, NAT64, 6to4, Teredo).
    """
    if isinstance(address, str):
        # getaddrinfo returns scoped IPv6 link-local addresses as "fe80::1%eth0".
        address = ipaddress.ip_address(address.split("%", 1)[0])
    ip = address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
        if ip.ipv4_mapped is not None:
            return True  # fully described by the embedded IPv4 address
    if (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        return False
    return not any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version)


def ascii_host(host: str) -> str:
    """``host`` spelled the way httpx sends it to the resolver: lower case, IDNA 2008 (``idna``
    package, as httpx does), no IPv6 brackets, no trailing dot. Unencodable names come back
    lower-cased as given (they then match nothing and resolve to nothing)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" not in host and not host.isascii():
        with contextlib.suppress(httpx.InvalidURL, UnicodeError, ValueError):
            host = httpx.URL(f"http://{host}/").raw_host.decode("ascii")
    return host.rstrip(".")


@functools.lru_cache(maxsize=64)
def _allow_entries(entries: tuple[str, ...]) -> frozenset[tuple[str, int | None]]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 entry -> ``(ascii host, port|None)``."""
    out = set()
    for raw in entries:
        entry = raw.strip().lower()
        port: int | None = None
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif entry.count(":") > 1:
            host = entry  # bare IPv6 literal
        else:
            host, _, rest = entry.partition(":")
            if rest.isdigit():
                port = int(rest)
            elif rest:
                continue  # "host:junk" allows nothing
        if host:
            out.add((ascii_host(host), port))
    return frozenset(out)


def host_allowed(host: str, port: int, allowed_private_hosts: Iterable[str]) -> bool:
    """``host`` or ``host:port`` is explicitly allow-listed. Compared in the form httpx connects to,
    so ``straße.example`` in the list allows ``xn--strae-oqa.example`` and nothing else."""
    entries = _allow_entries(tuple(allowed_private_hosts))
    if not entries:
        return False
    host = ascii_host(host)
    return (host, None) in entries or (host, port) in entries


def request_target(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url`` exactly as httpx will connect (IDNA 2008 ASCII host).

    Raises :class:`UnsafeUrlError` for a malformed URL, a scheme other than http(s) or no host.
    Parsing with httpx itself leaves no room for a parser difference between check and request.
    """
    try:
        parsed = httpx.URL(url)
        scheme = parsed.scheme.lower()
        host = parsed.raw_host.decode("ascii")
        port = parsed.port
    except (httpx.InvalidURL, TypeError, ValueError, UnicodeError) as exc:
        raise UnsafeUrlError(f"malformed URL {url!r}: {exc}") from exc
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(f"scheme {scheme or '(none)'!r} not allowed in {url!r}")
    if not host:
        raise UnsafeUrlError(f"no host in {url!r}")
    if port is not None and not 0 < port < 65536:
        raise UnsafeUrlError(f"port {port} out of range in {url!r}")
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def resolve_checked(
    host: str,
    port: int,
    allowed_private_hosts: Iterable[str] = (),
    *,
    resolver: Resolver | None = None,
) -> list[tuple]:
    """Resolve ``host`` (the ASCII name the client connects to) and return its ``getaddrinfo``
    entries, raising :class:`UnsafeUrlError` unless every address is public
    (:func:`is_public_address`) or the host is allow-listed. A host that does not resolve is
    unsafe too: failing closed beats guessing. ``resolver`` defaults to :func:`socket.getaddrinfo`
    (looked up at call time, so tests can replace it)."""
    resolve = resolver or socket.getaddrinfo
    try:
        infos = resolve(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(f"cannot resolve {host!r}: {exc}") from exc
    infos = [info for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not infos:
        raise UnsafeUrlError(f"{host!r} resolves to no address")
    if host_allowed(host, port, allowed_private_hosts):
        return infos
    for address in sorted({info[4][0] for info in infos}):
        try:
            public = is_public_address(address)
        except ValueError as exc:
            raise UnsafeUrlError(f"{host!r} resolved to an unparseable address {address!r}") from exc
        if not public:
            raise UnsafeUrlError(f"{host!r} resolves to non-public address {address}")
    return infos


def check_url(
    url: str,
    allowed_private_hosts: Iterable[str] = (),
    *,
    resolver: Resolver | None = None,
) -> None:
    """Raise :class:`UnsafeUrlError` unless ``url`` is safe to fetch.

    Safe means: scheme http or https, a host, and every address the host httpx would connect to
    resolves to is public (:func:`resolve_checked`) -- unless ``host`` or ``host:port`` is in
    ``allowed_private_hosts`` (the demo server and tests allow ``127.0.0.1``). ``resolver``
    defaults to :func:`socket.getaddrinfo`; tests inject a fake one.

    A check ahead of the request cannot stop a second, different DNS answer at connect time:
    clients from :func:`price_pipeline.lib.fetch.http.client.safe_client` apply the same policy to the
    addresses they actually connect to.
    """
    _scheme, host, port = request_target(url)
    if host_allowed(host, port, allowed_private_hosts):
        return
    try:
        resolve_checked(host, port, allowed_private_hosts, resolver=resolver)
    except UnsafeUrlError as exc:
        raise UnsafeUrlError(f"{exc} ({url!r})") from exc
