"""Fault injection for the demo catalog server: misbehaving hosts for tests and rehearsals.

Not on the runtime path: :class:`~price_pipeline.demo.server.DemoCatalogServer` imports this
module only when a fault is added (:meth:`~price_pipeline.demo.server.DemoCatalogServer.add_fault`,
``add_host_fault``), so ``make run``'s demo catalog never loads it. :class:`Fault` describes one
misbehaviour (5xx, 429 + Retry-After, truncated or reset bodies, slow bodies, redirects and loops,
HTML error pages, wrong content types, gzip bombs, trickled responses, no Range support);
:class:`FaultTable` holds a server's per-path and host-wide faults; the functions below are the
handler's answers when a fault hits.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus

# A fault of these kinds is the whole answer (the request is not served normally).
ANSWERS_ALONE = ("status", "redirect", "html", "gzip_bomb", "trickle")

ERROR_PAGE_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Error</title></head>\n"
    b"<body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>\n"
)


@dataclass
class Fault:
    """One injected misbehaviour for a request path. Build it with the classmethods.

    ``times`` is how many requests it affects before it expires (``None`` = every request), so
    ``Fault.status(500, times=1)`` gives "fail once, then succeed".
    """

    kind: str
    times: int | None = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    after_bytes: int = 0
    delay: float = 0.0
    chunk_size: int = 16 * 1024
    location: str | None = None
    slow_headers: bool = False
    # Host-wide faults only (:meth:`DemoCatalogServer.add_host_fault`): the share of matching
    # requests it hits, drawn per request (1.0 = every one).
    probability: float = 1.0

    @classmethod
    def http_status(
        cls,
        status: int,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Answer with ``status`` (e.g. 500, 503, 404, or 200 with a malformed ``body``)."""
        return cls(
            "status", times, status=status, body=body, headers=dict(headers or {}), content_type=content_type
        )

    @classmethod
    def rate_limited(cls, retry_after: str | int | float = 1, *, times: int | None = 1) -> Fault:
        """429 Too Many Requests with a ``Retry-After`` header (seconds or an HTTP date)."""
        return cls.http_status(429, headers={"Retry-After": str(retry_after)}, times=times)

    @classmethod
    def truncate(cls, after_bytes: int, *, times: int | None = 1) -> Fault:
        """Announce the full Content-Length, send ``after_bytes`` bytes, then close (FIN)."""
        return cls("truncate", times, after_bytes=after_bytes)

    @classmethod
    def reset(cls, after_bytes: int, *, times: int | None = 1) -> Fault:
        """Send ``after_bytes`` bytes of the body, then abort the connection with a TCP RST."""
        return cls("reset", times, after_bytes=after_bytes)

    @classmethod
    def slow(cls, delay: float, *, chunk_size: int = 16 * 1024, times: int | None = 1) -> Fault:
        """Sleep ``delay`` seconds before each ``chunk_size`` chunk of the body."""
        return cls("slow", times, delay=delay, chunk_size=chunk_size)

    @classmethod
    def redirect(cls, location: str, *, status: int = 302, times: int | None = None) -> Fault:
        """Redirect to ``location`` (a path on this server or an absolute URL).

        Redirecting a path to itself with ``times=None`` is a redirect loop.
        """
        return cls("redirect", times, status=status, location=location)

    @classmethod
    def html_page(
        cls,
        *,
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        body: bytes = ERROR_PAGE_HTML,
        times: int | None = None,
    ) -> Fault:
        """An HTML error page with status 200 (what WAFs and CMSes serve for a missing .csv)."""
        return cls("html", times, status=status, body=body, content_type=content_type)

    @classmethod
    def wrong_content_type(cls, content_type: str, *, times: int | None = None) -> Fault:
        """Serve the real bytes under a misleading Content-Type."""
        return cls("content_type", times, content_type=content_type)

    @classmethod
    def gzip_bomb(cls, decoded_bytes: int = 64 * 1024**2, *, times: int | None = None) -> Fault:
        """200 with ``Content-Encoding: gzip`` (sent although the client asked for identity): a
        small body that inflates to ``decoded_bytes`` zeros."""
        return cls("gzip_bomb", times, after_bytes=decoded_bytes)

    @classmethod
    def trickle(
        cls, delay: float, *, body: bytes = b"x" * 4096, slow_headers: bool = False, times: int | None = None
    ) -> Fault:
        """Any path (catalog, cms-hpt.txt, files): a 200 whose body -- and with ``slow_headers``
        its status line and headers too -- is sent one byte every ``delay`` seconds."""
        return cls("trickle", times, delay=delay, body=body, chunk_size=1, slow_headers=slow_headers)

    @classmethod
    def ignore_range(cls, *, times: int | None = None) -> Fault:
        """Behave like a server without Range support: always 200 with the full body."""
        return cls("ignore_range", times)


