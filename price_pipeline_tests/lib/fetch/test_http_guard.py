"""Issue 19 items 4-5 against a real local server: the host checked is the host connected to
(IDNA 2008 names, DNS rebinding), every redirect of every fetch is checked, and every fetch has
an overall deadline (trickled bodies and headers end on time with a classified error).

No real DNS: ``fake_dns`` replaces the resolver for the whole process with a table. The names
that matter differ between IDNA 2003 (Python's ``"idna"`` codec: ``straße.example`` ->
``strasse.example``) and IDNA 2008 (httpx: ``xn--strae-oqa.example``); the table sends one
spelling to a public address and the other to the local test server.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline.lib.discovery.catalog import CatalogError, fetch_catalog
from price_pipeline.lib.discovery.sources.catalog_api import CatalogApiSource
from price_pipeline.lib.discovery.sources.cms_hpt import fetch_cms_hpt
from price_pipeline.lib.fetch import change_detection as cd
from price_pipeline.lib.fetch.change_detection import conditional_check
from price_pipeline.lib.fetch.http import url_safety
from price_pipeline.lib.fetch.http.budget import DeadlineExceeded, TransferBudget, TransferTooSlow
from price_pipeline.lib.fetch.http.download import RetryPolicy, download
from price_pipeline.lib.fetch.http.fetch import make_client, request_small
from price_pipeline_tests.lib.discovery.test_sources import make_settings

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total_seconds=20)
SECRET = "internal-only.csv"
SECRET_PATH = f"/files/{SECRET}"
PUBLIC_ADDRESS = "93.184.216.34"  # globally routable; never connected to by these tests
IDNA_2008 = "xn--strae-oqa.example"  # what httpx sends for straße.example
IDNA_2003 = "strasse.example"  # what Python's idna codec (and socket.getaddrinfo) make of it
_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(scope="module")
def server():
    with DemoCatalogServer() as srv:
        srv.set_file(SECRET, b"hospital_name,secret\ninternal,1\n")
        yield srv


@pytest.fixture(autouse=True)
def _clean(server):
    server.clear_faults()
    server.clear_requests()
    yield
    server.clear_faults()


def secret_requests(server) -> list:
    return [r for r in server.requests if r.path == SECRET_PATH]


@pytest.fixture
def fake_dns(monkeypatch):
    """Install a DNS table for the whole process; returns it (tests add answers).

    A value is an address or a list of addresses given out one per lookup (the last repeats):
    ``["93.184.216.34", "127.0.0.1"]`` is a rebinding name. IP literals resolve as usual; any
    other name fails like an unknown domain. Resolvers bound as defaults before the test (an
    older ``check_url(resolver=socket.getaddrinfo)``) see the same table.
    """
    table: dict[str, str | list[str]] = {
        IDNA_2003: PUBLIC_ADDRESS,
        IDNA_2008: "127.0.0.1",
        "localhost": "127.0.0.1",
    }

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        name = name.encode("idna").decode() if not name.isascii() else name  # what the socket module does
        answer = table.get(name.lower().rstrip("."))
        if answer is None:
            try:
                return _REAL_GETADDRINFO(name, port, family, type, proto, socket.AI_NUMERICHOST)
            except socket.gaierror:
                raise socket.gaierror(socket.EAI_NONAME, f"fake DNS: no such name {name!r}") from None
        if isinstance(answer, list):  # one answer per lookup, the last one repeating
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        address = answer
        return _REAL_GETADDRINFO(address, port, family, type, proto, socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    defaults = url_safety.check_url.__kwdefaults__ or {}
    if defaults.get("resolver") is _REAL_GETADDRINFO:
        monkeypatch.setitem(defaults, "resolver", getaddrinfo)
    return table


def idna_url(server, path: str = SECRET_PATH, host: str = "straße.example") -> str:
    return f"http://{host}:{server.port}{path}"


# -- item 4: the host checked is the host connected to ------------------------------------------


def _download(url, settings, tmp_path):
    r = download(url, tmp_path / "dl", settings=settings, retry=FAST)
    return (not r.ok and r.reason == "unsafe_url"), r.error


def _request_small(url, settings, tmp_path):
    with make_client(settings) as client:
        r = request_small(url, settings=settings, client=client)
    return r.reason == "unsafe_url", r.error


def _conditional(url, settings, tmp_path):
    return conditional_check(url, '"etag"', settings=settings) == "unknown", None


def _probe(url, settings, tmp_path):
    state = {"url": url, "hospital_key": "h1", "sha256": "0" * 64, "etag": '"e"', "size": 10}
    with make_client(settings) as client:
        out = cd.probe(state, settings=settings, client=client)
    return out.verdict in ("failed", "unknown"), out.error


def _cms_hpt(url, settings, tmp_path):
    with make_client(settings) as client:
        out = fetch_cms_hpt(url.rsplit("/files/", 1)[0] + "/sites/x", settings=settings, client=client)
    return out.status in ("unsafe", "error"), out.error


FETCHERS = {
    "download": _download,
    "request_small": _request_small,
    "conditional_check": _conditional,
    "change_probe": _probe,
    "cms_hpt": _cms_hpt,
}


@pytest.mark.parametrize("fetch", FETCHERS.values(), ids=FETCHERS.keys())
def test_idna_2008_name_of_a_private_address_is_refused(fetch, server, fake_dns, tmp_path):
    """straße.example: IDNA 2003 spelling public, IDNA 2008 spelling (what httpx connects to) private."""
    settings = make_settings(tmp_path, server, allowed_private_hosts=())
    refused, error = fetch(idna_url(server), settings, tmp_path)
    assert refused, error
    assert server.requests == []  # nothing reached the internal server
    if error is not None:
        assert IDNA_2008 in error and "127.0.0.1" in error, error


@pytest.mark.parametrize("fetch", FETCHERS.values(), ids=FETCHERS.keys())
def test_redirect_to_an_idna_name_of_a_private_address_is_refused(fetch, server, fake_dns, tmp_path):
    """The first hop is allowed (the demo server is allow-listed by host:port); the redirect to
    straße.example must be checked under the name httpx would connect to."""
    settings = make_settings(tmp_path, server)
    server.add_fault("/files/hop.csv", Fault.redirect(idna_url(server), times=None))
    server.set_static("/sites/x/cms-hpt.txt", b"", status=200)
    server.add_fault("/sites/x/cms-hpt.txt", Fault.redirect(idna_url(server), times=None))
    server.add_fault("/cms-hpt.txt", Fault.redirect(idna_url(server), times=None))
    refused, error = fetch(server.url + "/files/hop.csv", settings, tmp_path)
    assert refused, error
    assert secret_requests(server) == []


def test_allow_list_names_the_host_httpx_connects_to(server, fake_dns, tmp_path):
    url = idna_url(server)
    for entry in (f"straße.example:{server.port}", f"{IDNA_2008}:{server.port}"):
        settings = make_settings(tmp_path, server, allowed_private_hosts=(entry,))
        r = download(url, tmp_path / "dl", settings=settings, retry=FAST)
        assert r.ok and r.path.read_bytes().startswith(b"hospital_name,secret"), (entry, r.error)
    # The IDNA 2003 spelling is another domain: allowing it allows nothing here.
    settings = make_settings(tmp_path, server, allowed_private_hosts=(f"{IDNA_2003}:{server.port}",))
    r = download(url, tmp_path / "dl2", settings=settings, retry=FAST)
    assert not r.ok and r.reason == "unsafe_url"


def test_dns_rebinding_cannot_reach_a_private_address(server, fake_dns, tmp_path):
    """The name answers public to the first lookup and private to every later one: whatever the
    client checked ahead of time, it must connect only to an address it checked."""
    fake_dns["rebind.example"] = [PUBLIC_ADDRESS, "127.0.0.1"]
    settings = make_settings(tmp_path, server, allowed_private_hosts=())
    r = download(idna_url(server, host="rebind.example"), tmp_path / "dl", settings=settings, retry=FAST)
    assert not r.ok and r.reason == "unsafe_url", r.error
    assert "127.0.0.1" in r.error
    assert server.requests == []


def test_catalog_redirects_are_checked_on_every_hop(server, fake_dns):
    """The catalog URL is configuration (trusted even on a private address), its redirects are not."""
    for target in (f"http://localhost:{server.port}{SECRET_PATH}", idna_url(server)):
        server.clear_faults()
        server.add_fault("/api/v1/hospitals", Fault.redirect(target, times=None))
        with pytest.raises(CatalogError, match="non-public|not allowed|unsafe"):
            fetch_catalog(server.catalog_url, sleep=lambda s: None, max_attempts=2)
        with pytest.raises(CatalogError, match="non-public|not allowed|unsafe"):
            CatalogApiSource(server.catalog_url, sleep=lambda s: None, base_delay=0).fetch()
    assert secret_requests(server) == []
    server.clear_faults()
    assert len(fetch_catalog(server.catalog_url)) > 0  # the configured catalog itself still works


def test_every_http_client_comes_from_the_safe_factory():
    """No module builds its own httpx client or calls httpx's module-level request helpers: they
    would bypass address pinning, hop checks and deadlines."""
    root = Path(__file__).resolve().parents[3] / "price_pipeline"
    pattern = re.compile(r"httpx\.(Client|AsyncClient|HTTPTransport|get|post|put|head|request|stream)\(")
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if path.name != "client.py" or path.parent.name != "http"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("#", ">>>", "..."))
    ]
    assert offenders == []


def test_clients_share_one_tls_context_per_ca_setting(monkeypatch):
    """Loading the CA bundle once per process (not once per client, two per hospital's fetch):
    clients share the verifying context, and a different SSL_CERT_FILE still gets its own."""
    import certifi

    from price_pipeline.lib.fetch.http import client as http_client

    monkeypatch.setattr(http_client, "_ssl_contexts", {})
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    first, second = http_client.safe_client(), http_client.safe_client()
    try:
        context = first._transport._pool._ssl_context
        assert context is second._transport._pool._ssl_context
        assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    finally:
        first.close()
        second.close()
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    other = http_client.shared_ssl_context()
    assert other is not context and other is http_client.shared_ssl_context()


# -- item 5: an overall deadline on every fetch -------------------------------------------------


def deadline_settings(tmp_path, server, **kw):
    values = dict(
        http_timeout_seconds=2.0,  # each byte arrives well inside the per-read timeout
        download_deadline_seconds=1.5,
        download_min_bytes_per_second=0,
        request_deadline_seconds=1.0,
    )
    values.update(kw)
    return make_settings(tmp_path, server, **values)


@pytest.mark.parametrize("slow_headers", [False, True], ids=["body", "headers"])
def test_trickled_download_ends_at_the_deadline(server, tmp_path, slow_headers):
    settings = deadline_settings(tmp_path, server)
    server.add_fault("/files/trickle.csv", Fault.trickle(0.25, slow_headers=slow_headers, times=None))
    started = time.monotonic()
    r = download(server.url + "/files/trickle.csv", tmp_path / "dl", settings=settings, retry=FAST)
    elapsed = time.monotonic() - started
    assert not r.ok and r.reason == "deadline_exceeded" and r.error_kind == "permanent", r
    assert "deadline" in r.error and r.attempts == 1
    assert elapsed < 1.5 + 1.0, elapsed
    assert list((tmp_path / "dl").iterdir()) == []


def test_download_below_the_minimum_speed_ends_after_one_window(server, tmp_path):
    settings = deadline_settings(
        tmp_path,
        server,
        http_timeout_seconds=1.0,
        download_deadline_seconds=60,
        download_min_bytes_per_second=1024,
    )
    server.add_fault("/files/trickle.csv", Fault.trickle(0.1, times=None))
    started = time.monotonic()
    r = download(server.url + "/files/trickle.csv", tmp_path / "dl", settings=settings, retry=FAST)
    elapsed = time.monotonic() - started
    assert not r.ok and r.reason == "too_slow" and r.error_kind == "permanent", r
    assert elapsed < 3.0, elapsed


def test_a_slow_but_steady_download_within_the_deadline_succeeds(server, tmp_path):
    settings = deadline_settings(tmp_path, server, download_deadline_seconds=10)
    server.add_fault("/files/trickle.csv", Fault.trickle(0.01, body=b"a,b\n" * 20, times=None))
    r = download(server.url + "/files/trickle.csv", tmp_path / "dl", settings=settings, retry=FAST)
    assert r.ok and r.size == 80, r.error


@pytest.mark.parametrize("slow_headers", [False, True], ids=["body", "headers"])
def test_probes_and_cms_hpt_fetches_have_a_deadline(server, tmp_path, slow_headers):
    settings = deadline_settings(tmp_path, server)
    for path in ("/files/trickle.csv", "/sites/x/cms-hpt.txt", "/cms-hpt.txt"):
        server.add_fault(path, Fault.trickle(0.25, slow_headers=slow_headers, times=None))
    url = server.url + "/files/trickle.csv"
    state = {"url": url, "hospital_key": "h1", "sha256": "0" * 64, "size": 4096, "range_fingerprint": "f"}
    with make_client(settings) as client:
        started = time.monotonic()
        small = request_small(url, settings=settings, client=client)
        assert small.reason == "deadline_exceeded" and "deadline" in small.error, small
        assert time.monotonic() - started < 2.5
        started = time.monotonic()
        probed = cd.probe(state, settings=settings, client=client)  # HEAD then range requests
        assert probed.verdict in ("unknown", "failed") and time.monotonic() - started < 5
        started = time.monotonic()
        hpt = fetch_cms_hpt(server.url + "/sites/x", settings=settings, client=client)
        assert hpt.status == "error" and "deadline" in hpt.error, hpt
        assert time.monotonic() - started < 4.5
    started = time.monotonic()
    assert conditional_check(url, '"etag"', settings=settings) == "unknown"
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("slow_headers", [False, True], ids=["body", "headers"])
def test_catalog_pages_and_sessions_have_a_deadline(server, tmp_path, slow_headers):
    settings = deadline_settings(tmp_path, server)
    server.add_fault("/api/v1/hospitals", Fault.trickle(0.25, slow_headers=slow_headers, times=None))
    started = time.monotonic()
    with pytest.raises(CatalogError, match="deadline"):
        fetch_catalog(server.catalog_url, settings=settings, max_attempts=2, sleep=lambda s: None)
    assert time.monotonic() - started < 2 * 1.0 + 1.5
    server.clear_faults()
    server.add_fault("/api/v1/session", Fault.trickle(0.25, slow_headers=slow_headers, times=None))
    source = CatalogApiSource.from_settings(settings, sleep=lambda s: None)
    source.session_url = server.session_url
    started = time.monotonic()
    with pytest.raises(CatalogError, match="session"):
        source.fetch()
    assert time.monotonic() - started < 2.5


def test_budget_spans_the_hops_of_an_attempt_and_skips_time_between_them():
    now = [0.0]
    budget = TransferBudget(10, clock=lambda: now[0], what="download attempt")
    with budget.active():
        now[0] += 4  # first hop: a redirect
    now[0] += 100  # waiting for a per-host slot: not network time
    with budget.active():
        assert budget.remaining() == pytest.approx(6)
        assert budget.cap(60) == pytest.approx(6) and budget.cap(None) == pytest.approx(6)
        now[0] += 6
        with pytest.raises(DeadlineExceeded, match="download attempt deadline of 10 s"):
            budget.check()
    with pytest.raises(DeadlineExceeded), budget.active():
        pass
    # an inner budget never outlives the outer one
    outer = TransferBudget(5, clock=lambda: now[0])
    inner = TransferBudget(60, clock=lambda: now[0])
    with outer.active(), inner.active():
        assert inner.remaining() == pytest.approx(5)


def test_minimum_speed_is_measured_over_whole_windows():
    now = [0.0]
    budget = TransferBudget(None, min_bytes_per_second=100, window_seconds=2, clock=lambda: now[0])
    with budget.active():
        now[0] += 1
        budget.received(150)  # the window is not over yet: no verdict
        now[0] += 1
        budget.received(60)  # 210 bytes in 2 s: fast enough, a new window starts
        now[0] += 2.5
        with pytest.raises(TransferTooSlow, match="10 bytes in 2.5 s"):
            budget.received(10)
