"""download() against the real demo server on 127.0.0.1, with injected faults and millisecond retry delays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from price_pipeline.demo import data_dir, load_catalog
from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline.lib.fetch.change_detection import conditional_check
from price_pipeline.lib.fetch.http.download import (
    RetryPolicy,
    download,
    guess_extension,
    looks_like_html,
    parse_retry_after,
)
from price_pipeline.settings import Settings

FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, max_total_seconds=30)
BY_EXPECT = {h["demo"]["expect"]: h for h in load_catalog()}
TALL_NAME = next(h["files"][0]["name"] for h in load_catalog() if h["id"] == "demo-007")  # ~330 kB
BROKEN_NAME = BY_EXPECT["html_instead_of_data"]["files"][0]["name"]


@pytest.fixture
def server():
    with DemoCatalogServer() as srv:
        yield srv


def make_settings(tmp_path: Path, server: DemoCatalogServer, **overrides) -> Settings:
    values = dict(
        data_dir=tmp_path,
        lake_url=str(tmp_path / "lake"),
        registry_url="sqlite://",
        warehouse_path=tmp_path / "w.duckdb",
        catalog_url=server.catalog_url,
        allowed_private_hosts=(f"127.0.0.1:{server.port}",),
        http_timeout_seconds=5,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path, server):
    return make_settings(tmp_path, server)


class Sleeps(list):
    """Records requested waits instead of sleeping (retry timing is asserted, not endured)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def run(server, settings, tmp_path, name=TALL_NAME, **kw):
    kw.setdefault("retry", FAST)
    return download(server.file_url(name), tmp_path / "dl", settings=settings, **kw)


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "dl").iterdir())


def test_success_path_sha256_and_metadata(server, settings, tmp_path):
    expected = (data_dir() / "files" / TALL_NAME).read_bytes()
    r = run(server, settings, tmp_path)
    assert r.ok and r.error is None and r.reason is None and r.attempts == 1
    assert r.sha256 == hashlib.sha256(expected).hexdigest()
    assert r.path == tmp_path / "dl" / f"{r.sha256}.csv" and r.path.read_bytes() == expected
    assert r.size == len(expected) and r.extension == "csv" and r.status_code == 200
    assert r.etag and r.last_modified and r.content_type.startswith("text/csv")
    assert r.final_url == r.url
    assert leftovers(tmp_path) == [r.path.name]


def test_every_demo_file_gets_the_right_verdict(server, settings, tmp_path):
    for hospital in load_catalog():
        name = hospital["files"][0]["name"]
        r = run(server, settings, tmp_path, name)
        if hospital["demo"]["expect"] == "ok":
            assert r.ok, (name, r.error)
            assert r.extension == name.rsplit(".", 1)[-1]
        else:
            assert not r.ok and r.reason == hospital["demo"]["expect"]


def test_500_then_success(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.http_status(500, times=1))
    sleeps = Sleeps()
    r = run(server, settings, tmp_path, sleep=sleeps)
    assert r.ok and r.attempts == 2 and len(sleeps) == 1


def test_persistent_503_is_a_transient_failure_without_leftovers(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.http_status(503, times=None))
    sleeps = Sleeps()
    r = run(server, settings, tmp_path, sleep=sleeps)
    assert not r.ok and r.error_kind == "transient" and r.reason == "http_status" and r.status_code == 503
    assert r.attempts == FAST.max_attempts and len(sleeps) == FAST.max_attempts - 1
    assert sleeps == sorted(sleeps)  # exponential backoff (capped)
    assert r.path is None and leftovers(tmp_path) == []


def test_429_retry_after_is_honoured(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.rate_limited(3, times=1))
    sleeps = Sleeps()
    r = run(server, settings, tmp_path, sleep=sleeps)
    assert r.ok and r.attempts == 2 and sleeps == [3.0]


def test_retry_after_beyond_the_policy_gives_up(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.rate_limited(3600, times=1))
    sleeps = Sleeps()
    r = run(server, settings, tmp_path, sleep=sleeps)
    assert not r.ok and r.error_kind == "transient" and r.status_code == 429 and sleeps == []


def test_time_budget_bounds_retries(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.http_status(502, times=None))
    policy = RetryPolicy(max_attempts=50, base_delay=10, max_delay=10, jitter=0, max_total_seconds=25)
    now = [0.0]
    sleeps = Sleeps()

    def fake_sleep(s):
        sleeps(s)
        now[0] += s

    r = run(server, settings, tmp_path, retry=policy, sleep=fake_sleep, clock=lambda: now[0])
    assert not r.ok and "time budget" in r.error and r.attempts == 3 and sleeps == [10, 10]