class FaultTable:
    """A server's faults: queues per path (each fault for its ``times`` requests) and host-wide
    faults (path prefix, probability per request), drawn from a seeded generator so that a
    rehearsal's faults are reproducible."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_path: dict[str, list[Fault]] = {}
        # (path prefix, fault): misbehaviour of the whole host (slow, rate-limited, flaky),
        # checked after the per-path faults.
        self.host: list[tuple[str, Fault]] = []
        self.random = random.Random(0)

    def add(self, path: str, fault: Fault) -> None:
        with self.lock:
            self.by_path.setdefault(path, []).append(fault)

    def add_host(self, prefix: str, fault: Fault, probability: float) -> None:
        hit = copy.copy(fault)
        hit.times, hit.probability = None, probability
        with self.lock:
            self.host.append((prefix, hit))

    def clear(self) -> None:
        with self.lock:
            self.by_path.clear()
            self.host.clear()

    def take(self, path: str) -> Fault | None:
        with self.lock:
            queue = self.by_path.get(path)
            if not queue:
                for prefix, fault in self.host:
                    if path.startswith(prefix) and self.random.random() < fault.probability:
                        return fault
                return None
            fault = queue[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
            return fault


def answer(handler, fault: Fault, *, head: bool) -> None:
    """Answer a request with a fault of a kind in :data:`ANSWERS_ALONE`."""
    if fault.kind == "trickle":
        _send_trickle(handler, fault, head=head)
    else:
        _send_fault_response(handler, fault, head=head)


def file_headers(fault: Fault, headers: dict[str, str]) -> None:
    """What a fault changes in a file's headers: a misleading Content-Type, no Range support."""
    if fault.kind == "content_type":
        headers["Content-Type"] = fault.content_type or "application/octet-stream"
    if fault.kind == "ignore_range":
        headers.pop("Accept-Ranges")


def ignores_range(fault: Fault | None) -> bool:
    return fault is not None and fault.kind == "ignore_range"


def write_body(handler, body: bytes, fault: Fault) -> bool:
    """Send the body as the fault breaks it (truncated, reset, slow); False: send it normally."""
    kind = fault.kind
    if kind in ("truncate", "reset"):
        handler.wfile.write(body[: fault.after_bytes])
        handler.wfile.flush()
        handler.close_connection = True
        if kind == "reset":
            # SO_LINGER 0 turns close() into an abortive close: the peer gets RST, not FIN.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.rfile.close()
            handler.wfile.close()
            handler.connection.close()
            # http.server flushes wfile after the handler returns: give it a harmless sink.
            handler.wfile = io.BytesIO()
        return True
    if kind == "slow":
        for start in range(0, len(body), fault.chunk_size):
            time.sleep(fault.delay)
            handler.wfile.write(body[start : start + fault.chunk_size])
            handler.wfile.flush()
        return True
    return False


def _send_trickle(handler, fault: Fault, *, head: bool) -> None:
    body = fault.body or b""
    preamble = (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    handler.close_connection = True
    slow = (preamble if fault.slow_headers else b"") + (b"" if head else body)
    if not fault.slow_headers:
        handler.wfile.write(preamble)
        handler.wfile.flush()
    for i in range(len(slow)):  # ends when the client hangs up (BrokenPipe, not logged)
        time.sleep(fault.delay)
        handler.wfile.write(slow[i : i + 1])
        handler.wfile.flush()


def _send_fault_response(handler, fault: Fault, *, head: bool) -> None:
    headers = dict(fault.headers)
    if fault.kind == "gzip_bomb":
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as gz:
            block = b"\0" * (1024 * 1024)
            left = fault.after_bytes
            while left > 0:
                gz.write(block[: min(left, len(block))])
                left -= len(block)
        headers.setdefault("Content-Encoding", "gzip")
        headers.setdefault("Content-Type", "text/csv")
        handler._send(200, headers, buffer.getvalue(), head=head)
        return
    if fault.kind == "redirect":
        location = fault.location or "/"
        if location.startswith("/"):
            location = handler.base_url() + location
        headers["Location"] = location
        body = b""
    elif fault.kind == "html":
        body = fault.body or ERROR_PAGE_HTML
    else:
        reason = HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else ""
        body = fault.body if fault.body is not None else json.dumps({"error": reason}).encode()
    default_type = "text/html; charset=utf-8" if fault.kind == "html" else "application/json"
    headers.setdefault("Content-Type", fault.content_type or default_type)
    handler._send(fault.status, headers, body, head=head)
