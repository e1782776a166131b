"""A PRA-style (Patient Rights Advocate) hospital catalog service for offline demos and tests.

Stdlib only (``http.server.ThreadingHTTPServer``), JSON over HTTP:

* ``GET /api/v1/hospitals?page=1&per_page=50[&state=CA]`` -> ``{"page", "per_page", "total",
  "total_pages", "hospitals": [{"id", "ccn", "name", "address", "city", "state", "zip",
  "website", "files": [{"url", "name", "format", "size", "sha256", "content_type",
  "retrieved_at", "last_modified"}]}]}``. File URLs are absolute and built from the server's
  own host:port, so the catalog works on any port (including an ephemeral one).
* ``GET /api/v1/hospitals/<id>`` -> one hospital.
* ``GET|HEAD /files/<name>`` -> the MRF bytes with Content-Length, ETag and Last-Modified;
  honours If-None-Match / If-Modified-Since (304), Range and If-Range (206 / 416).
* ``GET /healthz`` -> ``{"status": "ok"}``.
* ``POST /api/v1/session`` -> ``{"token", "expires_in"}`` when sessions are required
  (``require_session=True``); an unknown or expired token gets what PRA's API gives: **200 with
  an empty list** (or 401 with ``expired_status=401``). :meth:`DemoCatalogServer.expire_sessions`
  expires every token.
* ``GET /sites/<id>/cms-hpt.txt`` -> the hospital's ``cms-hpt.txt`` (rendered from the catalog
  entry when it has ``"cms_hpt": true``, or the entry's own text/bytes), and any path set
  with :meth:`DemoCatalogServer.set_static` (e.g. a system's root ``/cms-hpt.txt``).

Tests drive it through :class:`DemoCatalogServer` (ephemeral port, background thread):
``set_hospitals`` / ``set_file`` simulate a hospital appearing, a file changing or an empty
catalog, and ``add_fault`` with a :class:`~price_pipeline.demo.faults.Fault` injects per-path
failures (5xx, 429 + Retry-After, truncated or reset bodies, slow bodies, redirects and loops,
HTML error pages, wrong content types); ``add_host_fault`` makes a whole host slow, rate-limited
or intermittently failing. Fault injection lives in :mod:`price_pipeline.demo.faults`, imported
only once a fault is added: the demo catalog of ``make run`` never loads it. Several
servers on several loopback addresses (127.0.0.2, 127.0.0.3, ...) are several hosts, each with
its own faults (``benchmarks/national_rehearsal.py``). A file's bytes may be any buffer
(``bytes`` or an ``mmap`` of a file on disk, for files too large to hold in memory).

CLI: ``python -m price_pipeline.demo.server --host 127.0.0.1 --port 8765``.
"""

from __future__ import annotations

import argparse
import copy
import email.utils
import hashlib
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from price_pipeline.demo import DATA_DIR

if TYPE_CHECKING:
    from price_pipeline.demo.faults import Fault, FaultTable

CATALOG_PATH = "/api/v1/hospitals"
SESSION_PATH = "/api/v1/session"
FILES_PREFIX = "/files/"
SITES_PREFIX = "/sites/"
MAX_PER_PAGE = 500

_CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".html": "text/html; charset=utf-8",
}

@dataclass
class StoredFile:
    """A servable file held in memory (the demo files are small)."""

    data: bytes
    last_modified: float
    content_type: str
    retrieved_at: str | None = None

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def etag(self) -> str:
        # Strong validator derived from content: a changed file always gets a new ETag.
        return f'"{self.sha256[:32]}"'

    @cached_property
    def last_modified_http(self) -> str:
        return email.utils.formatdate(self.last_modified, usegmt=True)


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by the server (tests assert on Range / conditional headers)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


def _iso_to_epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_type_for(name: str) -> str:
    """Content-Type a typical web server would send for this file name."""
    return _CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


