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
    home: Path, env: dict[str, str], *, production: bool = False, workspace: Path | None = None
) -> Iterator[tuple[subprocess.Popen, int]]:
    """Start `dagster dev` on an ephemeral port with its own DAGSTER_HOME (and the project's
    workspace.yaml unless another is given); stop the whole process group afterwards. Output goes
    to ``home/dagster_dev.log`` for post-mortems."""
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
        stop_dagster(process, home)
        log.close()


def stop_dagster(process: subprocess.Popen, home: Path) -> None:
    """Stop a `dagster dev` started in its own session (SIGINT to its group, SIGKILL after 30 s),
    then every process left with this DAGSTER_HOME."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    kill_stragglers(home)


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


def latest_run_per_hospital(instance, records) -> dict:
    """Each hospital's newest ingest_hospital run (a RunRecord): one of its own
    (``dagster/partition``) or a batch whose partition range holds it. Shared by the demo e2e
    test and benchmarks/demo_fingerprint.py, which wait for the demo the same way."""
    from price_pipeline.defs.partitions import hospital_partitions
    from price_pipeline.lib.ops.tags import RANGE_END_TAG, RANGE_START_TAG

    order = list(instance.get_dynamic_partitions(hospital_partitions.name))
    latest: dict = {}
    for record in sorted(records, key=lambda r: r.create_timestamp):
        tags = record.dagster_run.tags
        if tags.get("dagster/partition"):
            keys = [tags["dagster/partition"]]
        elif tags.get(RANGE_START_TAG) in order and tags.get(RANGE_END_TAG) in order:
            keys = order[order.index(tags[RANGE_START_TAG]) : order.index(tags[RANGE_END_TAG]) + 1]
        else:
            keys = []
        latest.update(dict.fromkeys(keys, record))
    return latest
