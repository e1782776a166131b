"""Run `dagster dev` (webserver + daemon + code servers) as a real subprocess for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from price_pipeline.launch import prepare_dagster_home
from price_pipeline.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dagster_dev(
    home: Path, env: dict[str, str], *, production: bool = False, workspace: Path | None = None,
    prepare: bool = True,
) -> Iterator[tuple[subprocess.Popen, int]]:
    """Start `dagster dev` on an ephemeral port with its own DAGSTER_HOME (and the project's
    workspace.yaml unless another is given); stop the whole process group afterwards. Output goes
    to ``home/dagster_dev.log`` for post-mortems. ``prepare=False`` keeps a dagster.yaml the caller
    wrote instead of linking the embedded or production one."""
    if prepare:
        prepare_dagster_home(home, production=production)
    port = free_port()
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
    log = open(home / "dagster_dev.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(workspace or PROJECT_ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        kill_stragglers(home)
        log.close()


def kill_stragglers(home: Path) -> int:
    """Kill every process still running with this DAGSTER_HOME (code servers that `dagster dev`
    started in their own session survive the process-group signal). Returns how many."""
    marker = f"DAGSTER_HOME={home}".encode()
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    return killed


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for(predicate, *, timeout: float, interval: float = 2.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
