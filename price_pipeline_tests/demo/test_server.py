"""The bundled demo catalog server: catalog JSON, file serving semantics, runtime overrides, faults."""

from __future__ import annotations

import email.utils
import hashlib
import io
import json
import re
import zipfile
from importlib import resources
from pathlib import Path

import httpx
import pytest

from price_pipeline.demo import data_dir, load_catalog
from price_pipeline.demo.faults import Fault
from price_pipeline.demo.server import DemoCatalogServer

CMS_NAME = re.compile(r"^\d{9}(-\d{10})?_[a-z0-9-]+_standardcharges\.(csv|json|zip)$")
FILES = data_dir() / "files"


@pytest.fixture
def server():
    with DemoCatalogServer() as srv:
        yield srv


@pytest.fixture
def client():
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def first_file(server: DemoCatalogServer, client: httpx.Client) -> dict:
    return client.get(server.catalog_url).json()["hospitals"][0]["files"][0]


def test_committed_data_is_complete_and_named_by_cms_convention():
    hospitals = load_catalog()
    assert len(hospitals) >= 10
    assert len({h["name"] for h in hospitals}) == len(hospitals)
    assert len({h["ccn"] for h in hospitals}) == len(hospitals)
    for h in hospitals:
        assert len(h["ccn"]) == 6 and h["ccn"].isdigit()
        assert h["website"].startswith("https://") and h["website"].endswith(".example.org")
        assert re.fullmatch(r"\d{5}", h["zip"]) and re.fullmatch(r"[A-Z]{2}", h["state"])
        for f in h["files"]:
            assert CMS_NAME.match(f["name"]), f["name"]
            path = FILES / f["name"]
            assert path.is_file() and 0 < path.stat().st_size < 1_500_000
    layouts = {(h["demo"]["cms_version"], h["demo"]["layout"]) for h in hospitals}
    for version in ("2.0.0", "3.0.0"):
        for layout in ("csv_tall", "csv_wide", "json"):
            assert (version, layout) in layouts


def test_data_is_reachable_as_package_resources():
    root = resources.files("price_pipeline.demo") / "data"
    assert json.loads((root / "catalog.json").read_text(encoding="utf-8"))["hospitals"]
    assert Path(str(root)) == data_dir()


def test_zip_member_and_macosx_junk_and_broken_html():
    zips = list(FILES.glob("*.zip"))
    assert len(zips) == 1
    with zipfile.ZipFile(zips[0]) as zf:
        names = zf.namelist()
    assert any(n.startswith("__MACOSX/._") for n in names)
    assert any(n.endswith("_standardcharges.csv") and not n.startswith("__MACOSX") for n in names)
    broken = [h for h in load_catalog() if h["demo"]["expect"] == "html_instead_of_data"]
    assert len(broken) == 1
    assert (FILES / broken[0]["files"][0]["name"]).read_bytes().lstrip().lower().startswith(b"<!doctype html")


def test_healthz_and_unknown_path(server, client):
    assert client.get(server.url + "/healthz").json() == {"status": "ok"}
    assert client.get(server.url + "/nope").status_code == 404
    assert client.get(server.url + "/files/missing.csv").status_code == 404


def test_catalog_pages_and_absolute_urls_on_the_ephemeral_port(server, client):
    first = client.get(server.catalog_url, params={"page": 1, "per_page": 4}).json()
    assert (first["page"], first["per_page"], first["total"], first["total_pages"]) == (1, 4, 10, 3)
    seen = []
    for page in (1, 2, 3, 4):
        body = client.get(server.catalog_url, params={"page": page, "per_page": 4}).json()
        seen += body["hospitals"]
    assert len(seen) == 10 and len({h["id"] for h in seen}) == 10
    for h in seen:
        assert {"id", "ccn", "name", "address", "city", "state", "zip", "website", "files"} <= set(h)
        assert "demo" not in h
        for f in h["files"]:
            assert f["url"].startswith(f"http://127.0.0.1:{server.port}/files/")
            assert {"format", "size", "retrieved_at", "sha256"} <= set(f)
            data = client.get(f["url"]).content
            assert len(data) == f["size"] and hashlib.sha256(data).hexdigest() == f["sha256"]


