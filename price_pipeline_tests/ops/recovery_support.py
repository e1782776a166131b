"""Helpers for the recovery tests (test_recovery.py): a hospital run as a real `dagster` CLI
process, a private throwaway PostgreSQL cluster, and an S3 fault-injecting proxy in front of moto."""

from __future__ import annotations

import contextlib
import glob
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from price_pipeline.settings import PROJECT_ROOT
from price_pipeline_tests.integration.dagster_process import free_port

INGEST_ASSETS = "mrf_files,mrf_parsed,prices"


def materialize_command(partition: str, *, stall_writes: bool = False) -> list[str]:
    """`dagster asset materialize` of one hospital: the CLI process is the run worker."""
    runner = ["-m", "price_pipeline_tests.ops.slow_writes"] if stall_writes else ["-m", "dagster"]
    return [sys.executable, *runner, "asset", "materialize", "-m", "price_pipeline.definitions", "-a", "ingestion",
            "--select", INGEST_ASSETS, "--partition", partition]


def start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a process in its own session (so its whole group can be killed), output to a log."""
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


def register_hospitals(env: dict[str, str], home: Path, keys: list[str]) -> None:
    """What the catalog asset and sensor do before a hospital run: record the catalog in the
    registry and add the hospitals' partitions to the instance."""
    import dagster as dg

    from price_pipeline.defs.partitions import hospital_partitions
    from price_pipeline.defs.resources import PricePipelineResource
    from price_pipeline.lib.discovery.discover import apply_discovery, discover
    from price_pipeline.settings import Settings

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        resource = PricePipelineResource.from_settings(Settings.from_env())
        apply_discovery(resource.registry, discover(resource.settings, resource.registry))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(hospital_partitions.name, keys)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def unreadable_visible_parquet(lake) -> list[str]:
    """Every Parquet object a reader can see must open completely; returns those that do not."""
    import pyarrow.parquet as pq

    bad = []
    for key in lake.list_keys(""):
        if key.endswith(".parquet"):
            try:
                with lake.local_copy(key) as path:
                    pq.read_table(path)
            except Exception as exc:
                bad.append(f"{key}: {exc}")
    return bad


# --- a private PostgreSQL cluster -----------------------------------------------------------------

def postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster in a temp dir, on its own port, owned by the `postgres` OS
    user when the tests run as root. The machine's own cluster (5432) is never touched."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="pp-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir()
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True, cwd="/tmp")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _options(self) -> str:
        return (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=100")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-w", "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-m", "fast", "-w",
                  "restart")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=30)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres(bin_dir: Path) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


# --- S3 fault injection ------------------------------------------------------------------------------

class S3FaultProxy:
    """An HTTP proxy in front of moto's S3 server that injects faults per request.

    ``fail_puts_matching`` (a substring of the request path): every PUT/POST on a matching path is
    answered ``503 SlowDown`` without reaching S3 (so nothing is stored), until it is cleared.
    ``down``: every request's connection is closed without an answer (an unreachable endpoint).
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.fail_puts_matching: str | None = None
        self.down = False
        self.failed: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.down:
                    proxy.failed.append(f"{self.command} {self.path} (down)")
                    self.close_connection = True
                    return
                match = proxy.fail_puts_matching
                if match and self.command in ("PUT", "POST") and match in self.path:
                    proxy.failed.append(f"{self.command} {self.path}")
                    payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                               b"<Message>Please reduce your request rate.</Message></Error>")
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for k, v in response.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> S3FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_text(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")
    return ""