def test_truncated_body_is_resumed_with_range(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.truncate(100_000, times=1))
    r = run(server, settings, tmp_path, sleep=Sleeps())
    expected = (data_dir() / "files" / TALL_NAME).read_bytes()
    assert r.ok and r.resumed and r.attempts == 2 and r.status_code == 206
    assert r.sha256 == hashlib.sha256(expected).hexdigest() and r.path.read_bytes() == expected
    ranged = [q for q in server.requests if q.headers.get("Range")]
    assert len(ranged) == 1 and ranged[0].headers["If-Range"] == r.etag
    start = int(ranged[0].headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 100_000


def test_connection_reset_mid_body_recovers(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.reset(50_000, times=1))
    r = run(server, settings, tmp_path, sleep=Sleeps())
    expected = (data_dir() / "files" / TALL_NAME).read_bytes()
    assert r.ok and r.attempts == 2 and r.sha256 == hashlib.sha256(expected).hexdigest()


def test_server_ignoring_range_makes_the_download_restart_from_zero(server, settings, tmp_path):
    url = server.file_url(TALL_NAME)
    # Faults apply in order: first response truncated, later ones ignore Range (200, full body).
    server.add_fault(url, Fault.truncate(80_000, times=1))
    server.add_fault(url, Fault.ignore_range(times=None))
    r = run(server, settings, tmp_path, sleep=Sleeps())
    expected = (data_dir() / "files" / TALL_NAME).read_bytes()
    assert r.ok and not r.resumed and r.status_code == 200 and r.attempts == 2
    assert r.path.read_bytes() == expected and r.sha256 == hashlib.sha256(expected).hexdigest()
    assert [bool(q.headers.get("Range")) for q in server.requests] == [False, True]


def test_file_changed_between_attempts_never_yields_a_spliced_file(server, settings, tmp_path):
    """If-Range with the old ETag makes the server send the whole new file (200), not a tail of it."""
    new_bytes = b"hospital_name,last_updated_on\n" + b"new,2025-07-01\n" * 20_000
    server.add_fault(server.file_url(TALL_NAME), Fault.truncate(100_000, times=1))
    r = run(server, settings, tmp_path, sleep=lambda s: server.set_file(TALL_NAME, new_bytes))
    assert any(q.headers.get("Range") for q in server.requests)  # a resume was attempted ...
    assert r.ok and not r.resumed and r.status_code == 200  # ... and refused by If-Range
    assert r.path.read_bytes() == new_bytes and r.sha256 == hashlib.sha256(new_bytes).hexdigest()


def test_persistent_truncation_is_a_failure_never_a_good_file(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.truncate(10_000, times=None))
    r = run(server, settings, tmp_path, sleep=Sleeps())
    assert not r.ok and r.reason == "truncated" and r.error_kind == "transient"
    assert r.path is None and r.sha256 is None and leftovers(tmp_path) == []


def test_slow_body_times_out_then_succeeds(server, tmp_path):
    settings = make_settings(tmp_path, server, http_timeout_seconds=0.2)
    server.add_fault(server.file_url(TALL_NAME), Fault.slow(0.6, times=1))
    r = run(server, settings, tmp_path, sleep=Sleeps())
    assert r.ok and r.attempts == 2


def test_redirect_is_followed_and_rechecked(server, settings, tmp_path):
    server.add_fault("/files/old-location.csv", Fault.redirect(f"/files/{TALL_NAME}"))
    r = download(server.url + "/files/old-location.csv", tmp_path / "dl", settings=settings, retry=FAST)
    assert r.ok and r.final_url == server.file_url(TALL_NAME) and r.redirects == [server.file_url(TALL_NAME)]


def test_redirect_loop_fails_permanently(server, settings, tmp_path):
    server.add_fault("/files/a.csv", Fault.redirect("/files/b.csv"))
    server.add_fault("/files/b.csv", Fault.redirect("/files/a.csv"))
    r = download(server.url + "/files/a.csv", tmp_path / "dl", settings=settings, retry=FAST, sleep=Sleeps())
    assert not r.ok and r.reason == "too_many_redirects" and r.error_kind == "permanent" and r.attempts == 1
    assert len([q for q in server.requests if q.path in ("/files/a.csv", "/files/b.csv")]) == 6


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.csv",
        "http://127.0.0.1:1/x.csv",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_private_address_is_blocked(server, settings, tmp_path, target):
    server.add_fault("/files/evil.csv", Fault.redirect(target))
    r = download(server.url + "/files/evil.csv", tmp_path / "dl", settings=settings, retry=FAST)
    assert not r.ok and r.reason == "unsafe_url" and r.error_kind == "permanent" and r.attempts == 1


def test_start_url_must_be_allowed(server, tmp_path):
    settings = make_settings(tmp_path, server, allowed_private_hosts=())
    r = download(server.file_url(TALL_NAME), tmp_path / "dl", settings=settings, retry=FAST)
    assert not r.ok and r.reason == "unsafe_url"
    assert server.requests == []


def test_html_served_as_csv_fails_but_keeps_evidence(server, settings, tmp_path):
    r = run(server, settings, tmp_path, BROKEN_NAME)
    assert not r.ok and r.reason == "html_instead_of_data" and r.error_kind == "permanent"
    assert (
        r.extension == "html"
        and r.path.exists()
        and r.path.read_bytes() == (data_dir() / "files" / BROKEN_NAME).read_bytes()
    )
    assert r.sha256 == hashlib.sha256(r.path.read_bytes()).hexdigest()


def test_html_error_page_fault_on_a_good_url(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.html_page())
    r = run(server, settings, tmp_path)
    assert not r.ok and r.reason == "html_instead_of_data" and r.content_type.startswith("text/html")


def test_wrong_content_type_does_not_matter_content_decides(server, settings, tmp_path):
    server.add_fault(server.file_url(TALL_NAME), Fault.wrong_content_type("text/html"))
    r = run(server, settings, tmp_path)
    assert r.ok and r.extension == "csv" and r.content_type == "text/html"


def test_over_max_size_by_content_length(server, tmp_path):
    settings = make_settings(tmp_path, server, max_download_bytes=1000)
    r = run(server, settings, tmp_path)
    assert not r.ok and r.reason == "too_large" and r.error_kind == "permanent" and r.attempts == 1
    assert leftovers(tmp_path) == []


def test_over_max_size_while_streaming_without_content_length(tmp_path):
    """A body without Content-Length is cut off by the byte counter (transport stub: no network at all)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"a,b\n" * 1000] * 10), headers={"Content-Type": "text/csv"})

    settings = Settings(
        data_dir=tmp_path,
        lake_url=str(tmp_path),
        registry_url="sqlite://",
        warehouse_path=tmp_path / "w",
        catalog_url="x",
        allowed_private_hosts=("127.0.0.1",),
        max_download_bytes=10_000,
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        r = download("http://127.0.0.1/x.csv", tmp_path / "dl", settings=settings, client=client, retry=FAST)
    assert not r.ok and r.reason == "too_large" and leftovers(tmp_path) == []


def test_404_is_permanent(server, settings, tmp_path):
    r = run(server, settings, tmp_path, "missing.csv", sleep=Sleeps())
    assert not r.ok and r.status_code == 404 and r.error_kind == "permanent" and r.attempts == 1


def test_empty_body_is_a_failure(server, settings, tmp_path):
    server.set_file("empty.csv", b"")
    r = run(server, settings, tmp_path, "empty.csv")
    assert not r.ok and r.reason == "empty"


def test_conditional_download_and_change_check(server, settings, tmp_path):
    first = run(server, settings, tmp_path)
    again = run(server, settings, tmp_path, expected_etag=first.etag)
    assert again.ok and again.not_modified and again.status_code == 304 and again.path is None
    url = server.file_url(TALL_NAME)
    assert conditional_check(url, first.etag, settings=settings) == "unchanged"
    assert conditional_check(url, None, first.last_modified, settings=settings) == "unchanged"
    assert conditional_check(url, None, None, settings=settings) == "unknown"
    server.set_file(TALL_NAME, b"hospital_name,changed\n")
    assert conditional_check(url, first.etag, settings=settings) == "changed"
    changed = run(server, settings, tmp_path, expected_etag=first.etag)
    assert changed.ok and not changed.not_modified and changed.sha256 != first.sha256
    assert conditional_check(server.url + "/files/missing.csv", first.etag, settings=settings) == "unknown"
    unsafe = make_settings(tmp_path, server, allowed_private_hosts=())
    assert conditional_check(url, first.etag, settings=unsafe) == "unknown"


def test_passed_in_client_is_used_and_not_closed(server, settings, tmp_path):
    with httpx.Client(timeout=5, trust_env=False, follow_redirects=True) as client:
        server.add_fault("/files/hop.csv", Fault.redirect("http://10.1.2.3/x.csv"))
        r = download(
            server.url + "/files/hop.csv", tmp_path / "dl", settings=settings, client=client, retry=FAST
        )
        assert r.reason == "unsafe_url"  # the client's own follow_redirects is bypassed
        assert run(server, settings, tmp_path, client=client).ok
        assert not client.is_closed


@pytest.mark.parametrize(
    ("head", "url", "ctype", "expected"),
    [
        (b"\xef\xbb\xbfhospital_name,last_updated_on\n", "https://h.example.org/x", None, "csv"),
        (b'  {"hospital_name": "x"}', "https://h.example.org/x.csv", "text/plain", "json"),
        (b"PK\x03\x04rest", "https://h.example.org/x.csv", None, "zip"),
        (b"PK\x03\x04rest", "https://h.example.org/x.xlsx", None, "xlsx"),
        (b"\x1f\x8b\x08\x00", "https://h.example.org/x.csv.gz", None, "gz"),
        (b"\n\n<!DOCTYPE HTML PUBLIC>", "https://h.example.org/x.csv", "text/csv", "html"),
        (b'<?xml version="1.0"?><html xmlns="x">', "https://h.example.org/x.json", None, "html"),
        (b"\x00\x01\x02binary", "https://h.example.org/x", None, "bin"),
        (b"just words", "https://h.example.org/x.json", None, "json"),
    ],
)
def test_guess_extension(head, url, ctype, expected):
    assert guess_extension(head, url, ctype) == expected


def test_sniffing_helpers():
    assert looks_like_html(b"<html><body>Access denied</body></html>")
    assert not looks_like_html(b"hospital_name,description\n<html> in a cell,1\n")
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
