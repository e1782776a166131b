"""SSRF guard: only fetch http(s) URLs whose host resolves exclusively to public addresses.

Hospital websites and catalog entries are untrusted input. Without this check a catalog
entry such as ``http://169.254.169.254/latest/meta-data/`` or ``http://localhost:5432/`` would
make the pipeline probe cloud metadata or internal services. :func:`check_url` is called on
the first URL *and on every redirect hop*.

Known limit: the addresses are resolved here and again by the HTTP client (DNS rebinding
window). Pinning the resolved address in the transport would close it; the egress proxy or
network policy of a production deployment is the second line of defence.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

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


def _allowed(host: str, port: int, allowed_private_hosts: Iterable[str]) -> bool:
    """``host`` or ``host:port`` is explicitly allow-listed (case-insensitive, IPv6 in brackets or not)."""
    candidates = {host, f"{host}:{port}"}
    if ":" in host:  # IPv6 literal: accept "[::1]:8765" as well as "::1"
        candidates |= {f"[{host}]", f"[{host}]:{port}"}
    return any(entry.strip().lower() in candidates for entry in allowed_private_hosts)


def check_url(
    url: str,
    allowed_private_hosts: Iterable[str] = (),
    *,
    resolver: Resolver = socket.getaddrinfo,
) -> None:
    """Raise :class:`UnsafeUrlError` unless ``url`` is safe to fetch.

    Safe means: scheme http or https, a host, and every address it resolves to is public
    (:func:`is_public_address`) -- unless ``host`` or ``host:port`` is in
    ``allowed_private_hosts`` (the demo server and tests allow ``127.0.0.1``). ``resolver``
    defaults to :func:`socket.getaddrinfo`; tests inject a fake one. A host that does not
    resolve is unsafe too: failing closed beats guessing.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"malformed URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(f"scheme {scheme or '(none)'!r} not allowed in {url!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrlError(f"no host in {url!r}")
    port = port or _DEFAULT_PORTS[scheme]
    if _allowed(host, port, allowed_private_hosts):
        return
    try:
        infos = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrlError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = {info[4][0] for info in infos}
    if not addresses:
        raise UnsafeUrlError(f"{host!r} resolves to no address")
    for address in sorted(addresses):
        try:
            public = is_public_address(address)
        except ValueError as exc:
            raise UnsafeUrlError(f"{host!r} resolved to an unparseable address {address!r}") from exc
        if not public:
            raise UnsafeUrlError(f"{host!r} resolves to non-public address {address} ({url!r})")