def test_state_filter_and_bad_parameters(server, client):
    body = client.get(server.catalog_url, params={"state": "ca"}).json()
    assert body["total"] == 2 and {h["state"] for h in body["hospitals"]} == {"CA"}
    assert client.get(server.catalog_url, params={"state": "ZZ"}).json()["total"] == 0
    assert client.get(server.catalog_url, params={"page": "x"}).status_code == 400
    assert client.get(server.catalog_url, params={"per_page": 0}).status_code == 400
    hid = body["hospitals"][0]["id"]
    assert client.get(f"{server.catalog_url}/{hid}").json()["id"] == hid


def test_file_headers_and_conditional_requests(server, client):
    f = first_file(server, client)
    r = client.get(f["url"])
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(r.content) == f["size"]
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Accept-Ranges"] == "bytes"
    etag, last_modified = r.headers["ETag"], r.headers["Last-Modified"]
    assert client.get(f["url"], headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f["url"], headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(f["url"], headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = email.utils.formatdate(
        email.utils.parsedate_to_datetime(last_modified).timestamp() - 60, usegmt=True
    )
    assert client.get(f["url"], headers={"If-Modified-Since": earlier}).status_code == 200
    head = client.head(f["url"])
    assert (
        head.status_code == 200 and head.content == b"" and head.headers["Content-Length"] == str(f["size"])
    )


def test_range_requests(server, client):
    f = first_file(server, client)
    full = client.get(f["url"]).content
    r = client.get(f["url"], headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == full[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(full)}"
    assert client.get(f["url"], headers={"Range": "bytes=1000-"}).content == full[1000:]
    assert client.get(f["url"], headers={"Range": "bytes=-10"}).content == full[-10:]
    bad = client.get(f["url"], headers={"Range": f"bytes={len(full)}-"})
    assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{len(full)}"
    etag = client.head(f["url"]).headers["ETag"]
    assert client.get(f["url"], headers={"Range": "bytes=5-", "If-Range": etag}).status_code == 206
    stale = client.get(f["url"], headers={"Range": "bytes=5-", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == full


def test_runtime_overrides_new_hospital_changed_file_empty_catalog(server, client):
    hospitals = server.hospitals()
    newcomer = {**hospitals[0], "id": "demo-new", "ccn": "990001", "name": "Newcomer Hospital"}
    server.add_hospital(newcomer)
    assert client.get(server.catalog_url).json()["total"] == 11

    name = hospitals[0]["files"][0]["name"]
    before = first_file(server, client)
    old_etag = client.head(before["url"]).headers["ETag"]
    server.set_file(name, b"hospital_name,x\nchanged,1\n")
    after = first_file(server, client)
    assert after["sha256"] != before["sha256"] and after["size"] == 26
    assert after["retrieved_at"] != before["retrieved_at"]
    assert client.get(after["url"], headers={"If-None-Match": old_etag}).status_code == 200

    server.set_hospitals([])
    body = client.get(server.catalog_url).json()
    assert body["total"] == 0 and body["hospitals"] == [] and body["total_pages"] == 0

    server.reset()
    assert client.get(server.catalog_url).json()["total"] == 10
    assert first_file(server, client)["sha256"] == before["sha256"]


def test_faults_expire_and_are_per_path(server, client):
    f = first_file(server, client)
    server.add_fault(f["url"], Fault.http_status(503, times=2))
    assert [client.get(f["url"]).status_code for _ in range(3)] == [503, 503, 200]

    server.add_fault(f["url"], Fault.rate_limited(7))
    r = client.get(f["url"])
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"

    server.add_fault(f["url"], Fault.html_page(times=1))
    r = client.get(f["url"])
    assert (
        r.status_code == 200 and r.headers["Content-Type"].startswith("text/html") and b"<html>" in r.content
    )

    server.add_fault(f["url"], Fault.wrong_content_type("application/octet-stream", times=1))
    assert client.get(f["url"]).headers["Content-Type"] == "application/octet-stream"

    server.add_fault(f["url"], Fault.redirect("/files/elsewhere.csv", times=1))
    r = client.get(f["url"])
    assert r.status_code == 302 and r.headers["Location"] == f"{server.url}/files/elsewhere.csv"

    server.add_fault(server.catalog_url, Fault.http_status(200, body=b"{not json", times=1))
    assert client.get(server.catalog_url).content == b"{not json"
    assert client.get(server.catalog_url).json()["total"] == 10


def test_host_faults_hit_every_file_path_at_their_rate_and_clear(server, client):
    urls = [h["files"][0]["url"] for h in client.get(server.catalog_url).json()["hospitals"]]
    server.add_host_fault(Fault.rate_limited(3), probability=1.0)
    answers = [client.get(u) for u in urls]
    assert {r.status_code for r in answers} == {429} and answers[0].headers["Retry-After"] == "3"
    assert client.get(server.catalog_url).status_code == 200  # only /files/ paths by default

    server.clear_faults()
    server.add_host_fault(Fault.http_status(503), probability=0.5)
    codes = [client.get(urls[i % len(urls)]).status_code for i in range(200)]
    assert set(codes) == {200, 503} and 60 <= codes.count(503) <= 140  # intermittent, seeded

    server.clear_faults()
    assert {client.get(u).status_code for u in urls} == {200}


def test_file_bytes_may_be_an_mmap(server, client, tmp_path):
    import mmap

    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 1000)
    with open(path, "rb") as f:
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    server.set_file("big.csv", buffer)
    url = server.file_url("big.csv")
    assert client.get(url).content == path.read_bytes()
    assert client.get(url, headers={"Range": "bytes=0-3"}).content == b"a,b\n"


def test_truncate_reset_and_slow_bodies(server, client):
    f = first_file(server, client)
    server.add_fault(f["url"], Fault.truncate(100))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f["url"])
    server.add_fault(f["url"], Fault.reset(100))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(f["url"])
    server.add_fault(f["url"], Fault.slow(0.5))
    with pytest.raises(httpx.ReadTimeout):
        client.get(f["url"], timeout=httpx.Timeout(5, read=0.1))
    assert client.get(f["url"]).status_code == 200
    assert any(r.path == f"/files/{Path(f['url']).name}" for r in server.requests)


def test_ignore_range_fault_serves_full_body(server, client):
    f = first_file(server, client)
    server.add_fault(f["url"], Fault.ignore_range())
    r = client.get(f["url"], headers={"Range": "bytes=10-"})
    assert r.status_code == 200 and len(r.content) == f["size"] and "Accept-Ranges" not in r.headers


def test_server_runs_on_any_port_and_stops():
    srv = DemoCatalogServer(port=0).start()
    url = srv.catalog_url
    assert httpx.get(url, trust_env=False).json()["total"] == 10
    srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, trust_env=False, timeout=2)


def test_zip_is_served_as_application_zip(server, client):
    hospitals = client.get(server.catalog_url, params={"per_page": 100}).json()["hospitals"]
    zipped = [f for h in hospitals for f in h["files"] if f["format"] == "zip"]
    r = client.get(zipped[0]["url"])
    assert r.headers["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(r.content)).testzip() is None


def test_build_demo_data_reproduces_the_committed_files(tmp_path):
    """The demo data is rebuilt from the repository alone (bundled CMS examples, the project's
    gen_mrf) byte for byte."""
    from price_pipeline.demo.build_demo_data import build

    build(tmp_path)
    assert (tmp_path / "catalog.json").read_bytes() == (data_dir() / "catalog.json").read_bytes()
    for path in FILES.iterdir():
        assert (tmp_path / "files" / path.name).read_bytes() == path.read_bytes(), path.name


def test_fault_injection_is_not_on_the_runtime_path():
    """make run's demo catalog serves without loading demo/faults.py; adding a fault loads it."""
    import subprocess
    import sys

    script = (
        "import sys, httpx\n"
        "from price_pipeline.demo.server import DemoCatalogServer\n"
        "with DemoCatalogServer() as s:\n"
        "    assert httpx.get(s.catalog_url, trust_env=False).json()['total'] > 0\n"
        "    name = s.file_names()[0]\n"
        "    assert httpx.get(s.file_url(name), trust_env=False).status_code == 200\n"
        "    assert 'price_pipeline.demo.faults' not in sys.modules\n"
        "    from price_pipeline.demo.faults import Fault\n"
        "    s.add_fault(s.file_url(name), Fault.http_status(503))\n"
        "    assert httpx.get(s.file_url(name), trust_env=False).status_code == 503\n"
        "    assert httpx.get(s.file_url(name), trust_env=False).status_code == 200\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