class _State:
    """Mutable catalog, files, faults and request log shared by the handler threads."""

    def __init__(self, data_dir: Path, hospitals: list[dict] | None):
        self.lock = threading.Lock()
        self.data_dir = data_dir
        self.hospitals: list[dict] = []
        self.files: dict[str, StoredFile] = {}
        # Created by the first add_fault/add_host_fault (demo/faults.py): None serves normally.
        self.faults: FaultTable | None = None
        self.requests: list[RequestRecord] = []
        self.record_requests = True
        self.static: dict[str, tuple[int, bytes, str]] = {}
        self.require_session = False
        self.expired_status = 200
        self.tokens: set[str] = set()
        self.load(hospitals)

    def load(self, hospitals: list[dict] | None) -> None:
        doc_hospitals: list[dict] = []
        catalog_file = self.data_dir / "catalog.json"
        if catalog_file.exists():
            doc_hospitals = json.loads(catalog_file.read_text(encoding="utf-8"))["hospitals"]
        last_modified = {
            f["name"]: _iso_to_epoch(f.get("last_modified"))
            for h in doc_hospitals
            for f in h.get("files", [])
        }
        files: dict[str, StoredFile] = {}
        files_dir = self.data_dir / "files"
        if files_dir.is_dir():
            for path in sorted(files_dir.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    # A fixed Last-Modified from catalog.json keeps validators stable across checkouts.
                    lm = last_modified.get(path.name) or path.stat().st_mtime
                    files[path.name] = StoredFile(path.read_bytes(), float(lm), content_type_for(path.name))
        with self.lock:
            self.files = files
            self.hospitals = copy.deepcopy(hospitals if hospitals is not None else doc_hospitals)
            if self.faults is not None:
                self.faults.clear()
            self.requests = []
            self.static = {}
            self.tokens = set()

    def take_fault(self, path: str) -> Fault | None:
        table = self.faults
        return table.take(path) if table is not None else None

    def fault_table(self) -> FaultTable:
        from price_pipeline.demo.faults import FaultTable

        with self.lock:
            if self.faults is None:
                self.faults = FaultTable()
            return self.faults


def _faults():
    """The fault-injection module, reached only once a request drew a fault (so it is loaded)."""
    from price_pipeline.demo import faults

    return faults


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PricePipelineDemo/0.1"
    # Idle keep-alive connections must not pin handler threads forever.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle + delayed ACK each response would stall ~40 ms.
    disable_nagle_algorithm = True

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def base_url(self) -> str:
        configured = getattr(self.server, "base_url", None)
        if configured:
            return configured
        host, port = self.server.server_address[:2]
        if host in ("0.0.0.0", "::", ""):
            # Bound to every interface: the client's Host header says how it reached us.
            return f"http://{self.headers.get('Host') or f'127.0.0.1:{port}'}"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        fault = self.state.take_fault(unquote(urlsplit(self.path).path))
        if fault is not None and fault.kind == "trickle":
            _faults().answer(self, fault, head=False)
            return
        if urlsplit(self.path).path.rstrip("/") != SESSION_PATH:
            self._send_json({"error": "not found"}, status=404)
            return
        token = secrets.token_hex(8)
        with self.state.lock:
            self.state.tokens.add(token)
        self._send_json({"token": token, "expires_in": 3600})

    # -- sessions and cms-hpt.txt ---------------------------------------------------------------
    def _session_ok(self) -> bool:
        if not self.state.require_session:
            return True
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self.state.lock:
            return token in self.state.tokens

    def _expired_session(self, query: dict[str, list[str]], *, head: bool) -> None:
        if self.state.expired_status != 200:
            self._send_json({"error": "session expired"}, status=self.state.expired_status, head=head)
            return
        # What a real catalog did: a well-formed, empty page.
        page = int((query.get("page") or ["1"])[0] or 1)
        per_page = int((query.get("per_page") or ["50"])[0] or 50)
        self._send_json(
            {"page": page, "per_page": per_page, "total": 0, "total_pages": 0, "hospitals": []}, head=head
        )

    def _cms_hpt(self, site: str, *, head: bool) -> None:
        with self.state.lock:
            match = next(
                (h for h in self.state.hospitals if h.get("website") == f"{SITES_PREFIX}{site}"), None
            )
            files = dict(self.state.files)
        hpt = match.get("cms_hpt") if match else None
        if not hpt:
            self._send(404, {"Content-Type": "text/plain"}, b"not found", head=head)
            return
        if hpt is True:
            rendered = self._render_hospital(match, files)
            blocks = [
                f"location-name: {match['name']}\n"
                f"source-page-url: {self.base_url()}{SITES_PREFIX}{site}/price-transparency\n"
                f"mrf-url: {f['url']}\n"
                f"contact-name: Revenue Cycle Office\n"
                f"contact-email: prices@{site}.example.org\n"
                for f in rendered["files"]
            ]
            body = "\n".join(blocks).encode()
        else:
            body = hpt.encode() if isinstance(hpt, str) else bytes(hpt)
        self._send(200, {"Content-Type": "text/plain"}, body, head=head)

    def _dispatch(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if self.state.record_requests:
            with self.state.lock:
                self.state.requests.append(
                    RequestRecord(self.command, path, parts.query, dict(self.headers.items()))
                )
        fault = self.state.take_fault(path)
        if fault is not None and fault.kind in _faults().ANSWERS_ALONE:
            _faults().answer(self, fault, head=head)
            return
        static = self.state.static.get(path)
        if static is not None:
            status, body, ctype = static
            self._send(status, {"Content-Type": ctype}, body, head=head)
        elif path == "/healthz":
            self._send_json({"status": "ok"}, head=head)
        elif path.rstrip("/") == CATALOG_PATH:
            if not self._session_ok():
                self._expired_session(parse_qs(parts.query), head=head)
                return
            self._catalog(parse_qs(parts.query), head=head)
        elif path.startswith(SITES_PREFIX) and path.endswith("/cms-hpt.txt"):
            self._cms_hpt(path[len(SITES_PREFIX) : -len("/cms-hpt.txt")], head=head)
        elif path.startswith(CATALOG_PATH + "/"):
            self._one_hospital(path[len(CATALOG_PATH) + 1 :], head=head)
        elif path.startswith(FILES_PREFIX):
            self._file(path[len(FILES_PREFIX) :], fault, head=head)
        else:
            self._send_json({"error": "not found"}, status=404, head=head)

    # -- responses --------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        *,
        head: bool = False,
        fault: Fault | None = None,
        content_length: int | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if head:
            return
        if fault is not None and _faults().write_body(self, body, fault):
            return
        self.wfile.write(body)

    def _send_json(self, payload: Any, *, status: int = 200, head: bool = False) -> None:
        body = json.dumps(payload, indent=1).encode()
        self._send(status, {"Content-Type": "application/json"}, body, head=head)

    # -- catalog ----------------------------------------------------------------------------
    def _render_hospital(self, hospital: dict, files: dict[str, StoredFile]) -> dict:
        base = self.base_url()
        out = {k: v for k, v in hospital.items() if k not in ("files", "demo", "cms_hpt")}
        website = out.get("website")
        if isinstance(website, str) and website.startswith("/"):
            out["website"] = base + website
        rendered = []
        for entry in hospital.get("files", []):
            item = dict(entry)
            name = entry.get("name")
            url = entry.get("url")
            if url is None and name:
                url = f"{base}{FILES_PREFIX}{quote(name)}"
            elif url and url.startswith("/"):
                url = base + url
            item["url"] = url
            stored = files.get(name) if name else None
            if name:
                item["name"] = name
                item.setdefault("format", Path(name).suffix.lstrip(".").lower() or "bin")
            if stored is not None:
                item["size"] = len(stored.data)
                item["sha256"] = stored.sha256
                item["content_type"] = stored.content_type
                item["last_modified"] = datetime.fromtimestamp(stored.last_modified, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                if stored.retrieved_at:
                    item["retrieved_at"] = stored.retrieved_at
            rendered.append(item)
        out["files"] = rendered
        return out

    def _catalog(self, query: dict[str, list[str]], *, head: bool) -> None:
        try:
            page = int(query.get("page", ["1"])[0])
            per_page = int(query.get("per_page", ["50"])[0])
        except ValueError:
            self._send_json({"error": "page and per_page must be integers"}, status=400, head=head)
            return
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            self._send_json(
                {"error": f"page >= 1 and 1 <= per_page <= {MAX_PER_PAGE}"}, status=400, head=head
            )
            return
        state_filter = (query.get("state", [""])[0] or "").strip().upper()
        with self.state.lock:
            hospitals = [
                h
                for h in self.state.hospitals
                if not state_filter or str(h.get("state", "")).upper() == state_filter
            ]
            files = dict(self.state.files)
        total = len(hospitals)
        chunk = hospitals[(page - 1) * per_page : page * per_page]
        self._send_json(
            {
                "page": page,
                "per_page": per_page,
                "total": total,
                "total_pages": math.ceil(total / per_page) if total else 0,
                "hospitals": [self._render_hospital(h, files) for h in chunk],
            },
            head=head,
        )

    def _one_hospital(self, hospital_id: str, *, head: bool) -> None:
        with self.state.lock:
            match = next((h for h in self.state.hospitals if str(h.get("id")) == hospital_id), None)
            files = dict(self.state.files)
        if match is None:
            self._send_json({"error": "not found"}, status=404, head=head)
        else:
            self._send_json(self._render_hospital(match, files), head=head)

    # -- files ------------------------------------------------------------------------------
    def _not_modified(self, stored: StoredFile) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            # RFC 9110: If-None-Match wins over If-Modified-Since; weak comparison for GET.
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or stored.etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
            return int(stored.last_modified) <= since
        return False

    def _parse_range(self, size: int) -> tuple[int, int] | str | None:
        """(start, end) inclusive, "unsatisfiable", or None for "serve the whole file"."""
        header = self.headers.get("Range")
        if not header or not header.startswith("bytes=") or "," in header:
            return None  # absent, unknown unit or multi-range: a full 200 is always allowed
        first, _, last = header[len("bytes=") :].strip().partition("-")
        try:
            if first == "":
                if not last:
                    return None
                start, end = max(0, size - int(last)), size - 1
            else:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
        except ValueError:
            return None
        if start >= size or start > end:
            return "unsatisfiable"
        return start, end

    def _if_range_ok(self, stored: StoredFile) -> bool:
        value = self.headers.get("If-Range")
        if value is None:
            return True
        return value.strip() in (stored.etag, stored.last_modified_http)

    def _file(self, name: str, fault: Fault | None, *, head: bool) -> None:
        with self.state.lock:
            stored = self.state.files.get(name)
        if stored is None or "/" in name:
            self._send_json({"error": "not found"}, status=404, head=head)
            return
        headers = {
            "Content-Type": stored.content_type,
            "ETag": stored.etag,
            "Last-Modified": stored.last_modified_http,
            "Accept-Ranges": "bytes",
        }
        if fault is not None:
            _faults().file_headers(fault, headers)
        if self._not_modified(stored):
            self._send(
                304, {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified")}, b"", head=True
            )
            return
        size = len(stored.data)
        wanted = None
        if not (fault is not None and _faults().ignores_range(fault)) and self._if_range_ok(stored):
            wanted = self._parse_range(size)
        if wanted == "unsatisfiable":
            self._send(416, {"Content-Range": f"bytes */{size}"}, b"", head=head)
            return
        if isinstance(wanted, tuple):
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self._send(206, headers, stored.data[start : end + 1], head=head, fault=fault)
            return
        self._send(200, headers, stored.data, head=head, fault=fault)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, state: _State, *, base_url: str | None, verbose: bool):
        self.state = state
        self.base_url = base_url
        self.verbose = verbose
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:
        # Clients hanging up mid-body (the download tests do it on purpose) are not server bugs.
        if self.verbose:
            super().handle_error(request, client_address)


class DemoCatalogServer:
    """The demo catalog + file server, runnable in a background thread (tests) or the foreground (CLI).

    >>> with DemoCatalogServer() as srv:           # port 0: an ephemeral port
    ...     httpx.get(srv.catalog_url).json()["total"]

    ``hospitals`` replaces the committed catalog.json list; ``data_dir`` points at another
    folder with ``catalog.json`` and ``files/``; ``base_url`` overrides the host:port put in file
    URLs (e.g. behind a port mapping).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        data_dir: str | Path | None = None,
        hospitals: list[dict] | None = None,
        base_url: str | None = None,
        verbose: bool = False,
        files: dict[str, bytes] | None = None,
    ):
        self._state = _State(Path(data_dir) if data_dir else DATA_DIR, hospitals)
        for name, data in (files or {}).items():
            self._state.files[name] = StoredFile(data, 1_748_736_000.0, content_type_for(name))
        self._initial_hospitals = copy.deepcopy(hospitals) if hospitals is not None else None
        self._httpd = _Server(
            (host, port), self._state, base_url=base_url.rstrip("/") if base_url else None, verbose=verbose
        )
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd.base_url:
            return self._httpd.base_url
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def catalog_url(self) -> str:
        return self.url + CATALOG_PATH

    def file_url(self, name: str) -> str:
        """Absolute URL of a served file."""
        return f"{self.url}{FILES_PREFIX}{quote(name)}"

    def start(self) -> DemoCatalogServer:
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="demo-catalog",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> DemoCatalogServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- runtime overrides (tests) ----------------------------------------------------------
    def hospitals(self) -> list[dict]:
        """A copy of the current catalog entries (file entries carry ``name`` or ``url``)."""
        with self._state.lock:
            return copy.deepcopy(self._state.hospitals)

    def set_hospitals(self, hospitals: list[dict]) -> None:
        """Replace the catalog. File entries use ``name`` (a served file) or an explicit ``url``."""
        with self._state.lock:
            self._state.hospitals = copy.deepcopy(hospitals)

    def add_hospital(self, hospital: dict) -> None:
        with self._state.lock:
            self._state.hospitals.append(copy.deepcopy(hospital))

    def remove_hospital(self, hospital_id: str) -> None:
        with self._state.lock:
            self._state.hospitals = [h for h in self._state.hospitals if str(h.get("id")) != hospital_id]

    def set_file(
        self, name: str, data: bytes, *, content_type: str | None = None, last_modified: float | None = None
    ) -> None:
        """Add or replace a served file; its size, sha256, ETag and retrieved_at change accordingly."""
        stored = StoredFile(
            data,
            time.time() if last_modified is None else last_modified,
            content_type or content_type_for(name),
            retrieved_at=_now_iso(),
        )
        with self._state.lock:
            self._state.files[name] = stored

    def file_bytes(self, name: str) -> bytes:
        with self._state.lock:
            return self._state.files[name].data

    def file_names(self) -> list[str]:
        with self._state.lock:
            return sorted(self._state.files)

    def remove_file(self, name: str) -> None:
        with self._state.lock:
            self._state.files.pop(name, None)

    def add_fault(self, path_or_url: str, fault: Fault) -> None:
        """Queue ``fault`` for requests to a path (``/files/x.csv``) or a full URL on this server."""
        self._state.fault_table().add(unquote(urlsplit(path_or_url).path) or "/", fault)

    def add_host_fault(self, fault: Fault, *, prefix: str = FILES_PREFIX, probability: float = 1.0) -> None:
        """Make the whole host misbehave: ``fault`` hits each request whose path starts with
        ``prefix`` with ``probability`` (e.g. ``Fault.http_status(503)`` at 0.2 is a flaky host,
        ``Fault.slow(...)`` at 1.0 a slow one). It never expires; :meth:`clear_faults` removes it."""
        self._state.fault_table().add_host(prefix, fault, probability)

    def set_static(
        self, path: str, data: bytes | str, *, status: int = 200, content_type: str = "text/plain"
    ) -> None:
        """Serve ``data`` at ``path`` (e.g. ``/cms-hpt.txt`` or ``/sites/x/cms-hpt.txt``) with ``status``."""
        body = data.encode() if isinstance(data, str) else bytes(data)
        with self._state.lock:
            self._state.static[path] = (status, body, content_type)

    def require_sessions(self, required: bool = True, *, expired_status: int = 200) -> None:
        """Make the catalog require a token from ``POST /api/v1/session``; an expired or missing
        token gets ``expired_status`` (200 = an empty list, as a misbehaving real catalog does)."""
        with self._state.lock:
            self._state.require_session = required
            self._state.expired_status = expired_status

    def expire_sessions(self) -> None:
        with self._state.lock:
            self._state.tokens.clear()

    def set_record_requests(self, enabled: bool) -> None:
        """Turn the request log off for load tests (it grows without bound)."""
        with self._state.lock:
            self._state.record_requests = enabled
            self._state.requests.clear()

    @property
    def session_url(self) -> str:
        return self.url + SESSION_PATH

    def site_url(self, site: str) -> str:
        return f"{self.url}{SITES_PREFIX}{site}"

    def clear_faults(self) -> None:
        if self._state.faults is not None:
            self._state.faults.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far (oldest first)."""
        with self._state.lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        with self._state.lock:
            self._state.requests.clear()

    def reset(self) -> None:
        """Back to the committed catalog and files, no faults, empty request log."""
        self._state.load(
            copy.deepcopy(self._initial_hospitals) if self._initial_hospitals is not None else None
        )


# A spread of real ZIP codes so the generated catalog exercises the ZIP-centroid enrichment.
_GEN_PLACES = (
    ("95816", "Sacramento", "CA"),
    ("92101", "San Diego", "CA"),
    ("53202", "Milwaukee", "WI"),
    ("10016", "New York", "NY"),
    ("60611", "Chicago", "IL"),
    ("77030", "Houston", "TX"),
    ("02114", "Boston", "MA"),
    ("98104", "Seattle", "WA"),
    ("30322", "Atlanta", "GA"),
    ("85006", "Phoenix", "AZ"),
)


def generate_catalog(n: int, *, seed: int = 0, cms_hpt: bool = True) -> tuple[list[dict], dict[str, bytes]]:
    """``n`` synthetic hospitals (each with one small CSV named by the CMS convention and, when
    ``cms_hpt``, a ``cms-hpt.txt`` under ``/sites/<id>/``) and the files' bytes by name.

    For load tests and the discovery benchmark: ``DemoCatalogServer(hospitals=h)`` then
    ``set_file`` for each file (or pass ``files=`` to the constructor).
    """
    hospitals, files = [], {}
    for i in range(n):
        zip_code, city, state = _GEN_PLACES[(i + seed) % len(_GEN_PLACES)]
        ein = f"{10 + i % 89:02d}{i:07d}"
        npi = f"1{i + seed:09d}"
        slug = f"generated-hospital-{i:05d}"
        name = f"{ein}-{npi}_{slug}_standardcharges.csv"
        files[name] = (
            "description,code|1,code|1|type,standard_charge|gross\n"
            f"Office visit {i},99213,CPT,{100 + i % 50}.00\n"
        ).encode()
        hospitals.append(
            {
                "id": f"gen-{i:05d}",
                "ccn": f"{(i % 99) + 1:02d}{i:04d}"[-6:],
                "name": f"Generated Hospital {i:05d}",
                "address": f"{100 + i} Main St",
                "city": city,
                "state": state,
                "zip": zip_code,
                "website": f"{SITES_PREFIX}gen-{i:05d}",
                "files": [{"name": name, "retrieved_at": "2025-06-02T08:00:00Z"}],
                "cms_hpt": cms_hpt,
            }
        )
    return hospitals, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the bundled demo hospital catalog and MRF files.")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: local only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with catalog.json and files/")
    parser.add_argument("--base-url", default=None, help="public base URL put in file links")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.add_argument(
        "--generate", type=int, default=0, metavar="N", help="serve N synthetic hospitals instead (load tests)"
    )
    args = parser.parse_args(argv)
    hospitals = files = None
    if args.generate:
        hospitals, files = generate_catalog(args.generate)
    server = DemoCatalogServer(
        args.host,
        args.port,
        data_dir=args.data_dir,
        base_url=args.base_url,
        verbose=not args.quiet,
        hospitals=hospitals,
        files=files,
    )
    if args.generate:
        server.set_record_requests(False)
    print(f"demo catalog: {server.catalog_url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
