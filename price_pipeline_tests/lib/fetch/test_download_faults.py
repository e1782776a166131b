"""Every injected fault ends in a complete, verified file or a recorded failure, never a corrupt 'ok'."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile

import pytest

from price_pipeline.demo import load_catalog
from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer
from price_pipeline.lib.fetch.files import fetch_hospital_files
from price_pipeline.lib.fetch.http.download import RetryPolicy, download
from price_pipeline.lib.fetch.http.limits import HostLimiter
from price_pipeline.lib.lake.storage import LocalLake
from price_pipeline.lib.registry import Registry
from price_pipeline_tests.lib.discovery.test_sources import make_settings

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, max_total_seconds=20)
TALL_NAME = next(h["files"][0]["name"] for h in load_catalog() if h["id"] == "demo-007")


@pytest.fixture(scope="module")
def server():
    with DemoCatalogServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server):
    server.clear_faults()
    yield
    server.clear_faults()


def test_gzip_bomb_in_content_encoding_is_refused(server, tmp_path):
    settings = make_settings(tmp_path, server, max_decompression_ratio=50)
    server.add_fault(server.file_url(TALL_NAME), Fault.gzip_bomb(64 * 1024**2))
    r = download(server.file_url(TALL_NAME), tmp_path / "dl", settings=settings, retry=FAST)
    assert not r.ok and r.reason == "decompression_bomb" and r.error_kind == "permanent"
    assert r.path is None and list((tmp_path / "dl").iterdir()) == []


def test_honest_gzip_content_encoding_is_decoded_and_hashed(server, tmp_path):
    settings = make_settings(tmp_path, server)
    data = server.file_bytes(TALL_NAME)
    import gzip

    server.add_fault(
        server.file_url(TALL_NAME),
        Fault.http_status(200, body=gzip.compress(data), headers={"Content-Encoding": "gzip"}, content_type="text/csv"),
    )
    r = download(server.file_url(TALL_NAME), tmp_path / "dl", settings=settings, retry=FAST)
    assert r.ok and r.sha256 == hashlib.sha256(data).hexdigest() and r.path.read_bytes() == data


def test_zip_bomb_is_refused(server, tmp_path):
    settings = make_settings(tmp_path, server, max_decompression_ratio=20)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("charges.csv", b"0" * (8 * 1024**2))
    server.set_file("bomb_standardcharges.zip", buffer.getvalue())
    r = download(server.file_url("bomb_standardcharges.zip"), tmp_path / "dl", settings=settings, retry=FAST)
    assert not r.ok and r.reason == "decompression_bomb" and r.path is None


FAULTS = {
    "reset": lambda: Fault.reset(50_000),
    "truncated": lambda: Fault.truncate(50_000),
    "slow": lambda: Fault.slow(0.001, chunk_size=64 * 1024),
    "500": lambda: Fault.http_status(500),
    "503_always": lambda: Fault.http_status(503, times=None),
    "429": lambda: Fault.rate_limited(0),
    "wrong_type": lambda: Fault.wrong_content_type("application/octet-stream"),
    "redirect_loop": lambda: Fault.redirect(f"/files/{TALL_NAME}", times=None),
    "redirect_private": lambda: Fault.redirect("http://169.254.169.254/latest/meta-data/", times=None),
    "html": lambda: Fault.html_page(),
    "gzip_bomb": lambda: Fault.gzip_bomb(32 * 1024**2),
    "truncated_always": lambda: Fault.truncate(10_000, times=None),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_ends_verified_or_recorded(server, tmp_path, fault, monkeypatch):
    import price_pipeline.lib.fetch.files as ingest

    real = ingest.download
    monkeypatch.setattr(ingest, "download", lambda *a, **kw: real(*a, retry=FAST, **kw))
    settings = make_settings(tmp_path, server, max_decompression_ratio=50)
    lake, registry = LocalLake(tmp_path / "lake"), Registry(settings.registry_url)
    url = server.file_url(TALL_NAME)
    server.add_fault(url, FAULTS[fault]())
    manifest = fetch_hospital_files("h1", [url], lake=lake, registry=registry, settings=settings, scratch_dir=tmp_path)
    (outcome,) = manifest.files
    (version,) = registry.file_versions_for("h1")
    good = hashlib.sha256(server.file_bytes(TALL_NAME)).hexdigest()
    if outcome.status == "ok":
        assert outcome.sha256 == good and hashlib.sha256(lake.get_bytes(outcome.raw_key)).hexdigest() == good
        assert version["status"] == "ok" and version["sha256"] == good
    else:
        assert version["status"] in ("failed", "rejected") and version["error"]
        assert version["sha256"] != good
        # nothing but evidence of a rejected body is ever stored
        assert all(not k.endswith(".csv") for k in lake.list_keys("raw"))
    state = registry.file_states(["h1"])[("h1", url)]
    assert state["status"] in ("ok", "failed") and (state["sha256"] == good) == (outcome.status == "ok")


def test_host_limiter_bounds_concurrency_and_rate():
    limiter = HostLimiter(max_concurrency=2, max_requests_per_second=20)
    active, peak, lock = [0], [0], threading.Lock()

    def work():
        with limiter.slot("http://h.example/x"):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.01)
            with lock:
                active[0] -= 1

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 2
    assert time.monotonic() - started >= (40 - 20) / 20 * 0.9  # burst of 20, then 20/s
    # another host has its own budget
    with limiter.slot("http://other.example/"), limiter.slot("http://h.example/"):
        pass
