"""SSRF guard: schemes, allow-list, and every kind of non-public address (IPv4, IPv6, embedded IPv4)."""

from __future__ import annotations

import socket

import pytest

from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError, check_url, is_public_address


def fake_resolver(*addresses: str):
    """A getaddrinfo stand-in returning fixed addresses (no DNS in tests)."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        out = []
        for a in addresses:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if fam == socket.AF_INET6 else (a, port)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    return resolve


BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "100.64.0.1",
    "192.0.2.10",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1",
    "2001:db8::1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82a::200e",
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked(address):
    assert not is_public_address(address)
    with pytest.raises(UnsafeUrlError):
        check_url("https://hospital.example.org/mrf.csv", resolver=fake_resolver(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert is_public_address(address)
    check_url("https://hospital.example.org/mrf.csv", resolver=fake_resolver(address))


def test_any_private_address_among_several_blocks():
    with pytest.raises(UnsafeUrlError, match="10.0.0.7"):
        check_url("https://cdn.example.org/x.json", resolver=fake_resolver("8.8.8.8", "10.0.0.7"))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/x.csv",
        "file:///etc/passwd",
        "gopher://example.org/",
        "javascript:alert(1)",
        "example.org/x.csv",
        "http:///x.csv",
        "http://example.org:99999/x",
        "http://[::1/x",
    ],
)
def test_bad_schemes_and_malformed_urls(url):
    with pytest.raises(UnsafeUrlError):
        check_url(url, resolver=fake_resolver("8.8.8.8"))


def test_ip_literals_and_localhost_are_resolved_and_blocked():
    for url in (
        "http://127.0.0.1:8765/x",
        "http://[::1]/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/",
        "http://0x7f000001/x",
        "http://2130706433/x",
        "http://[::ffff:127.0.0.1]/x",
    ):
        with pytest.raises(UnsafeUrlError):
            check_url(url)


def test_unresolvable_host_is_unsafe():
    def failing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeUrlError, match="cannot resolve"):
        check_url("https://no-such-host.invalid/x.csv", resolver=failing)


def test_allow_list_by_host_or_host_port():
    check_url("http://127.0.0.1:8765/x", ("127.0.0.1",))
    check_url("http://127.0.0.1:8765/x", ("127.0.0.1:8765",))
    check_url("http://LOCALHOST:8765/x", ("localhost:8765",))
    check_url("http://[::1]:8765/x", ("[::1]:8765",))
    check_url("http://minio/x", ("minio:80",), resolver=fake_resolver("10.0.0.5"))
    with pytest.raises(UnsafeUrlError):
        check_url("http://127.0.0.1:9999/x", ("127.0.0.1:8765",))
    with pytest.raises(UnsafeUrlError):
        check_url("ftp://127.0.0.1/x", ("127.0.0.1",))
