"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), for browser tests.

Debian's ``chromium`` is started by the test with ``--remote-debugging-port=0``; the port is read
from its ``DevTools listening on ws://…`` line, and one page target is driven through a websocket
(``websockets``' sync client): navigate, poll ``document.body.innerText``, capture screenshots.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from price_pipeline.settings import PROJECT_ROOT

ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1000",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One browser tab, driven by CDP commands over its websocket."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10)
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()

    def send(self, method: str, timeout: float = 30, **params) -> dict:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"CDP {method} got no answer in {timeout}s")
            reply = json.loads(self._ws.recv(timeout=remaining))
            if reply.get("id") == message_id:  # events (no id) are ignored
                if "error" in reply:
                    raise RuntimeError(f"CDP {method} failed: {reply['error']}")
                return reply.get("result", {})

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Poll the page's visible text until every needle appears; return that text."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        missing = [n for n in needles if n not in text]
        raise AssertionError(f"{missing} not on {self.evaluate('location.href')} after {timeout}s; text:\n{text[:3000]}")

    def wait_for_selector(self, selector: str, timeout: float = 60) -> None:
        expression = f"document.querySelector({json.dumps(selector)}) !== null"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.5)
        raise AssertionError(f"selector {selector!r} not found after {timeout}s")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def headless_chromium(binary: str, *, log_path: Path | None = None) -> Iterator[Page]:
    """Start Chromium headless on a free DevTools port with a throwaway profile; yield a Page.
    The browser's whole process group is killed afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="pp-chromium-"))
    stderr_path = log_path or profile / "chromium.log"
    stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    page = None
    try:
        browser_ws = _wait_for_devtools(process, stderr_path)
        port = int(browser_ws.split(":")[2].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.loads(response.read())
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(target["webSocketDebuggerUrl"])
        page.send("Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False)
        yield page
    finally:
        if page is not None:
            page.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        stderr.close()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for_devtools(process: subprocess.Popen, stderr_path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _LISTENING.search(stderr_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"chromium did not open DevTools (exit {process.poll()}):\n{stderr_path.read_text()[-3000:]}")
